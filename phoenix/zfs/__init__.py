"""ZFS properties on Proxmox nodes over SSH (dynamic provider `ZfsProperty`).

`check_zfs_property(dataset, prop, value) -> list[str]` and `zfs_resource_name` are for the
config loader.
"""

from phoenix.zfs.naming import zfs_resource_name
from phoenix.zfs.validate import check_zfs_property, normalize

__all__ = ["check_zfs_property", "normalize", "zfs_resource_name"]
