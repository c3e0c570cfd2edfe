"""Generated config documents of any size (tests, benchmarks, `python -m phoenix sample N`)."""

from __future__ import annotations

import ipaddress
from typing import Any

# Well-formed, and nobody's: the 32 key bytes are sha256(b"phoenix sample key: no private key
# exists"), a point no one knows the private scalar of. Generated documents never carry a
# real person's key.
SAMPLE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINE+UEg8YNDlya0Dx3jsOlscJwK+HjcL5Gj7S0KwlVoN nobody@phoenix-sample"


def sample_document(count: int, *, first_vmid: int = 10000, template: int = 9000,
                    network: str = "10.64.0.0/16", features: bool = True) -> dict[str, Any]:
    """`count` VMs alternating between a template clone and a cloud image, unique ids/IPs."""
    net = ipaddress.IPv4Network(network)
    hosts = net.hosts()
    gateway = next(hosts)
    if count > net.num_addresses - 3:
        raise ValueError(f"{network} has room for {net.num_addresses - 3} VMs, not {count}")
    vms = []
    for i in range(count):
        vm: dict[str, Any] = {
            "vmid": first_vmid + i,
            "name": f"gen-{first_vmid + i}",
            "network_config": {"ip": f"{next(hosts)}/{net.prefixlen}"},
            "tags": ["generated"],
        }
        if i % 2:
            vm["image"] = "debian-12"
        else:
            vm["clone_from"] = template
            vm["features"] = ["docker"] if features else []
        vms.append(vm)
    return {
        "defaults": {
            "node": "pve",
            "storage": "local-zfs",
            "network_config": {"gateway": str(gateway), "dns": [str(gateway)], "bridge": "vmbr0"},
            "user": {"name": "phoenix", "ssh_authorized_keys": [SAMPLE_KEY]},
        },
        "images": {
            "debian-12": {
                "url": "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
                "file_name": "debian-12-genericcloud-amd64.img",
                "checksum": "unverified",  # a "latest" URL has no fixed digest
            }
        },
        "zfs": [{"node": "pve", "dataset": "rpool/data", "properties": {"compression": "lz4"}}],
        "vms": vms,
    }
