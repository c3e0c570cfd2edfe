"""Stack configuration (Pulumi.<stack>.yaml), read once and typed.

Keys:
- proxmoxve:endpoint (required), proxmoxve:apiToken (required, secret), proxmoxve:insecure
- phoenix-hypervisor:vmConfigFile (default phoenix_vm_configs.json)
- phoenix-hypervisor:sshPrivateKey (required, secret): the one key Pulumi uses to reach nodes
  (snippet upload, ZFS) and VMs (features). Its public half goes into every VM's cloud-init.
- phoenix-hypervisor:sshUsername (default root): the SSH user on Proxmox nodes.
- phoenix-hypervisor:nodes: {"pve": {"address": "192.168.1.10", "port": 22, "user": "root",
  "hostKeys": ["ssh-ed25519 AAAA..."]}}: how to reach each node over SSH, with its pinned host
  keys (required for nodes named in the config's `zfs` section: host keys are never trusted on
  first use).
- phoenix-hypervisor:fullClonesPerStorage (default 2): how many *full* clones may copy at once
  per (node, target storage). A full clone is a host-side copy of the whole disk; many at once
  saturate the storage and push other allocations past PVE's 10 s storage lock. It is a
  property of the storage hardware, so it lives in the stack config, not in the VM file.
  Linked clones are not bounded (docs/fleet.md).

Environment (not stack config, because it is about one `up`, not the stack):
- PHOENIX_REBUILD: comma-separated vmids the user asked to rebuild in this `up`
  (`python -m phoenix up --rebuild VMID` sets it and adds `--replace` for those VMs). Those VMs
  are registered with their *current* source (clone / image), so a rebuild really uses the
  template or image the config names now (phoenix.resources.vm.vm_ignore_changes).
- PHOENIX_KEEP: comma-separated vmids to keep as they are in this `up` (`up --keep VMID`): no
  replacement, the rebuild digest in the description is updated in place (e.g. once after the
  digest's definition changed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pulumi

PROJECT = "phoenix-hypervisor"
DEFAULT_VM_CONFIG_FILE = "phoenix_vm_configs.json"


@dataclass(frozen=True)
class NodeSsh:
    name: str
    address: str
    port: int = 22
    host_keys: tuple[str, ...] = ()
    user: str | None = None  # default: phoenix-hypervisor:sshUsername


@dataclass(frozen=True)
class StackSettings:
    endpoint: str
    api_token: pulumi.Output[str]  # secret
    insecure: bool
    vm_config_file: str
    ssh_private_key: pulumi.Output[str]  # secret
    ssh_public_key: str  # its public half (not secret): goes into every VM's cloud-init
    ssh_username: str
    nodes: dict[str, NodeSsh] = field(default_factory=dict)
    full_clones_per_storage: int = 2
    rebuild: frozenset[int] = frozenset()  # vmids named in PHOENIX_REBUILD
    keep: frozenset[int] = frozenset()  # vmids named in PHOENIX_KEEP


class SettingsError(Exception):
    pass


def _nodes(raw: Any) -> dict[str, NodeSsh]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{PROJECT}:nodes must be an object of node name -> {{address, port, hostKeys}}")
    nodes = {}
    problems = []
    for name, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("address"), str):
            problems.append(f"{PROJECT}:nodes.{name}: needs an 'address' string")
            continue
        port = spec.get("port", 22)
        keys = spec.get("hostKeys", [])
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"{PROJECT}:nodes.{name}.port: must be a TCP port number")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            problems.append(f"{PROJECT}:nodes.{name}.hostKeys: must be a list of public key lines")
            keys = []
        user = spec.get("user")
        if user is not None and not isinstance(user, str):
            problems.append(f"{PROJECT}:nodes.{name}.user: must be a string")
            user = None
        nodes[name] = NodeSsh(name=name, address=spec["address"], port=port, host_keys=tuple(keys), user=user)
    if problems:
        raise SettingsError("; ".join(problems))
    return nodes


DEFAULT_FULL_CLONES_PER_STORAGE = 2
MAX_FULL_CLONES_PER_STORAGE = 64


def _full_clones_per_storage(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_FULL_CLONES_PER_STORAGE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_FULL_CLONES_PER_STORAGE:
        raise SettingsError(f"{PROJECT}:fullClonesPerStorage must be a whole number from 1 to "
                            f"{MAX_FULL_CLONES_PER_STORAGE} (full clones copying at once per node and "
                            f"storage), not {raw!r}")
    return value


REBUILD_ENV = "PHOENIX_REBUILD"
KEEP_ENV = "PHOENIX_KEEP"


def rebuild_vmids(raw: str | None = None, *, env: str = REBUILD_ENV) -> frozenset[int]:
    """The vmids in PHOENIX_REBUILD (or `env`) ("8001,8002"; empty or unset: none). A word that
    is not a vmid is an error: a typo must not silently rebuild nothing."""
    raw = os.environ.get(env, "") if raw is None else raw
    words = [w.strip() for w in raw.split(",") if w.strip()]
    bad = [w for w in words if not w.isdigit()]
    if bad:
        raise SettingsError(f"{env} must be comma-separated vmids (e.g. 8001,8002), not {raw!r}")
    return frozenset(int(w) for w in words)


def read_settings() -> StackSettings:
    """Read the stack config. Missing required keys raise SettingsError naming every one."""
    pve = pulumi.Config("proxmoxve")
    own = pulumi.Config(PROJECT)
    missing = [key for cfg, key in ((pve, "endpoint"), (pve, "apiToken"), (own, "sshPrivateKey"))
               if cfg.get(key) is None]
    if missing:
        names = ", ".join(f"{'proxmoxve' if k != 'sshPrivateKey' else PROJECT}:{k}" for k in missing)
        raise SettingsError(
            f"missing stack config: {names} (see README: `pulumi config set proxmoxve:endpoint ...`, "
            "`pulumi config set --secret proxmoxve:apiToken ...`, "
            f"`pulumi config set --secret {PROJECT}:sshPrivateKey < key`)"
        )
    # The public half is derived once, synchronously: it is not secret, and plain strings keep the
    # rendered snippets plain values (no Output per VM). The key text itself stays a secret Output.
    from phoenix.remote.keys import PrivateKeyError, public_key_line

    try:
        public_key = public_key_line(own.require("sshPrivateKey"))
    except PrivateKeyError as exc:
        raise SettingsError(f"{PROJECT}:sshPrivateKey: {exc}") from None
    return StackSettings(
        endpoint=pve.require("endpoint"),
        api_token=pve.require_secret("apiToken"),
        insecure=pve.get_bool("insecure") or False,
        vm_config_file=own.get("vmConfigFile") or DEFAULT_VM_CONFIG_FILE,
        ssh_private_key=own.require_secret("sshPrivateKey"),
        ssh_public_key=public_key,
        ssh_username=own.get("sshUsername") or "root",
        nodes=_nodes(own.get_object("nodes")),
        full_clones_per_storage=_full_clones_per_storage(own.get("fullClonesPerStorage")),
        rebuild=rebuild_vmids(),
        keep=rebuild_vmids(env=KEEP_ENV),
    )


def check_settings_for(config_nodes_with_zfs: list[tuple[str, str]], settings: StackSettings) -> list[str]:
    """Problems that only show when stack config and VM config meet: ZFS entries need their
    node's SSH address and pinned host keys. [(where, node)] -> messages."""
    from phoenix.remote.hostkeys import check_host_key_lines

    problems = []
    for where, node in config_nodes_with_zfs:
        spec = settings.nodes.get(node)
        if spec is None:
            problems.append(f"{where}: node {node!r} has no entry in stack config {PROJECT}:nodes "
                            f"(`pulumi config set --path '{PROJECT}:nodes.{node}.address' ADDRESS`)")
        elif not spec.host_keys:
            problems.append(f"{where}: {PROJECT}:nodes.{node}.hostKeys is empty: pin the node's SSH host key "
                            "(its /etc/ssh/ssh_host_ed25519_key.pub); keys are never trusted on first use")
        else:
            problems.extend(f"{PROJECT}:nodes.{node}.hostKeys: {p}" for p in check_host_key_lines(spec.host_keys))
    return problems
