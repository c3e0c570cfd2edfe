"""`python -m phoenix init`: write the stack config for a first `pulumi up`, from flags or by
asking; `python -m phoenix init --check`: say what is missing or wrong, offline (scripts/up.sh
runs it before `pulumi up`).

Every value is checked before anything is written; secrets go to `pulumi config set --secret`
on standard input. The node's SSH host key is fetched and shown with its fingerprint, and
pinned only when the user confirms it (a yes, or --host-key-fingerprint that matches).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.cli_support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from phoenix.stackinit.admin_key import AdminKeyError, config_placeholders, read_admin_key, write_admin_key
from phoenix.stackinit.hostkey_fetch import HostKeyFetchError, fetch_host_keys
from phoenix.stackinit.offline import proxmox_problems, ssh_key_problems, stack_problems
from phoenix.stackinit.pulumi_cli import (
    PROJECT,
    PulumiCliError,
    PulumiStackConfig,
    remove,
    select_or_create,
)

DEFAULT_STACK = os.environ.get("PHOENIX_STACK", "dev")
PROJECT_DIR = Path.cwd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"the Pulumi stack (default {DEFAULT_STACK})")
    parser.add_argument("--check", action="store_true",
                        help="only check the stack config offline and say what to fix (exit 1 if anything)")
    parser.add_argument("--endpoint", help="the PVE API, e.g. https://pve.lab:8006/")
    parser.add_argument("--token-file", metavar="FILE",
                        help="a file holding the API token user@realm!id=secret ('-': standard input); "
                             "default $PROXMOX_VE_API_TOKEN, else asked")
    parser.add_argument("--insecure", choices=["true", "false"], help="accept a self-signed PVE certificate")
    parser.add_argument("--key-file", metavar="FILE", help="the private SSH key Pulumi uses (unencrypted)")
    parser.add_argument("--ssh-user", help="the SSH user on the nodes (default root)")
    parser.add_argument("--node", help="the Proxmox node name, e.g. pve")
    parser.add_argument("--node-address", help="the node's SSH address")
    parser.add_argument("--node-port", type=int, default=None, help="the node's SSH port (default 22)")
    parser.add_argument("--host-key-fingerprint", metavar="SHA256:...",
                        help="confirm the node's fetched host key by its fingerprint (non-interactive)")
    parser.add_argument("--host-key", metavar="'TYPE BASE64'",
                        help="pin this host key line as it is (from the node's console), without fetching")
    parser.add_argument("--admin-key", metavar="FILE.pub",
                        help="your SSH public key: replaces the example's key placeholder in the VM config "
                             "file (the VMs' admin user gets this key and no other)")
    parser.add_argument("--file", metavar="FILE",
                        help="the VM config file (default phoenix_vm_configs.json); also set as the stack's "
                             "vmConfigFile when init writes the stack config")
    parser.add_argument("--interactive", action="store_true",
                        help="ask for every value not given as a flag (the default on a terminal)")


@dataclass
class Answers:
    """What will be written, checked before anything is."""

    endpoint: str | None = None
    token: str | None = None
    insecure: str | None = None
    private_key: str | None = None
    ssh_user: str | None = None
    node: str | None = None
    address: str | None = None
    port: int | None = None
    host_keys: list[str] = field(default_factory=list)
    admin_key: str | None = None  # the user's public key line, for the VM config file
    config_file: str | None = None  # --file: written as vmConfigFile

    def stack_values(self) -> bool:
        """Whether anything goes to the stack config (else Pulumi is not needed)."""
        return any((self.endpoint, self.token, self.private_key, self.node, self.address)) \
            or bool(self.host_keys)


class Prompter:
    """Asks on the terminal (or standard input with --interactive)."""

    def __init__(self, enabled: bool, ask: Callable[[str], str] = input,
                 ask_secret: Callable[[str], str] | None = None) -> None:
        self.enabled = enabled
        self.ask = ask
        self.ask_secret = ask_secret or (getpass.getpass if sys.stdin.isatty() else ask)

    def value(self, prompt: str, default: str | None = None, secret: bool = False) -> str | None:
        if not self.enabled:
            return None  # non-interactive: only what the flags give is written
        suffix = f" [{default}]" if default and not secret else ""
        try:
            answer = (self.ask_secret if secret else self.ask)(f"{prompt}{suffix}: ").strip()
        except EOFError:
            return default
        return answer or default

    def confirm(self, prompt: str) -> bool:
        if not self.enabled:
            return False
        try:
            return self.ask(f"{prompt} [y/N]: ").strip().lower() in ("y", "yes")
        except EOFError:
            return False


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).expanduser().read_text()


def gather(args: argparse.Namespace, prompt: Prompter) -> tuple[Answers, list[str]]:
    """The values from flags and answers, and every problem with them."""
    problems: list[str] = []
    a = Answers()
    a.endpoint = args.endpoint or prompt.value("PVE API endpoint (https://HOST:8006/)")
    token = None
    if args.token_file:
        try:
            token = _read(args.token_file).strip()
        except OSError as exc:
            problems.append(f"--token-file: cannot read {args.token_file}: {exc.strerror}")
    token = token or os.environ.get("PROXMOX_VE_API_TOKEN") or prompt.value(
        "API token (user@realm!tokenid=secret)", secret=True)
    a.token = token or None
    a.insecure = args.insecure or prompt.value("Accept a self-signed certificate? (true/false)", "false")
    key_file = args.key_file or prompt.value("Private SSH key file for Pulumi", "~/.ssh/phoenix_ed25519")
    if key_file:
        try:
            a.private_key = Path(key_file).expanduser().read_text()
        except OSError as exc:
            problems.append(f"--key-file: cannot read {key_file}: {exc.strerror} (make a key: "
                            f"ssh-keygen -t ed25519 -N '' -f {key_file})")
    a.ssh_user = args.ssh_user or prompt.value("SSH user on the nodes", "root")
    a.node = args.node or prompt.value("Proxmox node name", "pve")
    a.address = args.node_address or (prompt.value(f"SSH address of node {a.node}") if a.node else None)
    a.port = args.node_port
    if a.port is None and a.address:
        port_text = prompt.value("SSH port", "22")
        a.port = int(port_text) if port_text and port_text.isdigit() else None
        if port_text and not port_text.isdigit():
            problems.append(f"SSH port: {port_text!r} is not a number")
    if a.port is not None and not 0 < a.port < 65536:
        problems.append(f"--node-port: {a.port} is not a TCP port")

    a.config_file = args.file
    values = {"proxmoxve:endpoint": a.endpoint, "proxmoxve:apiToken": a.token,
              "proxmoxve:insecure": a.insecure, f"{PROJECT}:sshPrivateKey": a.private_key}
    problems += [f"{p.key}: {p.message}" for p in proxmox_problems(values) if p.message != "not set"]
    if a.private_key:
        problems += [f"{p.key}: {p.message}" for p in ssh_key_problems(values)]
    if a.address and not a.node:
        problems.append("--node-address needs --node (the node's name in Proxmox)")
    if args.host_key and not (a.node and a.address):
        problems.append("--host-key needs --node and --node-address")
    return a, problems


def config_path(file: str | None) -> Path:
    path = Path(file or "phoenix_vm_configs.json").expanduser()
    return path if path.is_absolute() else PROJECT_DIR() / path


def _admin_key(args: argparse.Namespace, a: Answers, prompt: Prompter) -> list[str]:
    """--admin-key (or, when the config file still has the example's placeholder, asked)."""
    source = args.admin_key
    if not source and config_placeholders(config_path(args.file)):
        # No default: an empty answer (or end of input) writes no key rather than guess one.
        source = prompt.value("Your SSH public key for the VMs' admin user (a .pub file such as "
                              "~/.ssh/id_ed25519.pub; empty: skip)")
    if not source:
        return []
    try:
        a.admin_key = read_admin_key(source)
    except AdminKeyError as exc:
        return [str(exc)]
    return []


def write_config_file(args: argparse.Namespace, a: Answers) -> str | None:
    """Put the admin key in the VM config file; -> what was done, for the summary line."""
    if not a.admin_key:
        return None
    path = config_path(args.file)
    try:
        replaced = write_admin_key(path, a.admin_key)
    except (OSError, ValueError, AdminKeyError) as exc:
        raise AdminKeyError(f"{path}: cannot write the admin key: {exc}") from None
    if replaced:
        return f"{path}: your public key replaces the example's placeholder"
    return (f"{path}: has no key placeholder, left as it is (your key is not added: the keys there "
            "are your choice; edit user.ssh_authorized_keys)")


def confirm_host_keys(args: argparse.Namespace, a: Answers, prompt: Prompter) -> list[str]:
    """Pin the given key, or fetch the node's keys and pin what the user confirms. -> problems"""
    from phoenix.remote.hostkeys import check_host_key_lines

    if args.host_key:
        problems = check_host_key_lines([args.host_key])
        if not problems:
            a.host_keys = [" ".join(args.host_key.split()[:2])]
        return [f"--host-key: {p}" for p in problems]
    if not a.address:
        return []
    port = a.port or 22
    try:
        fetched = fetch_host_keys(a.address, port)
    except HostKeyFetchError as exc:
        return [f"{PROJECT}:nodes.{a.node}.hostKeys: {exc} (give the key with --host-key 'TYPE BASE64')"]
    print(f"Node {a.node} ({a.address}:{port}) offers these SSH host keys:")
    for key in fetched:
        print(f"  {key.line.split()[0]:<20} {key.fingerprint}")
    print("Compare with the node's own console: for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $f; done")
    if args.host_key_fingerprint:
        chosen = [k for k in fetched if k.fingerprint == args.host_key_fingerprint.strip()]
        if not chosen:
            return [f"--host-key-fingerprint {args.host_key_fingerprint} matches none of the keys the node "
                    "offered: nothing pinned (a different host may be answering at that address)"]
        a.host_keys = [chosen[0].line]
        return []
    if prompt.confirm("Are these the node's keys? Pin them"):
        a.host_keys = [k.line for k in fetched]
        return []
    return [f"{PROJECT}:nodes.{a.node}.hostKeys: not confirmed, nothing pinned (rerun with "
            "--host-key-fingerprint SHA256:... after comparing the fingerprints above)"]


def write(stack: PulumiStackConfig, a: Answers) -> list[str]:
    """`pulumi config set` each answer; -> the keys written."""
    written = []

    def put(key: str, value: str, **kw: bool) -> None:
        stack.set(key, value, **kw)
        written.append(key + (" (secret)" if kw.get("secret") else ""))

    if a.endpoint:
        put("proxmoxve:endpoint", a.endpoint)
    if a.token:
        put("proxmoxve:apiToken", a.token, secret=True)
    if a.insecure:
        put("proxmoxve:insecure", a.insecure)
    if a.private_key:
        put(f"{PROJECT}:sshPrivateKey", a.private_key, secret=True)
    if a.ssh_user:
        put(f"{PROJECT}:sshUsername", a.ssh_user)
    if a.config_file:
        put(f"{PROJECT}:vmConfigFile", a.config_file)
    if a.node and a.address:
        base = f"{PROJECT}:nodes.{a.node}"
        put(f"{base}.address", a.address, path=True)
        if a.port and a.port != 22:
            put(f"{base}.port", str(a.port), path=True)
        if a.host_keys:
            remove(stack, f"{base}.hostKeys", path=True)
            for i, line in enumerate(a.host_keys):
                put(f"{base}.hostKeys[{i}]", line, path=True)
    return written


def run_check(stack: PulumiStackConfig) -> int:
    try:
        values, plaintext = stack.read()
    except PulumiCliError as exc:
        return fail(exc, EXIT_USAGE)
    problems = stack_problems(values, PROJECT_DIR(), plaintext)
    if not problems:
        print(f"stack {stack.stack}: the config is complete")
        return EXIT_OK
    for problem in problems:
        fail(problem, EXIT_FAILED)
    return fail(f"stack {stack.stack}: {len(problems)} thing(s) to fix before `pulumi up`.",
                EXIT_FAILED)


def run(args: argparse.Namespace) -> int:
    stack = PulumiStackConfig(args.stack)
    if args.check:
        return run_check(stack)
    prompt = Prompter(enabled=args.interactive or sys.stdin.isatty())
    answers, problems = gather(args, prompt)
    if not problems:
        problems = confirm_host_keys(args, answers, prompt)
    if not problems:
        problems = _admin_key(args, answers, prompt)  # asked last: earlier answers keep their order
    if problems:
        for problem in problems:
            fail(problem, EXIT_FAILED)
        # The outcome, on stdout: stderr holds only the `error:` lines (docs/cli.md "Messages").
        print("nothing was written.")
        return EXIT_FAILED
    try:
        done = write_config_file(args, answers)
    except AdminKeyError as exc:
        return fail(exc, EXIT_FAILED)
    if done:
        print(done)
        if not answers.stack_values():
            return EXIT_OK  # only the config file: no Pulumi needed
    try:
        select_or_create(stack)
        written = write(stack, answers)
    except PulumiCliError as exc:
        return fail(exc, EXIT_USAGE)
    print(f"stack {args.stack}: set {', '.join(written) or 'nothing'}")
    return run_check(stack)
