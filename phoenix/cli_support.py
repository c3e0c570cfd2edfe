"""What every sub-command of `python -m phoenix` shares: its exit codes, its one message prefix,
the config file (load it, or say why not: one line per problem, never a traceback), and the VM a
command is about.

Exit codes, the same in every command (docs/cli.md):
    0  done: the config is valid, the VM is ready, the boot passed, the key was rotated
    1  what the command checks or does failed: the config has problems (validate), the VM is
       not ready (wait), the boot or a check failed (boot), the remote step failed (ssh rotate)
    2  the command could not start: a usage mistake, an unreadable or invalid config file (for
       commands that need a VM from it), an unknown vmid, a bad option, environment variable
       or key file
Every failure message on stderr starts with `error: `.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from phoenix.config import Config, ConfigError, ConfigFileError, VmConfig, load_config

DEFAULT_FILE = os.environ.get("PHOENIX_VM_CONFIG_FILE", "phoenix_vm_configs.json")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the house prefix: `error: ...` (not `prog: error: ...`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def vmid_argument(text: str) -> int:
    """argparse type for a VMID: a message in the user's words, not `invalid int value`."""
    try:
        vmid = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a VMID is a whole number, not {text!r}") from None
    if vmid < 1:
        raise argparse.ArgumentTypeError(f"a VMID is a positive number, not {text!r}")
    return vmid


def add_vmid_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vmid", type=vmid_argument, help="the VM's vmid in the config file")


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", default=DEFAULT_FILE,
                        help=f"the VM config file (default: {DEFAULT_FILE}, or $PHOENIX_VM_CONFIG_FILE)")


def fail(message: object, code: int) -> int:
    """Print `error: message` on stderr; return the exit code (`return fail(...)`)."""
    print(f"error: {message}", file=sys.stderr)
    return code


def load_or_report(path: str, *, invalid: int = EXIT_USAGE) -> Config | int:
    """The config, or an exit code after printing why it cannot be used: EXIT_USAGE for a file
    that cannot be read or parsed, `invalid` for one with problems (validate: EXIT_FAILED)."""
    try:
        return load_config(path)
    except ConfigFileError as exc:
        return fail(exc, EXIT_USAGE)
    except ConfigError as exc:
        for problem in exc.problems:
            fail(f"{exc.path}: {problem}", invalid)
        return fail(f"{len(exc.problems)} problem(s) in {exc.path}; nothing was created.", invalid)


def load_vm_or_report(path: str, vmid: int) -> VmConfig | int:
    """The VM with this vmid, or EXIT_USAGE after printing why there is none."""
    config = load_or_report(path)
    if isinstance(config, int):
        return config
    try:
        return config.vm(vmid)
    except KeyError:
        known = ", ".join(str(v.vmid) for v in config.vms) or "none"
        return fail(f"no VM with vmid {vmid} in {path} (known: {known})", EXIT_USAGE)


def load_stack_and_config(stack: str, file: str | None = None) -> tuple[dict[str, str | None], Config] | int:
    """The stack's config (through the Pulumi CLI) and the VM config file it names (`file` wins;
    default phoenix_vm_configs.json), or the exit code after saying why either cannot be used."""
    from phoenix.stackinit.pulumi_cli import PROJECT, PulumiCliError, PulumiStackConfig

    try:
        values, _ = PulumiStackConfig(stack).read()
    except PulumiCliError as exc:
        return fail(exc, EXIT_USAGE)
    path = file or values.get(f"{PROJECT}:vmConfigFile") or "phoenix_vm_configs.json"
    config = load_or_report(path)
    if isinstance(config, int):
        return config
    return values, config
