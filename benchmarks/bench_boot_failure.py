"""Benchmark: time to a *named* failure for a bad package vs time to readiness of a good VM.

Both boot the same image without a guest agent (`debian-bookworm`, or `--image`), VM 8101 of
tests/data/realboot_vms.json without features, through the product's own path
(`phoenix.localboot.run.booted`: rendered seed, qemu, `wait_for_ready` over the agent socket):

- good: `packages: [htop]`: seconds from qemu start until readiness returns (agent answered,
  cloud-init done);
- bad: `packages: [htop, phoenix-no-such-package]`: seconds from qemu start until readiness
  raises, and only counted when its message quotes apt's "E: Unable to locate package".

Boots alternate good/bad, one at a time. Prints a markdown table of medians and the ratio
(target: bad <= 1.2x good). Needs root, qemu, debootstrap and Debian's mirror.

    sudo .venv/bin/python benchmarks/bench_boot_failure.py [--boots 3] [--image debian-trixie]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phoenix.config import load_config  # noqa: E402
from phoenix.localboot.run import BootImage, booted, resolve_image  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "realboot_vms.json"
MISSING = "phoenix-no-such-package"
CAUSE = f"E: Unable to locate package {MISSING}"
TIMEOUT_S = 900.0


def one_boot(image: BootImage, packages: tuple[str, ...]) -> tuple[float, str]:
    """(seconds from qemu start to the verdict, "ready" or "named" or what went wrong)."""
    vm = dataclasses.replace(load_config(CONFIG).vm(8101), packages=packages, features=())
    with booted(vm, image, log=lambda _: None, timeout_s=TIMEOUT_S) as boot:
        seconds = time.monotonic() - boot.guest.started_at
        error = boot.readiness_error
        if error is None:
            return seconds, "ready"
        if error.stage == "cloud-init" and CAUSE in error.message:
            return seconds, "named"
        return seconds, f"unexpected {error.stage} failure: {error.message[:300]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3, help="boots per variant (default 3)")
    parser.add_argument("--image", default="debian-bookworm", help="a built-in image without agent")
    args = parser.parse_args()
    image = resolve_image(args.image, log=lambda m: print(m, file=sys.stderr))
    variants = {"good VM (htop): ready": ("htop",),
                f"bad package ({MISSING}): failure named": ("htop", MISSING)}
    expected = {name: ("ready" if len(pkgs) == 1 else "named") for name, pkgs in variants.items()}
    results: dict[str, list[tuple[float, str]]] = {name: [] for name in variants}
    for n in range(args.boots):
        for name, packages in variants.items():
            seconds, verdict = one_boot(image, packages)
            results[name].append((seconds, verdict))
            print(f"boot {n + 1}/{args.boots} {name}: {verdict} after {seconds:.1f} s",
                  file=sys.stderr, flush=True)
            if verdict != expected[name]:
                raise SystemExit(f"{name}: expected {expected[name]}, got {verdict}")
    accel = "KVM" if Path("/sys/module/kvm_intel").exists() or \
        Path("/sys/module/kvm_amd").exists() else "TCG (no hardware KVM)"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"Machine: {cpu}, {os.cpu_count()} cores; accelerator: {accel}; image: {args.image}; "
          f"guest: 2 vCPU, 2048 MiB; {args.boots} boots each, alternating.\n")
    print("| variant | median (s) | runs (s) |")
    print("|---|---:|---|")
    medians = []
    for name, runs in results.items():
        median = statistics.median(r[0] for r in runs)
        medians.append(median)
        print(f"| {name} | {median:.1f} | {', '.join(f'{r[0]:.0f}' for r in runs)} |")
    ratio = medians[1] / medians[0]
    print(f"\nbad package named / good VM ready: {ratio:.2f}x (target <= 1.2x: "
          f"{'met' if ratio <= 1.2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
