"""What every sub-command of `python -m phoenix` does with the config file: load it, or say
why not (one line per problem, never a traceback), and find the VM a command is about."""

from __future__ import annotations

import argparse
import os
import sys

from phoenix.config import Config, ConfigError, ConfigFileError, VmConfig, load_config

DEFAULT_FILE = os.environ.get("PHOENIX_VM_CONFIG_FILE", "phoenix_vm_configs.json")
EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", default=DEFAULT_FILE,
                        help=f"the VM config file (default: {DEFAULT_FILE}, or $PHOENIX_VM_CONFIG_FILE)")


def fail(message: object, code: int) -> int:
    """Print `error: message` on stderr; return the exit code (`return fail(...)`)."""
    print(f"error: {message}", file=sys.stderr)
    return code


def load_or_report(path: str) -> Config | int:
    """The config, or EXIT_UNREADABLE / EXIT_INVALID after printing why it cannot be used."""
    try:
        return load_config(path)
    except ConfigFileError as exc:
        return fail(exc, EXIT_UNREADABLE)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was created.", file=sys.stderr)
        return EXIT_INVALID


def load_vm_or_report(path: str, vmid: int) -> VmConfig | int:
    """The VM with this vmid, or an exit code after printing why there is none."""
    config = load_or_report(path)
    if isinstance(config, int):
        return config
    try:
        return config.vm(vmid)
    except KeyError:
        known = ", ".join(str(v.vmid) for v in config.vms) or "none"
        return fail(f"no VM with vmid {vmid} in {path} (known: {known})", EXIT_INVALID)
