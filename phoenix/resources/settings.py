"""Stack configuration (Pulumi.<stack>.yaml), read once and typed.

Keys:
- proxmoxve:endpoint (required), proxmoxve:apiToken (required, secret), proxmoxve:insecure
- phoenix-hypervisor:vmConfigFile (default phoenix_vm_configs.json)
- phoenix-hypervisor:sshPrivateKey (required, secret): the one key Pulumi uses to reach nodes
  (snippet upload, ZFS) and VMs (features). Its public half goes into every VM's cloud-init.
- phoenix-hypervisor:sshUsername (default root): the SSH user on Proxmox nodes.
- phoenix-hypervisor:nodes: {"pve": {"address": "192.168.1.10", "port": 22,
  "hostKeys": ["ssh-ed25519 AAAA..."]}}: how to reach each node over SSH, with its pinned host keys.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class StackSettings:
    endpoint: str
    api_token: pulumi.Output[str]  # secret
    insecure: bool
    vm_config_file: str
    ssh_private_key: pulumi.Output[str]  # secret
    ssh_username: str
    nodes: dict[str, NodeSsh] = field(default_factory=dict)


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
        nodes[name] = NodeSsh(name=name, address=spec["address"], port=port, host_keys=tuple(keys))
    if problems:
        raise SettingsError("; ".join(problems))
    return nodes


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
    return StackSettings(
        endpoint=pve.require("endpoint"),
        api_token=pve.require_secret("apiToken"),
        insecure=pve.get_bool("insecure") or False,
        vm_config_file=own.get("vmConfigFile") or DEFAULT_VM_CONFIG_FILE,
        ssh_private_key=own.require_secret("sshPrivateKey"),
        ssh_username=own.get("sshUsername") or "root",
        nodes=_nodes(own.get_object("nodes")),
    )
