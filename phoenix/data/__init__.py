"""Data disks that outlive their VMs: listing the holders, deleting one on purpose (docs/data.md)."""
