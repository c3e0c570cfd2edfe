"""ZFS properties on Proxmox nodes over SSH (dynamic provider `ZfsProperty`).

`check_zfs_property(dataset, prop, value) -> list[str]` is for the config loader.
"""

from phoenix.zfs.validate import check_zfs_property, normalize

__all__ = ["check_zfs_property", "normalize"]
