"""Typed, already-validated configuration objects.

Everything downstream of `phoenix.config.load` receives these; none of them is built from
unchecked input (see `phoenix.config.validate`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

EDITS_IN_PLACE, EDITS_SEED_ONLY, EDITS_REBUILD = "in-place", "seed-only", "rebuild"
EDITS_POLICIES = (EDITS_IN_PLACE, EDITS_SEED_ONLY, EDITS_REBUILD)


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
class DataDiskConfig:
    """A disk that outlives its VM (docs/data.md): a volume of the VM's holder VM, attached to
    the VM, formatted once and mounted by UUID at every boot."""

    name: str  # [a-z0-9-]{1,16}: the serial the guest finds it by is phx-<name>
    size_gb: int
    mount: str
    storage: str
    filesystem: str = "ext4"  # "ext4" | "xfs"

    @property
    def serial(self) -> str:
        """What PVE gives the guest as the disk's serial (bpg `disk.serial`, at most 20 bytes)."""
        return f"phx-{self.name}"


# The holder of a VM's data disks has vmid `vmid + DATA_VMID_OFFSET` unless `data_vmid` is set.
DATA_VMID_OFFSET = 100000


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
    # What an edit of the seed's fields does to the running VM (docs/edits.md): "in-place"
    # converges packages, keys and timezone over SSH; "seed-only" changes only the snippet;
    # "rebuild" rebuilds the VM (the old `recreate_on_cloud_init_change: true`).
    edits: str = "in-place"
    timezone: str | None = None
    # Set when clone_from names a template of this file: its name, and the node its copy is
    # on when that is not the VM's node (a clone across nodes).
    template: str | None = None
    clone_node: str | None = None
    clone_mode: str = "full"  # "linked" | "full"; only used with clone_from (phoenix.config.clone_rules)
    data_disks: tuple[DataDiskConfig, ...] = ()
    data_vmid_override: int | None = None  # the config's `data_vmid`

    @property
    def data_vmid(self) -> int | None:
        """vmid of the holder VM of the data disks (None without data disks): `data_vmid`, or
        `vmid + 100000` (phoenix.config.data_disks checks it is free in the file)."""
        if not self.data_disks:
            return None
        return self.data_vmid_override if self.data_vmid_override is not None else self.vmid + DATA_VMID_OFFSET

    @property
    def label(self) -> str:
        """How messages name this VM: index, vmid and name."""
        return f"vms[{self.index}] (vmid {self.vmid}, {self.name})"

    @property
    def recreate_on_cloud_init_change(self) -> bool:
        """The old spelling of `edits == "rebuild"` (contract C2: code that reads it keeps
        working)."""
        return self.edits == EDITS_REBUILD

    @property
    def converges_in_place(self) -> bool:
        """Edits of packages, keys and timezone reach the running VM over SSH. Needs the admin
        user's sudo (the default): without it they apply at a rebuild, as with seed-only."""
        return self.edits == EDITS_IN_PLACE and self.user.sudo


@dataclass(frozen=True)
class ImageConfig:
    name: str
    url: str
    checksum_algorithm: str | None  # sha256, sha512, ...
    checksum: str | None  # hex digest; None only when the config says "checksum": "unverified"
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
    templates: tuple[TemplateConfig, ...] = ()

    def vm(self, vmid: int) -> VmConfig:
        for vm in self.vms:
            if vm.vmid == vmid:
                return vm
        raise KeyError(vmid)

    def template(self, name: str) -> TemplateConfig:
        for template in self.templates:
            if template.name == name:
                return template
        raise KeyError(name)


@dataclass(frozen=True)
class TemplateConfig:
    """A template the stack makes itself: the cloud image, baked once with `packages`.

    One template per node in `nodes`: the copy on the k-th node has vmid `vmid + k` (so the
    node list is append-only: reordering it renumbers the copies). A template's definition is
    immutable: its vmid names one version; a new definition gets a new vmid.
    """

    index: int  # position in the file's "templates" list (for messages)
    vmid: int
    name: str
    nodes: tuple[str, ...]
    image: str
    storage: str
    packages: tuple[str, ...]  # the agent is always first
    disk_gb: int = 8
    cores: int = 2
    memory_mb: int = 2048
    bridge: str = "vmbr0"
    vlan: int | None = None
    snippet_storage: str = "local"
    shared_storage: bool = False  # `storage` is reachable from every node (Ceph, NFS, ...)
    bake_timeout_s: int = 1800

    @property
    def label(self) -> str:
        return f"templates[{self.index}] (vmid {self.vmid}, {self.name})"

    @property
    def copies(self) -> tuple[tuple[str, int], ...]:
        """(node, vmid) of every copy of this template."""
        return tuple((node, self.vmid + k) for k, node in enumerate(self.nodes))

    def vmid_on(self, node: str) -> int | None:
        return dict(self.copies).get(node)

    def node_of(self, vmid: int) -> str | None:
        return {v: n for n, v in self.copies}.get(vmid)
