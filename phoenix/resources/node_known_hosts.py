"""The nodes' pinned host keys, made to protect the proxmoxve provider's own SSH (snippet upload).

bpg's SSH client (proxmox/ssh/client.go, `openNodeShell`) reads `~/.ssh/known_hosts` of the user
running Pulumi (`os.UserHomeDir()`), through skeema/knownhosts:
- a host with no entry there: any key is accepted and appended (trust on first use);
- a host with entries: only those key types are negotiated (`HostKeyAlgorithms`,
  `createSSHClientWithPrivateKey`), and a key that is not among them is refused
  ("REMOTE HOST IDENTIFICATION HAS CHANGED").
So once a node's pinned `phoenix-hypervisor:nodes.<node>.hostKeys` are that node's entries in
known_hosts, the provider accepts exactly the pinned keys. `ensure_known_hosts` adds the pinned
keys that are missing (as "addr" for port 22, "[addr]:port" otherwise: the name bpg looks up,
`address:port` from the provider's `ssh.nodes`) and refuses to go on when the file already trusts
a key for that address that is *not* pinned (bpg would accept it too).

Nodes with no `hostKeys`, or not listed in `phoenix-hypervisor:nodes` at all (bpg then finds
their address through the API), stay trust-on-first-use: `unpinned_nodes` names them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from phoenix.remote.hostkeys import HostKeyFormatError, PinnedKey, parse_pinned_keys
from phoenix.resources.settings import PROJECT, NodeSsh


class KnownHostsConflict(Exception):
    """known_hosts trusts a key for a node that is not pinned. One line per node."""


def known_hosts_name(address: str, port: int) -> str:
    """The name Go's knownhosts.Normalize gives `address:port` (what bpg writes and looks up)."""
    if port != 22:
        return f"[{address}]:{port}"
    return f"[{address}]" if ":" in address else address


def _trusted(existing: str, address: str, port: int) -> list[PinnedKey]:
    keys: list[PinnedKey] = []
    for line in existing.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.lstrip().startswith(("#", "@")):
            continue  # bpg's knownhosts ignores @cert-authority/@revoked lines for plain keys
        try:
            keys.extend(parse_pinned_keys([line], host=address, port=port))
        except HostKeyFormatError:
            continue  # a line bpg could not use either
    return keys


@dataclass(frozen=True)
class KnownHostsPlan:
    add: tuple[str, ...]  # known_hosts lines to append
    conflicts: tuple[str, ...]  # one message per node whose entries trust an unpinned key


def plan_known_hosts(nodes: Mapping[str, NodeSsh], existing: str) -> KnownHostsPlan:
    add: list[str] = []
    conflicts: list[str] = []
    for node in nodes.values():
        if not node.host_keys:
            continue
        pinned = parse_pinned_keys(node.host_keys)
        name = known_hosts_name(node.address, node.port)
        trusted = _trusted(existing, node.address, node.port)
        extra = [k for k in trusted if k.blob not in {p.blob for p in pinned}]
        if extra:
            conflicts.append(
                f"{PROJECT}:nodes.{node.name}: ~/.ssh/known_hosts trusts {extra[0].key_type} "
                f"{extra[0].fingerprint} for {name}, which is not pinned in hostKeys; the proxmoxve "
                f"provider would accept it when it uploads snippets. Remove it "
                f"(`ssh-keygen -R '{name}'`) or pin it.")
            continue
        have = {k.blob for k in trusted}
        for key in pinned:
            if key.blob not in have:
                add.append(f"{name} {key.key_type} {base64.b64encode(key.blob).decode()}")
    return KnownHostsPlan(tuple(add), tuple(conflicts))


def default_known_hosts() -> Path:
    """The file bpg reads: $HOME/.ssh/known_hosts (Go's os.UserHomeDir)."""
    return Path(os.environ.get("HOME") or Path.home()) / ".ssh" / "known_hosts"


def ensure_known_hosts(nodes: Mapping[str, NodeSsh], path: Path | None = None) -> list[str]:
    """Append the missing pinned keys; raise KnownHostsConflict listing every conflicting node.
    Returns the lines added."""
    path = path or default_known_hosts()
    existing = path.read_text(errors="replace") if path.exists() else ""
    plan = plan_known_hosts(nodes, existing)
    if plan.conflicts:
        raise KnownHostsConflict("\n".join(plan.conflicts))
    if plan.add:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            prefix = "" if not existing or existing.endswith("\n") else "\n"
            handle.write(prefix + "".join(f"{line}\n" for line in plan.add))
    return list(plan.add)


def unpinned_nodes(vm_nodes: Iterable[str], nodes: Mapping[str, NodeSsh]) -> list[str]:
    """Nodes that get snippets but whose SSH host key the provider will trust on first use."""
    return sorted({n for n in vm_nodes if n not in nodes or not nodes[n].host_keys})
