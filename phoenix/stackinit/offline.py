"""Offline checks of a stack's configuration: everything that can be known wrong before Pulumi
or Proxmox is asked anything. Each problem names the stack config key and the command that
fixes it, so a first-time user can go down the list.

    problems = stack_problems(PulumiStackConfig("dev").get_all(), project_dir)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from phoenix.stackinit.pulumi_cli import PROJECT, parse_object

INIT = "python -m phoenix init"


@dataclass(frozen=True)
class StackProblem:
    key: str  # the stack config key (or file) at fault
    message: str
    fix: str  # the command (or edit) that fixes it

    def __str__(self) -> str:
        return f"{self.key}: {self.message}\n    fix: {self.fix}"


def _endpoint_problem(endpoint: str) -> str | None:
    from phoenix.readiness.pve import PveCredentials
    from phoenix.readiness.transport import TransportConfigError

    try:
        PveCredentials(endpoint, "check@pve!offline=x").check()
    except TransportConfigError as exc:
        return str(exc)
    return None


def _token_problem(token: str) -> str | None:
    from phoenix.readiness.pve import PveCredentials
    from phoenix.readiness.transport import TransportConfigError

    try:
        PveCredentials("https://check.invalid:8006/", token).check()
    except TransportConfigError:
        return "is not of the form user@realm!tokenid=secret"
    return None


def proxmox_problems(values: Mapping[str, str | None]) -> list[StackProblem]:
    problems = []
    endpoint = values.get("proxmoxve:endpoint")
    set_endpoint = "pulumi config set proxmoxve:endpoint https://PVE-HOST:8006/"
    if not endpoint:
        problems.append(StackProblem("proxmoxve:endpoint", "not set", f"{set_endpoint}  (or {INIT})"))
    elif (why := _endpoint_problem(endpoint)) is not None:
        problems.append(StackProblem("proxmoxve:endpoint", why, set_endpoint))
    token = values.get("proxmoxve:apiToken")
    set_token = ("pulumi config set --secret proxmoxve:apiToken 'USER@REALM!TOKENID=SECRET'  "
                 "(create the token in PVE: Datacenter > Permissions > API Tokens)")
    if not token:
        problems.append(StackProblem("proxmoxve:apiToken", "not set", set_token))
    elif (why := _token_problem(token)) is not None:
        problems.append(StackProblem("proxmoxve:apiToken", why, set_token))
    insecure = values.get("proxmoxve:insecure")
    if insecure is not None and insecure.strip().lower() not in ("true", "false"):
        problems.append(StackProblem("proxmoxve:insecure", f"must be true or false, not {insecure!r}",
                                     "pulumi config set proxmoxve:insecure false"))
    return problems


def ssh_key_problems(values: Mapping[str, str | None]) -> list[StackProblem]:
    from phoenix.remote.keys import PrivateKeyError, public_key_line

    key = f"{PROJECT}:sshPrivateKey"
    fix = (f"pulumi config set --secret {key} < ~/.ssh/phoenix_ed25519  (make one without a "
           "passphrase: ssh-keygen -t ed25519 -N '' -f ~/.ssh/phoenix_ed25519)")
    text = values.get(key)
    if not text:
        return [StackProblem(key, "not set", fix)]
    try:
        public_key_line(text)
    except PrivateKeyError as exc:
        return [StackProblem(key, str(exc), fix)]
    return []


def node_problems(values: Mapping[str, str | None], zfs_nodes: list[tuple[str, str]]) -> list[StackProblem]:
    """The `nodes` object's shape, and the nodes that ZFS entries need (address + pinned keys)."""
    from phoenix.resources.settings import SettingsError, _nodes, check_settings_for

    key = f"{PROJECT}:nodes"
    raw = parse_object(values.get(key))
    try:
        nodes = _nodes(raw)
    except SettingsError as exc:
        return [StackProblem(key, str(exc), f"{INIT} --node NAME --node-address ADDRESS")]
    problems = []
    for where, node in zfs_nodes:
        # check_settings_for only reads `.nodes`; the rest of StackSettings needs the engine.
        for message in check_settings_for([(where, node)], SimpleNamespace(nodes=nodes)):  # type: ignore[arg-type]
            address = nodes[node].address if node in nodes else "ADDRESS"
            problems.append(StackProblem(
                f"{key}.{node}", message,
                f"{INIT} --node {node} --node-address {address}  (fetches the node's host key and "
                f"shows its fingerprint for you to confirm), or pulumi config set --path "
                f"'{key}.{node}.hostKeys[0]' 'ssh-ed25519 AAAA...' (the node's "
                "/etc/ssh/ssh_host_ed25519_key.pub)"))
    return problems


def plaintext_secret_problems(plaintext: set[str]) -> list[StackProblem]:
    """Secrets set without --secret sit in plain text in Pulumi.<stack>.yaml (and in git once
    it is committed)."""
    how = {"proxmoxve:apiToken": "'USER@REALM!TOKENID=SECRET'  (and revoke the exposed token in PVE)",
           f"{PROJECT}:sshPrivateKey": "< ~/.ssh/phoenix_ed25519  (and replace the key if the file was shared)"}
    return [StackProblem(key, "is stored in plain text in the stack file, not as a secret",
                         f"pulumi config set --secret {key} {how[key]}")
            for key in sorted(plaintext) if key in how]


def stack_problems(values: Mapping[str, str | None], project_dir: Path,
                   plaintext: set[str] | None = None) -> list[StackProblem]:
    """Every problem of the stack config and the VM config it names, in the order to fix them."""
    from phoenix.config import ConfigError, ConfigFileError, load_config

    problems = proxmox_problems(values) + plaintext_secret_problems(plaintext or set()) + ssh_key_problems(values)
    vm_file = values.get(f"{PROJECT}:vmConfigFile") or "phoenix_vm_configs.json"
    path = Path(vm_file) if Path(vm_file).is_absolute() else project_dir / vm_file
    try:
        config = load_config(path)
    except ConfigFileError as exc:
        problems.append(StackProblem(f"{PROJECT}:vmConfigFile", str(exc),
                                     f"pulumi config set {PROJECT}:vmConfigFile FILE.json"))
        config = None
    except ConfigError as exc:
        from phoenix.config.ssh_keys import FIX_PLACEHOLDER

        problems.extend(StackProblem(vm_file, str(p), f"{FIX_PLACEHOLDER} --file {vm_file}"
                                     if FIX_PLACEHOLDER in p.message else
                                     f"edit {vm_file} (python -m phoenix validate {vm_file})")
                        for p in exc.problems)
        config = None
    first_use = {z.node: f"zfs[{i}]" for i, z in reversed(list(enumerate(config.zfs)))} if config else {}
    zfs_nodes = [(where, node) for node, where in first_use.items()]
    problems.extend(node_problems(values, zfs_nodes))
    return problems
