"""What the config can tell about `clone_mode` before anything is created.

A linked clone (`clone_mode: "linked"`, PVE's `full=0`) shares the template's base volume, so its
disk lives on the template's storage:
- PVE refuses a target storage for it: qemu-server `PVE/API2/Qemu.pm` `clone_vm` dies with
  "parameter 'storage' not allowed for linked clones" (and the same for 'format'). Phoenix
  therefore sends no `clone.datastore_id` for a linked clone.
- The provider then compares the VM's disk `datastore_id` (the config's `storage`) with the
  cloned disk's storage and *moves* the disk when they differ (bpg/terraform-provider-proxmox
  `proxmoxtf/resource/vm/disk/disk.go`, the clone branch of `CreateClone`: `MoveVMDisk` with
  `delete=1`), which silently turns the linked clone into a full copy.
So for a linked clone `storage` must be the template's storage. The config does not know where
the template's disk is, but it can tell when two linked clones of one template name different
storages: at least one of them is wrong. Phoenix clones on the VM's own node (`clone.node_name`
is the VM's `node`), so a linked clone across nodes from local storage ("can't clone VM to node
... (VM uses local storage)") cannot be asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phoenix.config.errors import Problem

CLONE_MODES = ("linked", "full")
DEFAULT_CLONE_MODE = "full"  # see docs/fleet.md ("Which clone mode")


def clone_mode_problems(raw_vms: Sequence[Any], merged: Sequence[tuple[int, dict[str, Any], str]]) -> list[Problem]:
    """raw_vms: the file's `vms` entries as written; merged: (index, VM with defaults, label)."""
    problems: list[Problem] = []
    first_linked: dict[tuple[str, int], tuple[str, str]] = {}  # (node, template) -> (storage, label)
    for index, vm, label in merged:
        own = raw_vms[index] if index < len(raw_vms) and isinstance(raw_vms[index], dict) else {}
        if "clone_mode" in own and "image" in vm and "clone_from" not in vm:
            problems.append(Problem(label, "clone_mode",
                                    f"applies to clones (clone_from) only; this VM is made from image "
                                    f"{vm['image']!r} (remove clone_mode here)"))
        if vm.get("clone_mode") != "linked" or not isinstance(vm.get("clone_from"), int):
            continue
        node, storage = vm.get("node"), vm.get("storage")
        if not isinstance(node, str) or not isinstance(storage, str):
            continue
        key = (node, vm["clone_from"])
        if key not in first_linked:
            first_linked[key] = (storage, label)
            continue
        first_storage, first_label = first_linked[key]
        if storage != first_storage:
            problems.append(Problem(label, "storage",
                                    f"linked clones of template {key[1]} on node {node} must all use the "
                                    f"template's storage, but {first_label} uses {first_storage!r} and this VM "
                                    f"{storage!r}: a linked clone's disk stays where the template's disk is "
                                    "(set storage to the template's storage, or clone_mode: \"full\")"))
    return problems
