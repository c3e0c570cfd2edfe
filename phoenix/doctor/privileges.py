"""The privileges the program's API calls need, path by path, and which of them a token lacks.

PVE answers `GET /access/permissions` with {path: {privilege: 1}} for the paths where the token
has (or inherits) ACL entries; a path not listed has what its nearest listed ancestor has.
PVE 9 split the guest-agent privileges out of VM.Monitor (VM.GuestAgent.*).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from phoenix.config import Config
from phoenix.doctor.findings import Finding

VM_CONFIG_PRIVS = ("VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk",
                   "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options")
ROLE = "PhoenixProvisioner"


def agent_privileges(pve_major: int) -> tuple[str, ...]:
    # readiness pings the agent and runs `cloud-init status` through it (exec)
    if pve_major >= 9:
        return ("VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted")
    return ("VM.Monitor",)


def required(config: Config, pve_major: int) -> dict[str, tuple[str, ...]]:
    """path -> privileges, for this VM config."""
    needs: dict[str, list[str]] = {}

    def add(path: str, *privs: str) -> None:
        bucket = needs.setdefault(path, [])
        bucket.extend(p for p in privs if p not in bucket)

    for vm in config.vms:
        add(f"/vms/{vm.vmid}", "VM.Allocate", "VM.Audit", "VM.PowerMgmt", *VM_CONFIG_PRIVS,
            *agent_privileges(pve_major))
        if vm.clone_from is not None:
            add(f"/vms/{vm.clone_from}", "VM.Clone", "VM.Audit")
        add(f"/storage/{vm.storage}", "Datastore.AllocateSpace", "Datastore.Audit")
        add(f"/storage/{vm.snippet_storage}", "Datastore.Audit")
        add(f"/nodes/{vm.node}", "Sys.Audit")
        # The holder (phoenix/resources/data_disks.py): created, never started. Attaching its
        # volumes to the VM needs Datastore.Audit on the storage and VM.Config.Disk on the
        # holder (pve-storage src/PVE/Storage.pm check_volume_access, the `images` of another
        # owner branch), both below.
        if vm.data_disks:
            add(f"/vms/{vm.data_vmid}", "VM.Allocate", "VM.Audit", *VM_CONFIG_PRIVS)
            for disk in vm.data_disks:
                add(f"/storage/{disk.storage}", "Datastore.AllocateSpace", "Datastore.Audit")
    for image in config.images.values():
        add(f"/storage/{image.storage}", "Datastore.AllocateTemplate", "Datastore.Audit")
        for node in {image.node} if image.node else {vm.node for vm in config.vms if vm.image == image.name}:
            add(f"/nodes/{node}", "Sys.Audit", "Sys.Modify")  # download-url
    return {path: tuple(privs) for path, privs in needs.items()}


def held(permissions: Mapping[str, Mapping[str, object]], path: str) -> set[str]:
    """The privileges on `path`: its own entry, else its nearest listed ancestor's."""
    probe = path
    while True:
        if probe in permissions:
            return {priv for priv, value in permissions[probe].items() if value}
        if probe in ("/", ""):
            return set()
        probe = probe.rsplit("/", 1)[0] or "/"


def missing(permissions: Mapping[str, Mapping[str, object]], needs: Mapping[str, Iterable[str]],
            token_id: str) -> list[Finding]:
    findings = []
    for path, privs in needs.items():
        have = held(permissions, path)
        for priv in privs:
            if priv not in have:
                findings.append(Finding(
                    f"token {token_id}", f"lacks {priv} on {path}",
                    f"pveum acl modify {path} --tokens '{token_id}' --roles {ROLE} "
                    f"(with a role holding {priv}; see the README's prerequisites)"))
    return findings


def role_command(needs: Mapping[str, Iterable[str]]) -> str:
    privs = sorted({p for ps in needs.values() for p in ps})
    return f"pveum role add {ROLE} --privs '{','.join(privs)}'"
