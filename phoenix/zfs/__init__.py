"""ZFS properties on Proxmox nodes over SSH (dynamic provider `ZfsProperty`).

The rules on datasets, properties and resource names are the config layer's
(phoenix/config/zfs_rules.py), re-exported here for the provider's users.
"""

from phoenix.config.zfs_rules import check_zfs_property, normalize, zfs_resource_name

__all__ = ["check_zfs_property", "normalize", "zfs_resource_name"]
