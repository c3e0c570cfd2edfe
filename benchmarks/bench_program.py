"""Benchmark: evaluating the Pulumi program under Pulumi's mock engine, N = 10, 100, 1000 VMs.

Beside each run, in the same invocation, a bare baseline registers the same number of
VmLegacy and FileLegacy resources with constant arguments (no config, no rendering, no
components), and a same-graph baseline registers the program's whole graph (component,
snippets, VM, GuestAgentReady, Feature) with the same constant arguments. Each case runs in its
own subprocess so peak memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/bench_program.py [--sizes 10,100,1000] [--repeat 3] [--decompose]

Prints a markdown table; target at N = 1000: program within 1.3x of the baseline (time, memory).
`--decompose` adds, at the largest N, the bare baseline plus each part of the graph in turn: what
registering that graph costs before any of our code runs (README, Benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIVATE_KEY = None  # generated per case process


def _mocks():
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return [f"{args.name}-id", dict(args.inputs)]

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="phoenix-hypervisor", stack="bench", preview=False)


def _private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def case_program(n: int) -> dict:
    import pulumi

    from phoenix.config import build_config
    from phoenix.config.sample import sample_document
    from phoenix.resources.settings import read_settings
    from phoenix.resources.stack import build_stack

    _mocks()
    pulumi.runtime.set_all_config({
        "proxmoxve:endpoint": "https://pve.bench:8006/",
        "proxmoxve:apiToken": "root@pam!bench=00000000-0000-0000-0000-000000000000",
        "phoenix-hypervisor:sshPrivateKey": _private_key(),
        "phoenix-hypervisor:nodes": '{"pve": {"address": "192.0.2.10"}}',
    }, ["proxmoxve:apiToken", "phoenix-hypervisor:sshPrivateKey"])
    doc = sample_document(n)
    counts = {}
    start = time.perf_counter()

    @pulumi.runtime.test
    def program():
        config = build_config(doc)
        stack = build_stack(config, read_settings())
        counts["vms"] = len(stack.vms)
        return pulumi.Output.all(*[c.vm.id for c in stack.vms.values()])

    program()
    return {"seconds": time.perf_counter() - start, "registered": counts["vms"]}


def _constant_vm(i: int, user_data: str, prefix: str, opts=None):
    """Three FileLegacy snippets and a VmLegacy with constant arguments of the program's shape and
    size (the bare baseline; the same-graph baseline adds what the program adds)."""
    import pulumi_proxmoxve as proxmoxve

    for part in ("user-data", "network-config", "meta-data"):
        proxmoxve.FileLegacy(f"{prefix}{i}-{part}", content_type="snippets", datastore_id="local",
                             node_name="pve", source_raw=proxmoxve.FileLegacySourceRawArgs(
                                 data=user_data, file_name=f"s-{i}-{part}.yaml"), opts=opts)
    return proxmoxve.VmLegacy(
        f"{prefix}{i}-vm", node_name="pve", vm_id=10000 + i, name=f"vm-{i}", description="constant",
        tags=["generated", "phoenix"],
        clone=proxmoxve.VmLegacyCloneArgs(vm_id=9000, full=True, datastore_id="local-zfs",
                                          node_name="pve", retries=3),
        cpu=proxmoxve.VmLegacyCpuArgs(cores=2, sockets=1, type="x86-64-v2-AES"),
        memory=proxmoxve.VmLegacyMemoryArgs(dedicated=2048),
        scsi_hardware="virtio-scsi-single",
        disks=[proxmoxve.VmLegacyDiskArgs(interface="scsi0", datastore_id="local-zfs", size=32,
                                          discard="on", iothread=True, ssd=True)],
        network_devices=[proxmoxve.VmLegacyNetworkDeviceArgs(bridge="vmbr0", model="virtio",
                                                             mac_address="02:50:48:00:00:01")],
        initialization=proxmoxve.VmLegacyInitializationArgs(
            datastore_id="local-zfs", user_data_file_id="local:snippets/u.yaml",
            network_data_file_id="local:snippets/n.yaml", meta_data_file_id="local:snippets/m.yaml"),
        agent=proxmoxve.VmLegacyAgentArgs(enabled=True, trim=True, type="virtio", timeout="1m",
                                          wait_for_ip=proxmoxve.VmLegacyAgentWaitForIpArgs(disabled=True)),
        serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
        operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
        started=True, on_boot=True, stop_on_destroy=True, opts=opts)


def case_baseline(n: int) -> dict:
    """The bare baseline: the same number of VmLegacy and FileLegacy with constant
    arguments of the same shape and size; no config, rendering, components or Outputs between them."""
    import pulumi

    _mocks()
    user_data = (ROOT / "cloud_init" / "user-data.yaml.j2").read_text()  # ~2 KB, like a rendered one
    start = time.perf_counter()

    @pulumi.runtime.test
    def program():
        return pulumi.Output.all(*[_constant_vm(i, user_data, "s-").id for i in range(n)])

    program()
    return {"seconds": time.perf_counter() - start, "registered": n}


def _same_graph(n: int, *, ready: bool = True, features: bool = True) -> dict:
    import pulumi

    from phoenix.features.provider import Feature, FeatureArgs
    from phoenix.readiness.provider import GuestAgentReady, GuestAgentReadyArgs

    _mocks()
    user_data = (ROOT / "cloud_init" / "user-data.yaml.j2").read_text()
    start = time.perf_counter()

    @pulumi.runtime.test
    def program():
        ids = []
        for i in range(n):
            comp = pulumi.ComponentResource("phoenix:index:Vm", f"vm-{i}", None, None)
            ids.append(_constant_vm(i, user_data, "vm-", pulumi.ResourceOptions(parent=comp)).id)
            if ready:
                ids.append(GuestAgentReady(f"vm-{i}-ready", GuestAgentReadyArgs(vmid=10000 + i, node="pve",
                                                                                timeout_s=900),
                                           opts=pulumi.ResourceOptions(parent=comp)).id)
            if features and i % 2 == 0:
                ids.append(Feature(f"vm-{i}-feature-docker",
                                   FeatureArgs(host="10.0.0.1", username="phoenix", private_key="k",
                                               host_keys=["k"], feature="docker"),
                                   opts=pulumi.ResourceOptions(parent=comp)).id)
            comp.register_outputs({})
        return pulumi.Output.all(*ids)

    program()
    return {"seconds": time.perf_counter() - start, "registered": n}


def case_same_graph(n: int) -> dict:
    """The bare baseline plus what the program's graph adds per VM — its component,
    GuestAgentReady, a Feature on every other VM — all with constant arguments. What registering
    this graph costs by itself: the floor for any program that builds it."""
    return _same_graph(n)


def case_bare_component(n: int) -> dict:
    """Bare baseline + the per-VM component (for the decomposition in the README)."""
    return _same_graph(n, ready=False, features=False)


def case_bare_component_ready(n: int) -> dict:
    """Bare baseline + component + GuestAgentReady (no features)."""
    return _same_graph(n, features=False)


CASES = {"program": case_program, "baseline": case_baseline, "same-graph": case_same_graph,
         "bare+component": case_bare_component, "bare+component+ready": case_bare_component_ready}


def run_case(kind: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--case", kind, "--n", str(n)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--n", type=int)
    parser.add_argument("--decompose", action="store_true",
                        help="also: bare baseline + each part of the program's graph, at the largest N")
    args = parser.parse_args()
    if args.case:
        result = CASES[args.case](args.n)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; median of {args.repeat} interleaved runs, each in a fresh process\n")
    print("| N | program s | bare baseline s | time ratio | same-graph s | time ratio | program MB "
          "| bare baseline MB | memory ratio | same-graph MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        runs: dict[str, list[dict]] = {kind: [] for kind in ("program", "baseline", "same-graph")}
        for _ in range(args.repeat):  # interleaved, so machine noise hits all alike
            for kind, results in runs.items():
                results.append(run_case(kind, n))
        t = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
        m = {k: statistics.median(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
        print(f"| {n} | {t['program']:.2f} | {t['baseline']:.2f} | {t['program'] / t['baseline']:.2f}x "
              f"| {t['same-graph']:.2f} | {t['program'] / t['same-graph']:.2f}x "
              f"| {m['program']:.0f} | {m['baseline']:.0f} | {m['program'] / m['baseline']:.2f}x "
              f"| {m['same-graph']:.0f} | {m['program'] / m['same-graph']:.2f}x |", flush=True)
    if args.decompose:
        decompose(max(int(s) for s in args.sizes.split(",")), args.repeat)
    return 0


def decompose(n: int, repeat: int) -> None:
    """What each part of the graph costs to register, constant arguments throughout."""
    kinds = ("baseline", "bare+component", "bare+component+ready", "same-graph", "program")
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind in kinds:
            runs[kind].append(run_case(kind, n)["seconds"])
    t = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\n| N = {n}, constant arguments | s | x bare baseline |\n|---|---|---|")
    labels = {"baseline": "bare baseline (VmLegacy + 3 FileLegacy per VM)", "bare+component": "+ component per VM",
              "bare+component+ready": "+ GuestAgentReady per VM",
              "same-graph": "+ Feature on every other VM (= same-graph)", "program": "the program"}
    for kind in kinds:
        print(f"| {labels[kind]} | {t[kind]:.2f} | {t[kind] / t['baseline']:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
