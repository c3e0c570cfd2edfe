"""Dynamic resource `DataDiskSizes` (type `pulumi-python:dynamic/phoenix:DataDiskSizes`): the
sizes of one VM's data disks as last applied, so that a smaller `size_gb` is an error naming the
VM and the field at **preview**, before anything is touched.

The config file alone cannot know a volume's size. Pulumi's `check(olds, news)` can: `olds` are
the inputs this resource was last applied with. bpg and PVE refuse a shrink too, but only while
applying, naming the volume rather than the field ("Cannot shrink ...": bpg
proxmoxtf/resource/vm/vm.go:7298; "shrinking disks is not supported": qemu-server
src/PVE/API2/Qemu.pm:6048). The holder depends on this resource, so it is not touched when the
check fails.

Holds no data and touches nothing: create/update only record, delete does nothing. Named
`vm-<vmid>-data-sizes` and `retain_on_delete` like everything of a VM's data (contract C1).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from phoenix.config.model import VmConfig
from phoenix.dynamic_inputs import changed_inputs, contains_unknown

INPUT_KEYS = ("vm", "sizes", "fields")


def shrink_failures(olds: dict[str, Any], news: dict[str, Any]) -> list[CheckFailure]:
    """One failure per data disk (by name) whose size is smaller than the one last applied."""
    old_sizes, new_sizes = olds.get("sizes") or {}, news.get("sizes") or {}
    if contains_unknown(new_sizes) or not isinstance(old_sizes, dict) or not isinstance(new_sizes, dict):
        return []
    failures = []
    fields = news.get("fields") or {}
    for name, size in sorted(new_sizes.items()):
        old = old_sizes.get(name)
        if isinstance(old, (int, float)) and isinstance(size, (int, float)) and size < old:
            field = fields.get(name, f"data_disks[{name}].size_gb")
            failures.append(CheckFailure(
                "sizes", f"{news.get('vm', 'a VM')}: {field}: {int(size)} is smaller than {int(old)} GiB, the "
                f"size of data disk {name!r} now: a data disk can only grow (set it back to {int(old)} "
                "or more; to start over with a smaller disk, see docs/data.md)"))
    return failures


class DataDiskSizesProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, shrink_failures(olds, news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_inputs(olds, news, INPUT_KEYS)
        return DiffResult(changes=bool(changes), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"data-sizes-{props.get('vm', '')}", outs=dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=dict(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # a record only: the data itself is the holder's


class DataDiskSizes(Resource, module="phoenix", name="DataDiskSizes"):
    sizes: pulumi.Output[dict]

    def __init__(self, resource_name: str, vm: VmConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DataDiskSizesProvider(), resource_name, {
            "vm": vm.label,
            "sizes": {d.name: d.size_gb for d in vm.data_disks},
            "fields": {d.name: f"data_disks[{i}].size_gb" for i, d in enumerate(vm.data_disks)},
        }, opts)
