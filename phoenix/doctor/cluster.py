"""The cluster checks: token privileges, datastores and their content types, templates, bridges
and VLANs, each giving one Finding per problem. Every call is a read (GET)."""

from __future__ import annotations

import re

from phoenix.config import Config
from phoenix.doctor import privileges
from phoenix.doctor.api import ApiError, ClusterApi
from phoenix.doctor.findings import Finding

CLOUDINIT_DRIVE = re.compile(r"^(ide|sata|scsi)\d+$")


def pve_major(api: ClusterApi) -> int:
    version = str((api.get("version") or {}).get("version", "9"))
    match = re.match(r"(\d+)", version)
    return int(match.group(1)) if match else 9


def check_token(api: ClusterApi, config: Config, major: int) -> list[Finding]:
    token_id = api.credentials.token_id
    needs = privileges.required(config, major)
    permissions = api.get("access/permissions") or {}
    findings = privileges.missing(permissions, needs, token_id)
    if findings:
        findings.append(Finding(f"token {token_id}", f"{len(findings)} privilege(s) missing in all",
                                f"one role for all of them: {privileges.role_command(needs)}"))
    return findings


def _content(api: ClusterApi, storage: str) -> tuple[set[str] | None, Finding | None]:
    try:
        info = api.get(f"storage/{storage}") or {}
    except ApiError as exc:
        return None, Finding(f"storage {storage}", f"cannot be read ({exc})",
                             "check the name in the VM config, or that the token has Datastore.Audit on "
                             f"/storage/{storage}")
    return {c.strip() for c in str(info.get("content", "")).split(",") if c.strip()}, None


def check_storages(api: ClusterApi, config: Config) -> list[Finding]:
    """Each datastore the config uses holds the content type it is used for."""
    wanted: dict[str, dict[str, str]] = {}  # storage -> content -> why
    for vm in config.vms:
        wanted.setdefault(vm.snippet_storage, {}).setdefault(
            "snippets", f"cloud-init snippets of VM {vm.vmid} (snippet_storage)")
        wanted.setdefault(vm.storage, {}).setdefault("images", f"the disk of VM {vm.vmid} (storage)")
        for i, disk in enumerate(vm.data_disks):
            wanted.setdefault(disk.storage, {}).setdefault(
                "images", f"data disk {disk.name!r} of VM {vm.vmid} (data_disks[{i}].storage)")
    for image in config.images.values():
        wanted.setdefault(image.storage, {}).setdefault("iso", f"cloud image {image.name!r} (images.storage)")
    findings = []
    for storage, contents in wanted.items():
        have, error = _content(api, storage)
        if error:
            findings.append(error)
            continue
        assert have is not None
        for content, why in contents.items():
            if content not in have:
                findings.append(Finding(
                    f"storage {storage}", f"does not allow content {content!r}, needed for {why}",
                    f"pvesm set {storage} --content {','.join(sorted(have | {content}))}"))
    return findings


def check_templates(api: ClusterApi, config: Config) -> list[Finding]:
    """Each `clone_from` exists on its node, has a cloud-init drive and the agent option."""
    findings = []
    seen = set()
    for vm in config.vms:
        if vm.clone_from is None or (vm.node, vm.clone_from) in seen:
            continue
        seen.add((vm.node, vm.clone_from))
        subject = f"template {vm.clone_from} on {vm.node}"
        try:
            cfg = api.get(f"nodes/{vm.node}/qemu/{vm.clone_from}/config") or {}
        except ApiError as exc:
            findings.append(Finding(subject, f"cannot be read ({exc.message or exc})",
                                    f"create it (e.g. from a cloud image: qm create {vm.clone_from} ...; "
                                    f"qm template {vm.clone_from}) or fix clone_from of VM {vm.vmid}"))
            continue
        if not any(CLOUDINIT_DRIVE.match(k) and "cloudinit" in str(v) for k, v in cfg.items()):
            findings.append(Finding(subject, "has no cloud-init drive, so the VM gets no seed",
                                    f"qm set {vm.clone_from} --ide2 {vm.storage}:cloudinit"))
        agent = str(cfg.get("agent", "0"))
        if not re.match(r"^(1|enabled=1)\b", agent):
            findings.append(Finding(subject, f"has the QEMU guest agent option off (agent: {agent})",
                                    f"qm set {vm.clone_from} --agent enabled=1"))
        if str(cfg.get("template", "0")) != "1":
            findings.append(Finding(subject, "is not a template: every clone locks it exclusively",
                                    f"qm template {vm.clone_from}"))
    return findings


