"""Benchmark: first boot of the original plan's user-data vs our fast path, on real qemu guests.

- seed: the image without agent (like a stock cloud image) and the original plan's Stage 1 user-data
  verbatim (package_update + install qemu-guest-agent + its runcmd).
- fast: the image with the agent baked in and the VM's rendered user-data with
  package_update: false (VM 8102 of tests/data/realboot_vms.json).

Both get the same VM network-config and meta-data. For each boot: seconds from qemu start to
the first answered guest-ping (polled every 0.5 s over the agent socket) and to
`cloud-init status` leaving "running" (polled through the agent once the agent answers).
Prints a markdown table of medians. Boots run one at a time. Needs root, qemu, debootstrap.

    sudo .venv/bin/python benchmarks/bench_boot.py [--boots 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phoenix.cloudinit import render_seed  # noqa: E402
from phoenix.config import load_config  # noqa: E402
from phoenix.localboot.qemu import BootSpec, QemuGuest  # noqa: E402
from phoenix.localboot.run import BootImage, resolve_image  # noqa: E402
from phoenix.localboot.seed import SEED_USER_DATA, make_seed_iso  # noqa: E402
from phoenix.readiness.qga import QgaSocketTransport  # noqa: E402
from phoenix.readiness.transport import TransportError, run_command  # noqa: E402
from phoenix.readiness.wait import parse_cloud_init_status  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "realboot_vms.json"
TIMEOUT_S = 900.0


def one_boot(image: BootImage, user_data: str, vmid: int) -> tuple[float, float, str]:
    vm = load_config(CONFIG).vm(vmid)
    seed = render_seed(vm)
    net = vm.network_config
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp:
        iso = make_seed_iso(Path(tmp) / "seed.iso", user_data=user_data,
                            meta_data=seed.meta_data, network_config=seed.network_config)
        spec = BootSpec(name=f"bench{vmid}", disk=image.disk, seed_iso=iso,
                        mac_address=net.mac_address, guest_ip=net.ip, gateway=net.gateway,
                        dns=net.dns, kernel=image.kernel, initrd=image.initrd,
                        append=image.append)
        box: dict[str, QgaSocketTransport] = {}
        with QemuGuest(spec, log=lambda _: None,
                       agent_shutdown=lambda _s, t: box["t"].shutdown(timeout_s=t)) as guest:
            transport = QgaSocketTransport(str(guest.qga_socket), is_running=guest.running)
            box["t"] = transport
            start = guest.started_at
            agent = done = None
            status = "?"
            while time.monotonic() - start < TIMEOUT_S and guest.running():
                try:
                    if agent is None:
                        transport.ping(timeout_s=0.5)
                        agent = time.monotonic() - start
                    result = run_command(transport, ["cloud-init", "status"], timeout_s=30)
                    status = parse_cloud_init_status(result.stdout)
                    if status not in ("running", "not started", "not run"):
                        done = time.monotonic() - start
                        break
                except TransportError:
                    pass
                time.sleep(0.5)
            if agent is None or done is None:
                raise SystemExit(f"boot did not finish within {TIMEOUT_S:.0f} s "
                                 f"(agent {agent}, cloud-init {status})\n{guest.console_tail()}")
            return agent, done, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3, help="boots per variant (default 3)")
    args = parser.parse_args()
    base = resolve_image("debian-bookworm", log=lambda m: print(m, file=sys.stderr))
    agent = resolve_image("debian-bookworm-agent", log=lambda m: print(m, file=sys.stderr))
    fast_user_data = render_seed(load_config(CONFIG).vm(8102)).user_data
    variants = {
        "seed user-data (package_update + install agent), no-agent image":
            (base, SEED_USER_DATA, 8101),
        "fast path: agent-baked image, package_update: false": (agent, fast_user_data, 8102),
    }
    results: dict[str, list[tuple[float, float, str]]] = {name: [] for name in variants}
    for n in range(args.boots):
        for name, (image, user_data, vmid) in variants.items():
            agent_s, done_s, status = one_boot(image, user_data, vmid)
            results[name].append((agent_s, done_s, status))
            print(f"boot {n + 1}/{args.boots} {name}: agent {agent_s:.1f} s, "
                  f"cloud-init {status} {done_s:.1f} s", file=sys.stderr, flush=True)
    accel = "KVM" if Path("/sys/module/kvm_intel").exists() or \
        Path("/sys/module/kvm_amd").exists() else "TCG (no hardware KVM)"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"Machine: {cpu}, {os.cpu_count()} cores; accelerator: {accel}; "
          f"guest: 2 vCPU, 2048 MiB; {args.boots} boots each.\n")
    print("| variant | agent ping, median (s) | cloud-init done, median (s) | runs (agent / done, "
          "status) |")
    print("|---|---:|---:|---|")
    medians = {}
    for name, runs in results.items():
        agent_med = statistics.median(r[0] for r in runs)
        done_med = statistics.median(r[1] for r in runs)
        medians[name] = agent_med
        detail = "; ".join(f"{a:.0f}/{d:.0f} {s}" for a, d, s in runs)
        print(f"| {name} | {agent_med:.1f} | {done_med:.1f} | {detail} |")
    seed_agent, fast_agent = medians.values()
    ratio = fast_agent / seed_agent
    print(f"\nfast path / seed, time to agent: {ratio:.2f}x (target <= 0.45x: "
          f"{'met' if ratio <= 0.45 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
