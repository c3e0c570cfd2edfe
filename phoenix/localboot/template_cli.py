"""`python -m phoenix template bake NAME --image IMAGE [--output BAKED]`: a template's bake, locally.

Runs the template's own bake seed (the one its Proxmox node boots) on a local disk image in
qemu, writes the sealed image to BAKED (default: NAME-baked.qcow2), checks it from the outside
(agent installed and started by the system, no machine-id, no host keys, no cloud-init state,
no apt lists), and prints how to boot a VM from it with `python -m phoenix boot`. Exit 0 when the
baked image passed; 1 when the bake or a check failed; 2 for a config or usage problem.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from phoenix.cli_support import add_file_argument, fail, load_or_report
from phoenix.localboot.bake import BakeError, bake_image, boot_command
from phoenix.localboot.bake_inspect import InspectError, inspect_baked_image
from phoenix.localboot.image import RECIPES, ImageBuildError
from phoenix.localboot.qemu import QemuError
from phoenix.localboot.run import LocalBootError, resolve_image
from phoenix.localboot.seed import SeedError

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="template_command", required=True, metavar="ACTION")
    bake = sub.add_parser("bake", help="bake a template of the config locally in qemu")
    bake.add_argument("name", help="the template's name (or vmid) in the config file")
    add_file_argument(bake)
    bake.add_argument("--image", required=True, metavar="IMAGE",
                      help=f"the cloud image to bake: a disk image file, or a built-in image: "
                           f"{', '.join(sorted(RECIPES))}")
    bake.add_argument("--kernel", help="kernel for direct boot (an image without bootloader)")
    bake.add_argument("--initrd", help="initrd for direct boot (needs --kernel)")
    bake.add_argument("--append", help="kernel command line for direct boot (needs --kernel)")
    bake.add_argument("--output", metavar="BAKED", help="where to write the baked image "
                      "(default: NAME-baked.qcow2)")
    bake.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    bake.add_argument("--timeout", type=float, metavar="S",
                      help="seconds for the whole bake (default: the template's bake_timeout_s)")


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.file)
    if isinstance(config, int):
        return EXIT_USAGE
    template = next((t for t in config.templates
                     if args.name == t.name or args.name in {str(v) for _, v in t.copies}), None)
    if template is None:
        known = ", ".join(t.name for t in config.templates) or "none"
        return fail(f"no template {args.name!r} in {args.file} (templates: {known})", EXIT_USAGE)
    if args.timeout is not None and args.timeout <= 0:
        return fail(f"--timeout must be > 0, not {args.timeout:g}", EXIT_USAGE)
    output = Path(args.output or f"{template.name}-baked.qcow2").expanduser().resolve()

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    try:
        image = resolve_image(args.image, kernel=args.kernel, initrd=args.initrd,
                              append=args.append, log=progress)
    except LocalBootError as exc:
        return fail(exc, EXIT_USAGE)
    except ImageBuildError as exc:
        return fail(exc, EXIT_FAILED)
    try:
        report = bake_image(template, image, output, log=progress, accel=args.accel,
                            timeout_s=args.timeout)
        facts = inspect_baked_image(output)
    except (BakeError, QemuError, SeedError, InspectError) as exc:
        return fail(f"bake of {template.label} failed: {exc}", EXIT_FAILED)
    stages = ", ".join(f"{stage} at {seconds:.0f} s" for stage, seconds in report.stages.items())
    print(f"baked {template.label} from {image.label} in {report.seconds:.0f} s "
          f"({report.accelerator}; {stages})")
    print(f"  image: {output}")
    print(f"  agent installed: {facts.agent_installed}, started by: {facts.agent_start}")
    print(f"  machine-id: {facts.machine_id or '(empty: a new one at first boot)'}")
    print(f"  SSH host keys: {', '.join(facts.ssh_host_keys) or 'none'}")
    print(f"  cloud-init state: {', '.join(facts.cloud_init_state + facts.cloud_init_logs) or 'none'}")
    print(f"  apt lists: {len(facts.apt_lists)}")
    print(f"  bake VM's network config: {', '.join(facts.network_config) or 'none'}")
    print(f"  first boot of a clone: agent starts with its port: {facts.agent_early}; "
          f"{facts.datasource_list or 'no datasource_list'}; apt timers without catch-up: "
          f"{', '.join(facts.apt_timers_without_catch_up) or 'none in the image'}")
    if facts.problems:
        for problem in facts.problems:
            print(f"  FAILED: {problem}")
        return EXIT_FAILED
    print(f"boot a VM from it: {boot_command(image, output)}")
    progress(f"bake took {time.monotonic() - started:.0f} s in all")
    return EXIT_PASSED
