"""`python -m phoenix`: the offline commands (validate, render) and the ones that talk to a VM
(wait, boot). A user mistake ends in a message and an exit code, never a traceback.

Exit codes: 0 done; 1 what the command checks or does failed; 2 the command could not start
(usage, input, unknown vmid). Every failure message starts with `error: ` (docs/cli.md)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from phoenix.cli_support import (
    DEFAULT_FILE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ArgumentParser,
    add_file_argument,
    add_vmid_argument,
    fail,
    load_or_report,
    load_vm_or_report,
)
from phoenix.cloudinit import render_seed

# Sub-commands that live with the code they drive: module path -> (name, help).
PLUGGED_COMMANDS = {
    "phoenix.readiness.cli": ("wait", "wait for a VM's guest agent and cloud-init through the PVE API"),
    "phoenix.localboot.cli": ("boot", "boot a VM's first boot locally in qemu and report on it"),
    "phoenix.remote.cli": ("ssh", "Pulumi's SSH key: print its public half, rotate it on a host"),
    "phoenix.stackinit.cli": ("init", "write the stack config for a first `pulumi up` (or --check it offline)"),
    "phoenix.doctor.cli": ("doctor", "check the cluster with your token before the first `pulumi up`"),
    "phoenix.localboot.template_cli": ("template", "templates: bake one locally in qemu (template bake NAME)"),
    "phoenix.up.cli": ("up", "pulumi preview, refuse unasked rebuilds/deletes of VMs, then pulumi up --plan"),
    "phoenix.data.cli": ("data", "data disks: list their holders; delete a VM's data on purpose"),
}


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_or_report(args.file, invalid=EXIT_FAILED)
    if isinstance(config, int):
        return config
    rows = [("VMID", "NAME", "NODE", "SOURCE", "CPU", "MEM", "DISK", "IP", "FEATURES")]
    for vm in config.vms:
        source = f"clone {vm.clone_from}" if vm.clone_from is not None else f"image {vm.image}"
        rows.append((str(vm.vmid), vm.name, vm.node, source, str(vm.cores), f"{vm.memory_mb}M",
                     f"{vm.disk_gb}G", vm.network_config.ip.with_prefixlen,
                     ",".join(f.name for f in vm.features) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{args.file}: OK, {len(config.vms)} VM(s)")
    for image in config.images.values():
        if image.checksum is None:  # the explicit opt-out: said at every check, never silent
            print(f'warning: images.{image.name}: "checksum": "unverified": the node downloads '
                  f"{image.url} without verifying it (give sha256:<digest> from its SHA256SUMS)",
                  file=sys.stderr)
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    vm = load_vm_or_report(args.file, args.vmid)
    if isinstance(vm, int):
        return vm
    try:
        seed = render_seed(vm, args.extra_key or ())
    except ValueError as exc:
        return fail(exc, EXIT_USAGE)
    parts = {"user-data": seed.user_data, "network-config": seed.network_config, "meta-data": seed.meta_data}
    chosen = [args.part] if args.part else list(parts)
    for part in chosen:
        if not args.part:
            print(f"# ---- {part} ----")
        sys.stdout.write(parts[part])
    if not args.extra_key:
        print("note: `pulumi up` also adds the public half of phoenix-hypervisor:sshPrivateKey to "
              "the user's keys (--extra-key shows it).", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from phoenix.config import SCHEMA_PATH

    sys.stdout.write(SCHEMA_PATH.read_text())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m phoenix", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check the VM config file; print a table of its VMs")
    p.add_argument("file", nargs="?", default=DEFAULT_FILE)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print what a VM's first boot receives (cloud-init)")
    add_vmid_argument(p)
    add_file_argument(p)
    p.add_argument("--part", choices=["user-data", "network-config", "meta-data"])
    p.add_argument("--extra-key", action="append", metavar="PUBKEY",
                   help="another public key line for the VM's user (repeatable)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("schema", help="print the JSON Schema of the config file")
    p.set_defaults(func=cmd_schema)

    for module_name, (name, help_text) in PLUGGED_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(func=module.run, accepts_extra=getattr(module, "ACCEPTS_EXTRA_ARGS", False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `up` passes options it does not know on to `pulumi up`; every other command refuses them.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
