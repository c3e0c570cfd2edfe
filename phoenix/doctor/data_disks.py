"""The doctor's checks for data disks (docs/data.md): each holder vmid is free or already this
stack's holder of that VM, and a VM's data can follow it to its node. Reads only
(`GET /cluster/resources?type=vm`, `GET /storage/{id}`)."""

from __future__ import annotations

from phoenix.config import Config
from phoenix.config.data_disks import HOLDER_TAG
from phoenix.config.model import VmConfig
from phoenix.doctor.api import ApiError, ClusterApi
from phoenix.doctor.findings import Finding


def is_holder_of(resource: dict, vm: VmConfig) -> bool:
    """A cluster resource is the holder this program makes for `vm` (its name and tag)."""
    tags = {t.strip() for t in str(resource.get("tags", "")).replace(",", ";").split(";")}
    return resource.get("name") == f"{vm.name}-data" and HOLDER_TAG in tags


def _shared(api: ClusterApi, storage: str) -> bool | None:
    try:
        return bool(int((api.get(f"storage/{storage}") or {}).get("shared", 0) or 0))
    except (ApiError, ValueError):
        return None  # check_storages reports a storage that cannot be read


def check_data_holders(api: ClusterApi, config: Config) -> list[Finding]:
    vms = [vm for vm in config.vms if vm.data_disks]
    if not vms:
        return []
    by_vmid = {int(r["vmid"]): r for r in api.get("cluster/resources", type="vm") or [] if "vmid" in r}
    findings = []
    for vm in vms:
        holder = by_vmid.get(vm.data_vmid or 0)
        subject = f"data holder {vm.data_vmid} of VM {vm.vmid}"
        if holder is None:
            continue  # free: the first `up` creates it
        if not is_holder_of(holder, vm):
            findings.append(Finding(
                subject, f"vmid {vm.data_vmid} is taken by {holder.get('type', 'guest')} "
                f"{holder.get('name') or '(no name)'!r} on {holder.get('node')}, which is not this VM's data holder",
                f"set data_vmid of VM {vm.vmid} to a free vmid (the holder's default is vmid + 100000)"))
            continue
        if holder.get("status") == "running":
            findings.append(Finding(subject, "is running: a holder must never run (its disks are the VM's)",
                                    f"qm stop {vm.data_vmid}; do not start it again"))
        node = holder.get("node")
        if node and node != vm.node:
            local = [d.storage for d in vm.data_disks if _shared(api, d.storage) is False]
            if local:
                # qemu-server src/PVE/QemuMigrate.pm:483 dies "owned by other VM" for a local disk
                # of another vmid; shared storages return before that check (line 441).
                findings.append(Finding(
                    subject, f"is on {node}, VM {vm.vmid} is to be on {vm.node}, and its data is on "
                    f"local storage {', '.join(sorted(set(local)))}: PVE refuses to migrate a VM with a "
                    "local disk owned by another vmid",
                    f"qm shutdown {vm.vmid}; qm migrate {vm.data_vmid} {vm.node}; then rebuild the VM "
                    "there: pulumi up --replace <its URN> (docs/data.md, 'Another node')"))
    return findings
