"""`python -m phoenix boot VMID [--file FILE] --image IMAGE`: a VM's first boot, locally in qemu.

IMAGE is a built-in debootstrap image (`debian-bookworm` or `debian-trixie`: no guest agent,
like a stock cloud image; `debian-bookworm-agent`, `debian-trixie-agent`: agent baked in), built
and cached on first use, or the path of a
disk image: a cloud image with its own bootloader, or with `--kernel/--initrd/--append` a root
disk for direct kernel boot. Progress goes to stderr, the report to stdout (`--json` for
scripts). Exit 0 only when everything passed; 1 when the boot or a check failed; 2 for a
config or usage problem.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from phoenix.cli_support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_file_argument,
    add_vmid_argument,
    fail,
    load_vm_or_report,
)
from phoenix.localboot.image import RECIPES, ImageBuildError
from phoenix.localboot.qemu import QemuError
from phoenix.localboot.run import LocalBootError, boot_vm, resolve_image
from phoenix.localboot.seed import SeedError

EXIT_PASSED = EXIT_OK  # the shared exit codes (docs/cli.md)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_vmid_argument(parser)
    add_file_argument(parser)
    parser.add_argument(
        "--image", required=True, metavar="IMAGE",
        help=f"a disk image file, or a built-in image: {', '.join(sorted(RECIPES))}")
    parser.add_argument("--kernel", help="kernel for direct boot (an image without bootloader)")
    parser.add_argument("--initrd", help="initrd for direct boot (needs --kernel)")
    parser.add_argument("--append", help="kernel command line for direct boot (needs --kernel)")
    parser.add_argument("--disk-gb", type=int, metavar="GB",
                        help="size of the guest's disk, a sparse overlay over the image "
                             "(default: the VM's disk_gb)")
    parser.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto",
                        help="auto: KVM only on real Intel/AMD KVM, else TCG")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds to wait for readiness (default: guest_agent.timeout_s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    vm = load_vm_or_report(args.file, args.vmid)
    if isinstance(vm, int):
        return EXIT_USAGE
    if args.image not in RECIPES and Path(args.image).expanduser().is_dir():
        return fail(f"--image {args.image!r} is a directory; give a disk image file (qcow2 or raw) "
                    f"or a built-in image: {', '.join(sorted(RECIPES))}", EXIT_USAGE)
    for flag, value in (("--kernel", args.kernel), ("--initrd", args.initrd)):
        if value is not None and Path(value).expanduser().is_dir():
            return fail(f"{flag} {value!r} is a directory, not a file", EXIT_USAGE)
    if args.disk_gb is not None and args.disk_gb < 1:
        return fail(f"--disk-gb must be at least 1, not {args.disk_gb}", EXIT_USAGE)
    if args.timeout is not None and not args.timeout > 0:
        return fail(f"--timeout must be > 0, not {args.timeout:g}", EXIT_USAGE)

    started = time.monotonic()

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        image = resolve_image(args.image, kernel=args.kernel, initrd=args.initrd,
                              append=args.append, log=progress)
    except LocalBootError as exc:
        return fail(exc, EXIT_USAGE)
    except ImageBuildError as exc:
        return fail(exc, EXIT_FAILED)
    try:
        report = boot_vm(vm, image, log=progress, accel=args.accel, disk_size_gb=args.disk_gb,
                         timeout_s=args.timeout)
    except (QemuError, SeedError, LocalBootError) as exc:
        return fail(exc, EXIT_FAILED)
    print(report.to_json() if args.json else report.render_text())
    progress(f"boot of {vm.label} took {time.monotonic() - started:.0f} s in all "
             f"(the guest was shut down and its overlay removed)")
    return EXIT_PASSED if report.passed else EXIT_FAILED
