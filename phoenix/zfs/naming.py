"""The Pulumi resource name of one ZFS property setting.

Shared by the stack (which registers the resources) and the config loader (which rejects two
settings that would get the same name: Pulumi refuses a duplicate URN, and the name folds '/'
into '-', so `tank/vm-a` and `tank-vm/a` collide).
"""

from __future__ import annotations


def zfs_resource_name(node: str, dataset: str, prop: str) -> str:
    """Stable across runs: changing it would make Pulumi delete and re-create the setting."""
    return f"zfs-{node}-{dataset.replace('/', '-')}-{prop}"
