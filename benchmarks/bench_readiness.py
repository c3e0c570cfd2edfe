"""Agent-detection latency and API calls per minute: our wait vs a fixed 1-second poller.

    .venv/bin/python benchmarks/bench_readiness.py [--runs 24] [--min-up 5] [--max-up 45]

Starts fakepve on 127.0.0.1 and, per run, two VMs whose guest agents come up at the same
random moment (uniform in [min-up, max-up] s after the start): one waited for by
`wait_for_ready` (agent stage; the status check at the start included), one by a fixed poller
that pings every second, the way the proxmoxve provider polls (bpg polls
network-get-interfaces every 1 s; a ping costs the same one call). All runs go at once, so both
pollers see the same server under the same load. Latency = detection time - the moment the
agent was switched on. Calls/min = the poller's requests / its waiting time (start to detection);
since n calls span n-1 gaps, the last column leaves each run's first call out: the sustained rate.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fakepve import FakePve  # noqa: E402
from fakepve.certs import make_cert  # noqa: E402

from phoenix.readiness.pve import PveCredentials, PveTransport  # noqa: E402
from phoenix.readiness.transport import AgentNotRunningError, TransientError  # noqa: E402
from phoenix.readiness.wait import wait_for_ready  # noqa: E402

TOKEN_ID, SECRET = "bench@pve!bench", "5d0c1f9e-bench-secret"
NODE = "pve"


@dataclass
class Sample:
    latency_s: float
    waited_s: float
    calls: int

    @property
    def calls_per_minute(self) -> float:
        return self.calls / self.waited_s * 60


def serve() -> tuple[FakePve, str]:
    workdir = tempfile.mkdtemp(prefix="bench-readiness-")
    cert, key, _ = make_cert(workdir, hosts=("127.0.0.1",))
    pve = FakePve(host="127.0.0.1", port=0)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(pve.start(cert, key), loop).result(30)
    pve.apitokens[TOKEN_ID] = SECRET
    return pve, cert


def count_requests(pve: FakePve, vmid: int) -> int:
    marker = f"/qemu/{vmid}/"
    return sum(1 for r in list(pve.requests) if marker in r[1])


def ours(pve: FakePve, cert: str, vmid: int, up: dict[int, float], out: dict) -> None:
    transport = PveTransport(PveCredentials(pve.url, f"{TOKEN_ID}={SECRET}", verify=cert),
                             node=NODE, vmid=vmid)
    start = time.monotonic()
    result = wait_for_ready(transport, timeout_s=600, log=lambda _line: None,
                            wait_for_cloud_init=False, read_host_keys=False)
    detected = start + result.seconds_to_agent
    # api_calls includes the one network-interfaces read after the wait: not waiting.
    out[vmid] = Sample(detected - up[vmid], detected - start, result.api_calls - 1)


def fixed_poller(pve: FakePve, cert: str, vmid: int, up: dict[int, float], out: dict) -> None:
    transport = PveTransport(PveCredentials(pve.url, f"{TOKEN_ID}={SECRET}", verify=cert),
                             node=NODE, vmid=vmid)
    start = time.monotonic()
    n = 0
    while True:
        try:
            transport.ping(timeout_s=10)
            break
        except (AgentNotRunningError, TransientError):
            n += 1
            time.sleep(max(start + n * 1.0 - time.monotonic(), 0))
    detected = time.monotonic()
    out[vmid] = Sample(detected - up[vmid], detected - start, transport.calls)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--min-up", type=float, default=5.0)
    parser.add_argument("--max-up", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=20251125)
    args = parser.parse_args()
    # This measures one wait's pacing; 48 pollers at once would otherwise share the per-node API
    # budget (phoenix.readiness.api_budget, 20 calls/s) and measure that instead.
    os.environ.setdefault("PHOENIX_PVE_CALLS_PER_S", "1000")
    rng = random.Random(args.seed)
    pve, cert = serve()

    vms, up_after = [], {}
    for run in range(args.runs):
        delay = rng.uniform(args.min_up, args.max_up)
        for vmid in (9000 + run, 9500 + run):  # ours, the fixed poller
            vm = pve.add_vm(vmid, f"bench-{vmid}", node=NODE, status="running",
                            config={"agent": "1"})
            vms.append(vm)
            up_after[vmid] = delay

    up: dict[int, float] = {}
    results: dict[int, Sample] = {}
    start = time.monotonic()
    timers, threads = [], []
    for vm in vms:
        def switch_on(vm=vm) -> None:
            up[vm.vmid] = time.monotonic()
            vm.agent = {}
        timers.append(threading.Timer(up_after[vm.vmid], switch_on))
        poller = ours if vm.vmid < 9500 else fixed_poller
        threads.append(threading.Thread(target=poller, args=(pve, cert, vm.vmid, up, results)))
    for item in timers + threads:
        item.start()
    for thread in threads:
        thread.join(args.max_up + 60)
    wall = time.monotonic() - start

    rows = []
    for label, low in (("ours (1.5 s, paced by calls)", 9000), ("fixed 1 s poller", 9500)):
        samples = [results[v] for v in results if low <= v < low + 500]
        latencies = [s.latency_s for s in samples]
        total_calls = sum(s.calls for s in samples)
        total_minutes = sum(s.waited_s for s in samples) / 60
        rows.append((label, len(samples), statistics.median(latencies),
                     percentile(latencies, 95), max(latencies),
                     statistics.mean(s.calls_per_minute for s in samples),
                     total_calls / total_minutes,
                     # n calls span n-1 gaps: without the first call, the sustained rate
                     (total_calls - len(samples)) / total_minutes))
        count_check = sum(count_requests(pve, v) for v in results if low <= v < low + 500)
        if low == 9500 and count_check != total_calls:
            print(f"warning: fakepve counted {count_check} requests, the poller {total_calls}",
                  file=sys.stderr)

    print(f"Agent up uniformly in [{args.min_up:g}, {args.max_up:g}] s, {args.runs} runs of each "
          f"poller at once against fakepve on 127.0.0.1 ({wall:.0f} s wall).\n")
    print("| poller | runs | latency median | latency p95 | latency max "
          "| calls/min (mean of runs) | calls/min (all calls / all minutes) "
          "| calls/min after the first call |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, med, p95, worst, per_run, overall, sustained in rows:
        print(f"| {label} | {n} | {med:.2f} s | {p95:.2f} s | {worst:.2f} s "
              f"| {per_run:.1f} | {overall:.1f} | {sustained:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
