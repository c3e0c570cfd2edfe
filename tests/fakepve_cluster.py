"""fakepve set up as a cluster where the example config (phoenix_vm_configs.json) would deploy:
node pve, template 9000 with a cloud-init drive and the agent, `local` with snippets,
`local-zfs` for disks, vmbr0 VLAN aware. What fakepve does not answer like PVE is set here: a
node's interfaces (its sample bridge is not VLAN aware) through fakepve.shapes.FIXUPS, and the
template's `template: 1` in its config."""

from __future__ import annotations

from fakepve import shapes
from readiness_fixtures import add_token


def bridges(*ifaces: dict) -> list:
    """A FIXUPS entry for /nodes/{node}/network: these bridges and one NIC."""
    def answer(ctx):
        return [dict({"type": "bridge", "active": 1, "families": ["inet"]}, **i) for i in ifaces] + [
            {"iface": "eno1", "type": "eth", "active": 1}]
    return [shapes.replace(answer)]


def ready_cluster(pve, monkeypatch, cafile: str) -> str:
    """-> the API token (PROXMOX_VE_API_TOKEN form)."""
    token = add_token(pve)
    pve.add_node("pve")
    pve.storages["local"]["content"] = "iso,vztmpl,backup,snippets"
    pve.storages["local-zfs"] = {"type": "zfspool", "active": 1, "content": "images,rootdir",
                                 "files": set(), "pool": "rpool/data"}
    pve.add_vm(9000, "tmpl", node="pve", status="stopped", template=True, config={
        "agent": "1", "template": 1, "ide2": "local-zfs:vm-9000-cloudinit,media=cdrom",
        "scsi0": "local-zfs:base-9000-disk-0,size=2G"})
    monkeypatch.setitem(shapes.FIXUPS, "/nodes/{node}/network",
                        bridges({"iface": "vmbr0", "bridge_vlan_aware": 1}))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cafile)
    for name in ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    return token
