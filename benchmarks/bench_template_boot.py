"""Benchmark: first boot with the seed's user-data vs. a VM cloned from a baked template.

- seed: the debootstrap image without agent and the seed's Stage 1 user-data verbatim
  (package_update + install qemu-guest-agent), as in benchmarks/bench_boot.py.
- baked: the same image baked by `phoenix.localboot.bake.bake_image` with the template of
  tests/data/realboot_templates.json (the bake seed a Proxmox node runs), then VM 8301's own
  rendered user-data (agent preinstalled, package_update false: no apt call).

Same run, boots one at a time, alternating. For each boot: seconds from qemu start until
Phoenix's own readiness wait (`wait_for_ready` over the agent socket, as `python -m phoenix boot`
runs it: the same probe and pacing as on Proxmox) saw the agent answer and cloud-init finish.
Prints a markdown table of medians, then where the last baked boot's time went (the guest's
`systemd-analyze` and `cloud-init analyze blame`, from the boot report). Needs root, qemu,
debootstrap, Debian's mirror.

    sudo .venv/bin/python benchmarks/bench_template_boot.py [--boots 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from phoenix.config import load_config  # noqa: E402
from phoenix.config.model import VmConfig  # noqa: E402
from phoenix.localboot.bake import bake_image  # noqa: E402
from phoenix.localboot.run import BootImage, booted, resolve_image  # noqa: E402
from phoenix.localboot.seed import SEED_USER_DATA  # noqa: E402

CONFIG = ROOT / "tests" / "data" / "realboot_templates.json"
SEED_CONFIG = ROOT / "tests" / "data" / "realboot_vms.json"
# A qemu guest's command line starts with the binary; a shell that merely mentions the name
# (`pgrep -f qemu-system` typed by someone) must not count as a running guest.
QEMU_PROCESS = r"^(\S*/)?qemu-system-"


def wait_for_other_guests(limit_s: float = 900) -> None:
    deadline = time.monotonic() + limit_s
    while subprocess.run(["pgrep", "-f", QEMU_PROCESS], capture_output=True, check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise SystemExit("another qemu guest kept running; not measuring beside it")
        time.sleep(5)


def readiness_boot(vm: VmConfig, image: BootImage, user_data: str | None, *, timing: bool = False
                   ) -> tuple[float, float, str, str]:
    """One first boot: (s to agent, s to cloud-init done, status, boot timing text)."""
    with booted(vm, image, user_data=user_data, accel="tcg", log=lambda _m: None) as boot:
        report = boot.report
        if boot.readiness_error is not None or report.seconds_to_cloud_init_done is None:
            raise SystemExit(f"boot of {vm.label} failed: {report.render_text()}")
        if timing:
            boot.collect_facts()
        return (report.seconds_to_agent, report.seconds_to_cloud_init_done,
                report.cloud_init_status or "?", report.boot_timing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--image", default="debian-bookworm",
                        help="local image to bake and boot (debian-bookworm: cloud-init 22.4, one "
                             "Python process per stage; debian-trixie: cloud-init 25.1, one "
                             "process for all stages)")
    args = parser.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    config = load_config(CONFIG)
    base = resolve_image(args.image, log=log)
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-bake-") as tmp:
        output = Path(tmp) / "baked.qcow2"
        wait_for_other_guests()
        report = bake_image(config.templates[0], base, output, log=log, accel="tcg")
        baked = BootImage("baked", output, base.kernel, base.initrd, base.append)
        # The seed boots as VM 8101 of realboot_vms.json (its network-config and meta-data),
        # with the original plan's user-data; the baked clone is VM 8301 with its own user-data.
        seed_vm, baked_vm = load_config(SEED_CONFIG).vm(8101), config.vm(8301)
        variants = {"seed user-data, image without agent": (seed_vm, base, SEED_USER_DATA),
                    # None: the VM's own rendered user-data (plus the run's SSH key, which the
                    # boot report's SSH facts need)
                    "clone of the baked template (no apt)": (baked_vm, baked, None)}
        results: dict[str, list[tuple[float, float, str]]] = {name: [] for name in variants}
        timing = ""
        for n in range(args.boots):
            for name, (vm, image, user_data) in variants.items():
                wait_for_other_guests()
                last = n == args.boots - 1 and image is baked
                agent_s, done_s, status, text = readiness_boot(vm, image, user_data, timing=last)
                timing = text or timing
                results[name].append((agent_s, done_s, status))
                log(f"boot {n + 1}/{args.boots} {name}: agent {agent_s:.1f} s, cloud-init "
                    f"{status} {done_s:.1f} s")
    print(f"image {args.image}; bake: {report.seconds:.0f} s ({report.accelerator}); "
          f"{args.boots} boots each, "
          "2 vCPU, 2048 MiB, TCG\n")
    print("| variant | agent ping, median (s) | cloud-init done, median (s) | runs (agent/done) |")
    print("|---|---:|---:|---|")
    medians = {}
    for name, runs in results.items():
        a = statistics.median(r[0] for r in runs)
        d = statistics.median(r[1] for r in runs)
        medians[name] = (a, d)
        print(f"| {name} | {a:.1f} | {d:.1f} | "
              + "; ".join(f"{r[0]:.0f}/{r[1]:.0f} {r[2]}" for r in runs) + " |")
    (seed_a, seed_d), (baked_a, baked_d) = medians.values()
    print(f"\nbaked / seed: time to agent {baked_a / seed_a:.2f}x (target <= 0.25x), "
          f"cloud-init done {baked_d / seed_d:.2f}x (target <= 0.35x)")
    print("\nwhere the last baked clone's boot went (its boot report):\n" + timing)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
