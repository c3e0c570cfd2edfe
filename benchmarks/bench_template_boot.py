"""Benchmark: first boot with the seed's user-data vs. a VM cloned from a baked template.

- seed: the debootstrap image without agent and the seed's Stage 1 user-data verbatim
  (package_update + install qemu-guest-agent), as in benchmarks/bench_boot.py.
- baked: the same image baked by `phoenix.localboot.bake.bake_image` with the template of
  tests/data/realboot_templates.json (the bake seed a Proxmox node runs), then VM 8301's own
  rendered user-data (agent preinstalled, package_update false: no apt call).

Same run, boots one at a time, alternating. For each boot: seconds from qemu start to the first
answered guest-ping and to `cloud-init status` leaving "running" (bench_boot.one_boot).
Prints a markdown table of medians. Needs root, qemu, debootstrap, Debian's mirror.

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

from bench_boot import one_boot  # noqa: E402

from phoenix.cloudinit import render_user_data  # noqa: E402
from phoenix.config import load_config  # noqa: E402
from phoenix.localboot.bake import bake_image  # noqa: E402
from phoenix.localboot.run import BootImage, resolve_image  # noqa: E402
from phoenix.localboot.seed import SEED_USER_DATA  # noqa: E402

CONFIG = ROOT / "tests" / "data" / "realboot_templates.json"
# A qemu guest's command line starts with the binary; a shell that merely mentions the name
# (`pgrep -f qemu-system` typed by someone) must not count as a running guest.
QEMU_PROCESS = r"^(\S*/)?qemu-system-"


def wait_for_other_guests(limit_s: float = 900) -> None:
    deadline = time.monotonic() + limit_s
    while subprocess.run(["pgrep", "-f", QEMU_PROCESS], capture_output=True, check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise SystemExit("another qemu guest kept running; not measuring beside it")
        time.sleep(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3)
    args = parser.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    config = load_config(CONFIG)
    base = resolve_image("debian-bookworm", log=log)
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-bake-") as tmp:
        output = Path(tmp) / "baked.qcow2"
        wait_for_other_guests()
        report = bake_image(config.templates[0], base, output, log=log, accel="tcg")
        baked = BootImage("baked", output, base.kernel, base.initrd, base.append)
        # The VM of the templates file on the network of realboot_vms.json's VM 8102 (what
        # one_boot renders network-config/meta-data from); the user-data is VM 8301's own.
        baked_user_data = render_user_data(config.vm(8301))
        variants = {"seed user-data, image without agent": (base, SEED_USER_DATA, 8101),
                    "clone of the baked template (no apt)": (baked, baked_user_data, 8102)}
        results: dict[str, list[tuple[float, float, str]]] = {name: [] for name in variants}
        for n in range(args.boots):
            for name, (image, user_data, vmid) in variants.items():
                wait_for_other_guests()
                agent_s, done_s, status = one_boot(image, user_data, vmid)
                results[name].append((agent_s, done_s, status))
                log(f"boot {n + 1}/{args.boots} {name}: agent {agent_s:.1f} s, cloud-init "
                    f"{status} {done_s:.1f} s")
    print(f"bake: {report.seconds:.0f} s ({report.accelerator}); {args.boots} boots each, "
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
