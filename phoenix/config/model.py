"""Typed, already-validated configuration objects.

Everything downstream of `phoenix.config.load` receives these; none of them is built from
unchecked input (see `phoenix.config.validate`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NetworkConfig:
    ip: ipaddress.IPv4Interface  # address with prefix, e.g. 10.0.0.101/24
    gateway: ipaddress.IPv4Address | None
    dns: tuple[str, ...]
    search_domain: str | None
    bridge: str
    vlan: int | None
    mac_address: str  # from the config, or derived from the vmid (stable across runs)
    interface_name: str = "eth0"  # the name the guest gives the NIC (matched by MAC)


@dataclass(frozen=True)
class UserConfig:
    name: str
    ssh_authorized_keys: tuple[str, ...]
    sudo: bool = True
    shell: str = "/bin/bash"


@dataclass(frozen=True)
class FeatureRef:
    """One feature of a VM: the name of a script in phoenix/features plus its parameters."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestAgentConfig:
    timeout_s: int = 900
    preinstalled: bool = False  # the template already has qemu-guest-agent


@dataclass(frozen=True)
class VmConfig:
    index: int  # position in the file's "vms" list (for messages)
    vmid: int
    name: str
    node: str
    clone_from: int | None
    image: str | None
    cores: int
    memory_mb: int
    disk_gb: int
    storage: str
    network_config: NetworkConfig
    user: UserConfig
    packages: tuple[str, ...] = ()
    features: tuple[FeatureRef, ...] = ()
    tags: tuple[str, ...] = ()
    package_update: bool = True
    package_upgrade: bool = False
    guest_agent: GuestAgentConfig = GuestAgentConfig()
    snippet_storage: str = "local"
    disk_interface: str = "scsi0"
    cpu_type: str = "x86-64-v2-AES"
    on_boot: bool = True
    protect: bool = False
    recreate_on_cloud_init_change: bool = False
    timezone: str | None = None
    clone_mode: str = "full"  # "linked" | "full"; only used with clone_from (phoenix.config.clone_rules)

    @property
    def label(self) -> str:
        """How messages name this VM: index, vmid and name."""
        return f"vms[{self.index}] (vmid {self.vmid}, {self.name})"


@dataclass(frozen=True)
class ImageConfig:
    name: str
    url: str
    checksum_algorithm: str | None  # sha256, sha512, ...
    checksum: str | None  # hex digest
    node: str | None
    storage: str
    file_name: str


@dataclass(frozen=True)
class ZfsPropertyConfig:
    node: str
    dataset: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class Config:
    path: Path
    vms: tuple[VmConfig, ...]
    images: Mapping[str, ImageConfig]
    zfs: tuple[ZfsPropertyConfig, ...] = ()

    def vm(self, vmid: int) -> VmConfig:
        for vm in self.vms:
            if vm.vmid == vmid:
                return vm
        raise KeyError(vmid)
