"""SSH to each node the config uses, with the stack's key and the node's pinned host keys: what
the snippet upload and the ZFS properties need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from phoenix.config import Config
from phoenix.doctor.findings import Finding
from phoenix.stackinit.pulumi_cli import PROJECT

if TYPE_CHECKING:
    from phoenix.resources.settings import NodeSsh

CONNECT_DEADLINE_S = 15.0


def _datasets(session, config: Config, node: str) -> list[Finding]:
    """Each `zfs` entry's dataset exists on the node (read with `zfs get`, as the ZfsProperty
    resource reads it; nothing is changed)."""
    from phoenix.zfs.remote_zfs import ZfsError, get_property

    findings = []
    for i, entry in enumerate(config.zfs):
        if entry.node != node or not entry.properties:
            continue
        try:
            get_property(session, entry.dataset, next(iter(entry.properties)), sudo=False)
        except ZfsError as exc:
            findings.append(Finding(
                f"zfs[{i}] {entry.dataset} on {node}", str(exc),
                f"set zfs[{i}].dataset to one of the node's datasets (zfs list -o name on {node}), "
                "or remove the entry"))
    return findings


def nodes_in_use(config: Config) -> list[str]:
    names = [vm.node for vm in config.vms] + [z.node for z in config.zfs]
    names += [i.node for i in config.images.values() if i.node]
    return list(dict.fromkeys(names))


def check_ssh(config: Config, nodes: dict[str, NodeSsh], private_key: str | None,
              default_user: str) -> list[Finding]:
    from phoenix.remote import SshError, SshTarget
    from phoenix.remote.ssh import connect

    findings = []
    for name in nodes_in_use(config):
        subject = f"node {name} (ssh)"
        spec = nodes.get(name)
        if spec is None:
            findings.append(Finding(subject, f"no {PROJECT}:nodes.{name} entry: its address and host key are "
                                    "unknown, so SSH to it cannot be checked (and bpg would trust any host key)",
                                    f"python -m phoenix init --node {name} --node-address ADDRESS"))
            continue
        if not spec.host_keys:
            findings.append(Finding(subject, "no pinned host key (hostKeys is empty)",
                                    f"python -m phoenix init --node {name} --node-address {spec.address}"))
            continue
        if not private_key:
            findings.append(Finding(subject, f"{PROJECT}:sshPrivateKey is not set",
                                    f"pulumi config set --secret {PROJECT}:sshPrivateKey < KEYFILE"))
            break
        user = spec.user or default_user
        target = SshTarget(host=spec.address, port=spec.port, username=user, private_key=private_key,
                           host_keys=spec.host_keys, connect_deadline_s=CONNECT_DEADLINE_S,
                           attempt_timeout_s=5.0)
        try:
            with connect(target) as session:
                findings += _datasets(session, config, name)
        except SshError as exc:
            fixes = {
                "host-key": f"compare the node's key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on "
                            f"its console) and re-pin it: python -m phoenix init --node {name} "
                            f"--node-address {spec.address}",
                "auth": f"add the public half (python -m phoenix ssh public-key < KEYFILE) to "
                        f"~{user}/.ssh/authorized_keys on {name}",
            }
            findings.append(Finding(subject, str(exc), fixes.get(exc.step, f"check that {spec.address}:"
                                                                  f"{spec.port} is reachable and runs sshd")))
    return findings