# The tag every VM of the stack carries (phoenix/resources/vm.py MANAGED_TAG; not imported:
# that module imports pulumi).
MANAGED_TAG = "phoenix"


def check_vmids(api: ClusterApi, config: Config) -> list[Finding]:
    """Each vmid the file asks for is free, or already this stack's VM (same name, `phoenix`
    tag), so `pulumi up` never fails on (or is mistaken for) someone else's VM or container."""
    taken = {int(r["vmid"]): r for r in api.get("cluster/resources", type="vm") or [] if "vmid" in r}
    wanted = [(vm.vmid, vm.name, f"VM {vm.name}") for vm in config.vms]
    for template in config.templates:
        wanted += [(template.vmid + k, template.name, f"template {template.name} on {node}")
                   for k, node in enumerate(template.nodes)]
    findings = []
    for vmid, name, what in wanted:
        other = taken.get(vmid)
        if other is None:
            continue
        tags = set(re.split(r"[;, ]+", str(other.get("tags", ""))))
        if other.get("name") == name and MANAGED_TAG in tags:
            continue  # this stack's own, from an earlier `pulumi up`
        kind = "container" if other.get("type") == "lxc" else "template" if other.get("template") else "VM"
        findings.append(Finding(
            f"vmid {vmid}", f"is taken by {kind} {other.get('name', '?')!r} on {other.get('node', '?')} "
                            f"(wanted for {what}; not this stack's: no {MANAGED_TAG!r} tag or another name)",
            f"give {what} a free vmid in the config (pvesh get /cluster/nextid)"))
    return findings


def check_networks(api: ClusterApi, config: Config) -> list[Finding]:
    """Each VM's bridge exists on its node; a VLAN tag needs a VLAN-aware (or OVS) bridge."""
    findings = []
    interfaces: dict[str, dict[str, dict]] = {}
    seen = set()
    for vm in config.vms:
        bridge, vlan = vm.network_config.bridge, vm.network_config.vlan
        if (vm.node, bridge, vlan is None) in seen:
            continue
        seen.add((vm.node, bridge, vlan is None))
        if vm.node not in interfaces:
            try:
                interfaces[vm.node] = {i.get("iface"): i for i in api.get(f"nodes/{vm.node}/network") or []}
            except ApiError as exc:
                findings.append(Finding(f"node {vm.node}", f"network cannot be read ({exc})",
                                        f"give the token Sys.Audit on /nodes/{vm.node}"))
                interfaces[vm.node] = {}
                continue
        nics = interfaces[vm.node]
        if not nics:
            continue
        iface = nics.get(bridge)
        subject = f"bridge {bridge} on {vm.node}"
        if iface is None or iface.get("type") not in ("bridge", "OVSBridge"):
            known = ", ".join(sorted(k for k, v in nics.items() if v.get("type") in ("bridge", "OVSBridge")))
            findings.append(Finding(subject, f"does not exist (VM {vm.vmid}; bridges there: {known or 'none'})",
                                    f"set network_config.bridge of VM {vm.vmid} to one of them, or create "
                                    f"{bridge} (Node > System > Network)"))
        elif vlan is not None and iface.get("type") == "bridge" and not iface.get("bridge_vlan_aware"):
            findings.append(Finding(subject, f"is not VLAN aware, so VLAN {vlan} of VM {vm.vmid} cannot work",
                                    f"enable 'VLAN aware' on {bridge} (Node > System > Network; "
                                    "bridge-vlan-aware yes in /etc/network/interfaces)"))
    return findings
