"""Dynamic resource `DataDiskLayout` (type `pulumi-python:dynamic/phoenix:DataDiskLayout`): one
VM's data disks as last applied (holder vmid, names in order, sizes), so that an edit that would
detach, swap or shrink data is an error naming the VM and the field at **preview**, before
anything is touched. The holder depends on it.

The config file alone cannot know what was applied before. Pulumi's `check(olds, news)` can:
`olds` are the inputs this resource was last applied with. Refused:
- a smaller `size_gb` (bpg and PVE refuse too, but only while applying and naming the volume:
  bpg proxmoxtf/resource/vm/vm.go:7298 "Cannot shrink"; qemu-server
  src/PVE/API2/Qemu.pm:6048 "shrinking disks is not supported");
- a data disk no longer listed, or the list reordered: the holder's disks are scsi0, scsi1, ...
  in list order, so either would drop a volume from the holder's config or hand one disk's
  volume to another entry (another serial, another mount point, another size);
- another holder vmid (`data_vmid`): the VM would get a new, empty holder, the data staying in
  the old one;
- another `storage` for an existing disk: bpg would move the holder's volume under the running
  VM that attaches it (a "Disk move" with the original deleted).
New disks may be appended. Holds no data and touches nothing: create/update only record, delete
does nothing. Named `vm-<vmid>-data-layout` and `retain_on_delete` (contract C1).
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

INPUT_KEYS = ("vm", "holder_vmid", "names", "sizes", "storages")
HOW = "see docs/data.md, 'Changing the data disks'"


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def layout_failures(olds: dict[str, Any], news: dict[str, Any]) -> list[CheckFailure]:
    """Every refused change from the applied layout (olds) to the new one (news)."""
    if not olds or contains_unknown(news):
        return []  # first apply, or values not known yet
    vm = news.get("vm", "a VM")
    failures = []
    old_holder, new_holder = _number(olds.get("holder_vmid")), _number(news.get("holder_vmid"))
    if old_holder is not None and new_holder != old_holder:
        failures.append(CheckFailure("holder_vmid", (
            f"{vm}: data_vmid: the data disks are held by VM {old_holder}; {new_holder} would be a new holder "
            f"with new, empty disks (the data staying in {old_holder}): set data_vmid back to {old_holder}; {HOW}")))
    old_names, new_names = list(olds.get("names") or []), list(news.get("names") or [])
    missing = [n for n in old_names if n not in new_names]
    if missing:
        failures.append(CheckFailure("names", (
            f"{vm}: data_disks: {', '.join(repr(n) for n in missing)} no longer listed: that would detach its "
            f"volume from the VM and drop it from the holder; list it again (the name is the disk's identity); {HOW}")))
    elif new_names[:len(old_names)] != old_names:
        failures.append(CheckFailure("names", (
            f"{vm}: data_disks: the order changed ({', '.join(old_names)} -> {', '.join(new_names)}): the holder's "
            f"disks follow the list, so a volume would go to another entry; keep the order, add new disks at the "
            f"end; {HOW}")))
    old_storages, new_storages = olds.get("storages") or {}, news.get("storages") or {}
    for i, name in enumerate(new_names):
        old, new = old_storages.get(name), new_storages.get(name)
        if old is not None and new is not None and new != old:
            failures.append(CheckFailure("storages", (
                f"{vm}: data_disks[{i}].storage: data disk {name!r} is on {old}; moving it to {new} would move "
                f"the volume under the VM that attaches it: set it back to {old}; {HOW}")))
    old_sizes, new_sizes = olds.get("sizes") or {}, news.get("sizes") or {}
    for i, name in enumerate(new_names):
        old, new = _number(old_sizes.get(name)), _number(new_sizes.get(name))
        if old is not None and new is not None and new < old:
            failures.append(CheckFailure("sizes", (
                f"{vm}: data_disks[{i}].size_gb: {new} is smaller than {old} GiB, the size of data disk {name!r} "
                f"now: a data disk can only grow (set it back to {old} or more); {HOW}")))
    return failures


class DataDiskLayoutProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, layout_failures(olds, news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_inputs(olds, news, INPUT_KEYS)
        return DiffResult(changes=bool(changes), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"data-layout-{_number(props.get('holder_vmid'))}", outs=dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=dict(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # a record only: the data itself is the holder's


class DataDiskLayout(Resource, module="phoenix", name="DataDiskLayout"):
    sizes: pulumi.Output[dict]

    def __init__(self, resource_name: str, vm: VmConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DataDiskLayoutProvider(), resource_name, {
            "vm": vm.label,
            "holder_vmid": vm.data_vmid,
            "names": [d.name for d in vm.data_disks],
            "sizes": {d.name: d.size_gb for d in vm.data_disks},
            "storages": {d.name: d.storage for d in vm.data_disks},
        }, opts)
