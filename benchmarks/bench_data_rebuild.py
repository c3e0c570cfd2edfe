"""Benchmark: a rebuild of a VM with a 100 GB data disk against the same rebuild without it.

A rebuild, as the local qemu harness makes it (tests/test_data_disks_realboot.py): a fresh root
overlay of the same image and a new instance-id, so cloud-init runs its first boot again. With
a data disk it also gets the same 100 GiB data disk (sparse qcow2, formatted once before the
timed rounds): the boot script finds it by serial, sees a filesystem (no mkfs), mounts it by
UUID and runs resize2fs (nothing to grow). Without: the VM's seed has no data-disk entry at all.
Each round boots both, alternating which goes first; time = qemu start -> `cloud-init status`
done (readiness polls every 1.5 s, the same for both). Prints a markdown table of the medians
and the data disk's size on the host before and after (no copy: it stays sparse).

What it does not show: PVE's side. There a rebuild destroys the VM, whose destroy frees only the
volumes it owns (qemu-server destroy_vm), and creates it again attaching the holder's volumes by
path: config changes, no data copied (tests/test_data_disks_pve.py, test_data_disks_plan.py).

    sudo flock /tmp/phoenix-realboot.lock .venv/bin/python benchmarks/bench_data_rebuild.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phoenix.cloudinit import render_meta_data  # noqa: E402
from phoenix.config import load_config  # noqa: E402
from phoenix.config.model import DataDiskConfig, VmConfig  # noqa: E402
from phoenix.localboot.qemu import create_data_disk  # noqa: E402
from phoenix.localboot.run import BootImage, booted, resolve_image  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "realboot_vms.json"
VMID = 8102  # the fast path: agent baked in, no apt
SIZE_GB = 100
MOUNT = "/srv/data"


def host_bytes(path: Path) -> int:
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)
    return int(info["actual-size"])


def rebuild(vm: VmConfig, image: BootImage, round_: int, data: Path | None) -> float:
    meta = render_meta_data(vm).replace(f"iid-phoenix-{vm.vmid}", f"iid-phoenix-{vm.vmid}-r{round_}")
    files = [data] if data is not None else []
    with booted(vm, image, log=lambda _m: None, data_disk_files=files, meta_data=meta) as boot:
        if boot.readiness_error is not None or boot.report.seconds_to_cloud_init_done is None:
            raise SystemExit(f"round {round_}: not ready: {boot.readiness_error}")
        if data is not None:
            with boot.ssh() as session:
                found = session.run(f"findmnt -no FSTYPE {MOUNT}", timeout_s=30).stdout.strip()
            if found != "ext4":
                raise SystemExit(f"round {round_}: {MOUNT} is not mounted ({found!r})")
        return boot.report.seconds_to_cloud_init_done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    image = resolve_image("debian-bookworm-agent", log=print)
    plain = load_config(CONFIG).vm(VMID)
    with_data = dataclasses.replace(plain, data_disks=(DataDiskConfig("data", SIZE_GB, MOUNT, "local-zfs"),))
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-data-") as tmp:
        data = Path(tmp) / "holder-disk-0.qcow2"
        create_data_disk(data, SIZE_GB)
        started = time.monotonic()
        first = rebuild(with_data, image, 0, data)  # the VM's first boot: formats the blank disk
        print(f"first boot with a blank {SIZE_GB} GiB data disk (mkfs): {first:.1f} s "
              f"(wall {time.monotonic() - started:.0f} s); data disk on the host: {host_bytes(data) >> 20} MiB")
        before = host_bytes(data)
        times: dict[str, list[float]] = {"without": [], "with": []}
        for r in range(1, args.rounds + 1):
            order = ["without", "with"] if r % 2 else ["with", "without"]
            for kind in order:
                t = rebuild(with_data if kind == "with" else plain, image, r, data if kind == "with" else None)
                times[kind].append(t)
                print(f"round {r}: rebuild {kind} data disk: cloud-init done after {t:.1f} s", flush=True)
        after = host_bytes(data)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{platform.machine()}, {platform.python_version()}, {args.rounds} rounds, medians "
          "(seconds from qemu start to cloud-init done):\n")
    print("| rebuild | runs (s) | median s | ratio |")
    print("|---|---|---|---|")
    print(f"| without a data disk | {', '.join(f'{t:.1f}' for t in times['without'])} | {med['without']:.1f} | 1.00x |")
    print(f"| with a {SIZE_GB} GiB data disk | {', '.join(f'{t:.1f}' for t in times['with'])} | "
          f"{med['with']:.1f} | {med['with'] / med['without']:.2f}x |")
    print(f"\ndata disk on the host: {before >> 20} MiB before the rebuilds, {after >> 20} MiB after "
          f"(virtual size {SIZE_GB} GiB): nothing copied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
