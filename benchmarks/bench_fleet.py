"""A fleet from one template: wall-clock time from the start of `pulumi up` to the last VM ready
with its features, for N VMs, before and after the fleet changes.

    .venv/bin/python benchmarks/bench_fleet.py [--sizes 1 10 50] [--scale 0.2] [--designs ...]

What is real and what is modelled:
- The resource graph is the program's own: `build_stack` under Pulumi's mock engine
  (tests/pulumi_harness.py), dependencies as registered.
- The engine is modelled as "start a resource as soon as its dependencies are done" (unbounded
  parallelism, the CLI's default): one thread per resource waits for its dependencies' events.
- Our code runs for real: every GuestAgentReady and Feature create goes over gRPC to the real
  dynamic-provider plugin process (`python -u -m pulumi.dynamic`, tests/plugin_process.py);
  readiness polls fakepve (a real HTTPS server speaking the PVE API) whose VMs' agents answer a
  boot delay after their VM was started; features run phoenix/features/docker.sh over SSH
  against the local OpenSSH sshd (tests/ssh_fixtures.py), with a stand-in `docker` that takes
  FEATURE_S, so the script has a fixed length.
- PVE's own work and the proxmoxve provider's are a TIME MODEL (constants below, with where each
  number comes from): snippet uploads, clone (linked: fixed; full: the disk copied at the
  storage's throughput, shared by the copies running on that storage at the same time),
  configure, start, and the guest's boot.
- `--scale` multiplies every modelled duration (and the boot delay) to keep the run short; our
  code is not scaled (the readiness poll interval stays 1.5 s, SSH stays real), which makes the
  new designs look worse, not better. The per-node API budget (phoenix.readiness.api_budget) is
  part of PVE's capacity, so it is scaled with the model: 20 calls/s of model time =
  20/scale calls/s of wall time. `--scale 1` runs the model in real time.

Designs:
- old: the previous program (every clone of a template waited for the whole creation of the
  previous one: `fullClonesPerStorage` = 1 gives exactly that graph for one template on one
  storage), full clones, the SDK's 4 plugin workers (PHOENIX_PLUGIN_WORKERS=4), no API budget.
- full: full clones in 2 lanes per (node, storage) (the default), plugin limit lifted, budget.
- linked: linked clones (no lanes), plugin limit lifted, budget.

Needs root (sshd switches users). Creates group `docker` if missing (and removes it again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from fakepve import FakePve  # noqa: E402
from fakepve.certs import make_cert  # noqa: E402
from plugin_process import running_plugin  # noqa: E402
from pulumi_harness import Registration, run_program  # noqa: E402
from readiness_fixtures import agent_answers, openssh_public_keys  # noqa: E402
from ssh_fixtures import TEST_USER, start_sshd  # noqa: E402

from phoenix.config import build_config  # noqa: E402
from phoenix.config.sample import sample_document  # noqa: E402
from phoenix.dynamic_workers import ENV_WORKERS  # noqa: E402
from phoenix.readiness.api_budget import DEFAULT_CALLS_PER_S, ENV_CALLS_PER_S  # noqa: E402

# ------------------------------------------------------------------ the time model (seconds)
# Where each number comes from; none of them is measured on a Proxmox host (there is none here).
SNIPPET_UPLOAD_S = 0.5   # the provider's SFTP upload of one small snippet to the node (assumed)
LINKED_CLONE_S = 2.0     # "nearly instantaneous" (PVE admin guide, qm "Linked Clone"): a
#                          `zfs clone` of the template's base volume plus the new config, ~2 s
DISK_GB = 32             # the template's disk, copied whole by a full clone
STORAGE_MB_S = 1000.0    # assumed sustained copy throughput of the target storage (an NVMe ZFS
#                          pool); a full clone is a host-side `qemu-img convert` of the whole
#                          disk (PVE admin guide: "A full clone need[s] to read and copy all VM
#                          image data"): 32 GB / 1000 MB/s = 32 s alone. Copies running on the
#                          same storage at the same time share it equally.
CONFIGURE_S = 1.0        # the provider's config update + disk resize calls after the clone (assumed)
START_S = 2.0            # `qm start` until the provider sees the VM running (assumed)
BOOT_S = 30.0            # start -> guest agent answering and cloud-init done: a cloud-image
#                          template with the agent preinstalled (the fast path); measured here
#                          31-37 s under TCG (docs/localboot.md), KVM boots are not slower
FEATURE_S = 1.0          # the stand-in `docker --version` in the feature script (fixed length)

TOKEN_ID, SECRET = "bench@pve!fleet", "8f0c2b1e-fleet-secret"
VM = "proxmoxve:index/vmLegacy:VmLegacy"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
READY = "pulumi-python:dynamic/phoenix:GuestAgentReady"
FEATURE = "pulumi-python:dynamic/phoenix:Feature"
STANDIN_DOCKER = (f"#!/bin/sh\n# STAND-IN for docker (benchmark only): a fixed {FEATURE_S:g} s\n"
                  f"sleep {FEATURE_S}\necho 'Docker version 0.0.0-standin'\n")


@dataclass(frozen=True)
class Design:
    name: str
    clone_mode: str
    lanes: int
    workers: int | None  # None: phoenix's lifted limit
    budget: bool


DESIGNS = {
    "old": Design("old (serialised full clones, 4 plugin workers)", "full", 1, 4, False),
    "full": Design("new, full clones (2 lanes per storage)", "full", 2, None, True),
    "linked": Design("new, linked clones", "linked", 1, None, True),
}


class Storage:
    """Processor sharing: the copies running at once share the throughput equally."""

    TICK_S = 0.02

    def __init__(self, mb_per_s: float) -> None:
        self.mb_per_s = mb_per_s
        self.active = 0
        self.lock = threading.Lock()

    def copy(self, mb: float) -> None:
        with self.lock:
            self.active += 1
        try:
            left = mb
            last = time.monotonic()
            while left > 0:
                time.sleep(self.TICK_S)
                now = time.monotonic()
                with self.lock:
                    left -= self.mb_per_s / self.active * (now - last)
                last = now
        finally:
            with self.lock:
                self.active -= 1


def fleet_document(n: int, clone_mode: str) -> dict:
    doc = sample_document(2 * n)
    doc["vms"] = [vm for vm in doc["vms"] if "clone_from" in vm]  # every VM from template 9000
    doc["defaults"].update(clone_mode=clone_mode, disk_gb=DISK_GB,
                           guest_agent={"preinstalled": True}, package_update=False)
    return doc


def private_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


def serve_pve() -> tuple[FakePve, str, str]:
    workdir = tempfile.mkdtemp(prefix="bench-fleet-")
    cert, key, _ = make_cert(workdir, hosts=("127.0.0.1",))
    pve = FakePve(host="127.0.0.1", port=0)
    pve.max_requests = 1000
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(pve.start(cert, key), loop).result(30)
    pve.apitokens[TOKEN_ID] = SECRET
    return pve, cert, workdir


def run_graph(registrations: list[Registration], actions: dict[str, Callable[[], None]]
              ) -> tuple[float, dict[str, float]]:
    """Start each resource when its dependencies are done; (total seconds, finish times)."""
    known = {r.urn for r in registrations}
    done = {r.urn: threading.Event() for r in registrations}
    finished: dict[str, float] = {}
    errors: list[str] = []
    start = time.monotonic()

    def run(r: Registration) -> None:
        for dep in r.dependencies:
            if dep in known:
                done[dep].wait()
        try:
            actions.get(r.urn, lambda: None)()
        except Exception as exc:  # noqa: BLE001 - reported below, the run is then invalid
            errors.append(f"{r.name}: {exc}")
        finished[r.urn] = time.monotonic() - start
        done[r.urn].set()

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in registrations]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("a resource failed:\n" + "\n".join(errors[:5]))
    return time.monotonic() - start, finished


def one_run(n: int, design: Design, scale: float, pve: FakePve, cert: str, sshd, key: str,
            calls_per_s: float = DEFAULT_CALLS_PER_S) -> float:
    config = build_config(fleet_document(n, design.clone_mode))
    run = run_program(config, key, **{"phoenix-hypervisor:fullClonesPerStorage": str(design.lanes)})
    regs = [r for r in run.registrations if r.type != "pulumi:pulumi:Stack"]
    ids = {vm.vmid for vm in config.vms}
    pve.vms[:] = [v for v in pve.vms if v.vmid not in ids]
    guests = {vm.vmid: pve.add_vm(vm.vmid, vm.name, node=vm.node, status="running",
                                  config={"agent": "1"}) for vm in config.vms}
    env = {"REQUESTS_CA_BUNDLE": cert,
           ENV_CALLS_PER_S: str(calls_per_s / scale if design.budget else 100000)}
    if design.workers is not None:
        env[ENV_WORKERS] = str(design.workers)
    storage = Storage(STORAGE_MB_S)
    answers = agent_answers(host_keys=openssh_public_keys())
    markers = tempfile.mkdtemp(prefix="markers-", dir=sshd.workdir)
    stack_config = {"proxmoxve:endpoint": pve.url, "proxmoxve:apiToken": f"{TOKEN_ID}={SECRET}"}
    session = running_plugin(stack_config, env=env)
    plugin = next(session)
    try:
        actions: dict[str, Callable[[], None]] = {}
        for r in regs:
            if r.type == SNIPPET:
                actions[r.urn] = lambda: time.sleep(SNIPPET_UPLOAD_S * scale)
            elif r.type == VM:
                actions[r.urn] = vm_action(r, guests, storage, answers, scale)
            elif r.type == READY:
                props = {**r.provider_inputs(), "vm_resource_id": f"{r.inputs['vmid']}"}
                assert plugin.check({}, props, name=r.name).failures == []
                actions[r.urn] = create_action(plugin, props, r.name)
            elif r.type == FEATURE:
                props = {**r.provider_inputs(), "host": "127.0.0.1", "port": sshd.port,
                         "username": "root", "sudo": False, "private_key": sshd.client_key,
                         "host_keys": [sshd.host_key_line], "params": {"user": "-"},
                         "marker_dir": markers}
                if r.inputs["feature"] == "converge":
                    # the in-place step of a fresh VM (edits: "in-place"): keys to the bench
                    # user, its package record in a temporary directory, never the host's
                    props["params"] = {**r.provider_inputs()["params"], "user": TEST_USER,
                                       "state_dir": tempfile.mkdtemp(prefix="converge-",
                                                                     dir=markers)}
                assert plugin.check({}, props, name=r.name).failures == []
                actions[r.urn] = create_action(plugin, props, r.name)
        total, finished = run_graph(regs, actions)
    finally:
        session.close()
    phases = {label: max(finished[r.urn] for r in regs if r.type == typ)
              for label, typ in (("VMs created", VM), ("ready", READY), ("features", FEATURE))}
    print(f"N={n:>3} {design.name}: last " + ", ".join(f"{k} at {v:.1f} s" for k, v in phases.items()),
          file=sys.stderr, flush=True)
    return total


def vm_action(r: Registration, guests: dict, storage: Storage, answers: dict, scale: float
              ) -> Callable[[], None]:
    guest = guests[int(r.inputs["vmId"])]

    def create() -> None:
        guest.agent = None  # booting: "QEMU guest agent is not running"
        if r.inputs["clone"]["full"]:
            storage.copy(DISK_GB * 1000 * scale)  # MB at STORAGE_MB_S, shared
        else:
            time.sleep(LINKED_CLONE_S * scale)
        time.sleep((CONFIGURE_S + START_S) * scale)
        timer = threading.Timer(BOOT_S * scale, lambda: setattr(guest, "agent", dict(answers)))
        timer.daemon = True
        timer.start()

    return create


def create_action(plugin, props: dict, name: str) -> Callable[[], None]:
    return lambda: plugin.create(props, name=name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--calls-per-s", type=float, default=DEFAULT_CALLS_PER_S,
                        help="the new designs' API budget per node, in model time (default: "
                             "phoenix's default)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--table-from", help="only print the table of an earlier --json file")
    args = parser.parse_args()
    if args.table_from:
        table_from_json(args.table_from)
        return 0

    pve, cert, workdir = serve_pve()
    group_existed = subprocess.run(["getent", "group", "docker"], check=False,
                                   capture_output=True).returncode == 0
    sshd = start_sshd(["root", TEST_USER], extra_config="MaxStartups 200\nMaxSessions 200\n",
                      path="/usr/sbin:/usr/bin:/sbin:/bin")
    results: dict[str, dict[int, float]] = {}
    try:
        if not group_existed:
            subprocess.run(["groupadd", "--system", "docker"], check=True)
        docker = sshd.standin_bin / "docker"
        docker.write_text(STANDIN_DOCKER)
        docker.chmod(0o755)
        key = private_key()
        for n in args.sizes:
            for name in args.designs:
                total = one_run(n, DESIGNS[name], args.scale, pve, cert, sshd, key, args.calls_per_s)
                results.setdefault(name, {})[n] = total
                print(f"N={n:>3} {DESIGNS[name].name}: {total:.1f} s", file=sys.stderr, flush=True)
    finally:
        sshd.stop()
        shutil.rmtree(sshd.workdir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
        if not group_existed:
            subprocess.run(["groupdel", "docker"], check=False)
    print_table(results, args.sizes, args.scale, args.calls_per_s)
    if args.json:
        Path(args.json).write_text(json.dumps({"scale": args.scale, "calls_per_s": args.calls_per_s,
                                               "results": results}, indent=1))
    return 0


def print_table(results: dict[str, dict[int, float]], sizes: list[int], scale: float,
                calls_per_s: float) -> None:
    copy_s = DISK_GB * 1000 / STORAGE_MB_S * scale
    print(f"\nWall-clock s from start to the last VM ready with its features (model time scale "
          f"{scale:g}; boot {BOOT_S * scale:g} s, a full clone alone {copy_s:.1f} s; new designs' "
          f"API budget {calls_per_s:g} calls/s per node of model time)\n")
    print("| design | " + " | ".join(f"N = {n}" for n in sizes) + " | largest N / N = 1 |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name, by_n in results.items():
        cells = [f"{by_n[n]:.1f}" if n in by_n else "" for n in sizes]
        ratio = (f"{by_n[max(by_n)] / by_n[min(by_n)]:.2f}x" if len(by_n) > 1 else "")
        print(f"| {DESIGNS[name].name} | " + " | ".join(cells) + f" | {ratio} |")
    if "full" in results and 1 in results["full"]:
        # No schedule beats the storage: N copies take N x copy_s of its throughput, and the last
        # VM still needs the rest of one VM's time (configure, start, boot, wait, feature).
        tail = results["full"][1] - copy_s
        print(f"\nFull clones against the storage's limit (N x {copy_s:.1f} s of copying + the rest of "
              f"one VM's time, {tail:.1f} s):\n")
        print("| N | bound s | new, full clones s | x bound | old s | x bound |")
        print("|---|---|---|---|---|---|")
        for n in sizes:
            bound = n * copy_s + tail
            full, old = results["full"].get(n), results.get("old", {}).get(n)
            print(f"| {n} | {bound:.1f} | {full:.1f} | {full / bound:.2f}x | "
                  + (f"{old:.1f} | {old / bound:.2f}x |" if old else " | |"))


def table_from_json(path: str) -> None:
    data = json.loads(Path(path).read_text())
    results = {name: {int(n): t for n, t in by_n.items()} for name, by_n in data["results"].items()}
    sizes = sorted({n for by_n in results.values() for n in by_n})
    print_table(results, sizes, data["scale"], data.get("calls_per_s", DEFAULT_CALLS_PER_S))


if __name__ == "__main__":
    raise SystemExit(main())
