"""Which earlier VM a clone waits for: full clones go in K lanes per (node, target storage).

Clones of one template need no serialisation: PVE locks a stopped source (a template) with a
*shared* lock (qemu-server `PVE/API2/Qemu.pm` `clone_vm`: `lock_config_shared`), and shared
flocks never conflict. What parallel clones can contend for is the storage: a full clone is a
host-side copy of the whole disk, and PVE's storage lock (`pve-storage-<id>` flock, or
`cfs-lock 'storage-<id>'` on shared storage) times out after 10 s while volumes are allocated,
which IO-saturating copies can push past. So full clones are bounded per (node, storage): the
i-th full clone onto one (node, storage) depends on the (i-K)-th, which gives K lanes that the
engine runs in parallel, with no sleep or lock in our code. Linked clones (a `zfs clone` of
the template's base volume, or a qcow2 overlay: no copy) are not bounded.

A lane is a dependency chain of ceil(n/K) VMs; the SDK's cycle check walks such chains, which
`phoenix.resources.dependency_walk` keeps linear.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from math import ceil
from typing import Generic, TypeVar

from phoenix.config.model import Config, VmConfig

T = TypeVar("T")
LaneKey = tuple[str, str]  # (node, target storage)


def lane_key(vm: VmConfig) -> LaneKey | None:
    """The lane set a VM's creation joins, or None when it is not bounded (linked clone, image)."""
    if vm.clone_from is None or vm.clone_mode != "full":
        return None
    return (vm.node, vm.storage)


class CloneLanes(Generic[T]):
    """Hands out, in config order, the resource each full clone must wait for."""

    def __init__(self, lanes: int) -> None:
        if lanes < 1:
            raise ValueError("at least one lane")
        self.lanes = lanes
        self._created: dict[LaneKey, list[T]] = defaultdict(list)

    def wait_for(self, vm: VmConfig) -> T | None:
        key = lane_key(vm)
        if key is None:
            return None
        created = self._created[key]
        return created[-self.lanes] if len(created) >= self.lanes else None

    def add(self, vm: VmConfig, resource: T) -> None:
        key = lane_key(vm)
        if key is not None:
            self._created[key].append(resource)


def longest_lane(config: Config, lanes: int) -> tuple[int, LaneKey | None, int]:
    """(length of the longest dependency chain built, its (node, storage), full clones there)."""
    counts = Counter(key for key in map(lane_key, config.vms) if key is not None)
    if not counts:
        return 0, None, 0
    key, n = counts.most_common(1)[0]
    return ceil(n / lanes), key, n
