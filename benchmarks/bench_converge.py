"""An edit that adds one package to every VM of a running fleet: wall-clock time of the `up` that
converges it (`edits: "in-place"`), for N VMs against one VM.

    .venv/bin/python benchmarks/bench_converge.py [--sizes 1 20] [--repeat 3]

What is real and what is modelled (the fleet benchmark's fakes, benchmarks/bench_fleet.py):
- The plan is the program's own: `build_stack` under Pulumi's mock engine for config v1 and v2
  (v2 = one more package on every VM); tests/test_lifecycle_plan.py's `plan()` decides what the
  engine would do. The benchmark checks that only the converge steps are updates (and the
  user-data snippets replaced), then times those updates.
- Our code runs for real: every converge update goes over gRPC to the real dynamic-provider
  plugin process (`python -u -m pulumi.dynamic`, tests/plugin_process.py, its worker limit lifted
  by phoenix.dynamic_workers), which runs phoenix/features/converge.sh over SSH (paramiko) against
  the local OpenSSH sshd (tests/ssh_fixtures.py), each VM with its own state directory.
- apt is a TIME MODEL (this host must not install packages): CLEARLY NAMED STAND-INS for
  `apt-get` (update APT_UPDATE_S, install APT_INSTALL_S: measured in the real-boot test, scaled
  by --scale), `dpkg-query` and `timedatectl`, first on the sessions' PATH. On a real fleet every
  VM runs its own apt on its own CPU; here 20 scripts share this host's 2 cores, which makes N
  look worse, not better.
- The engine is modelled as "start each update when its dependencies are done" (the converge
  steps of different VMs do not depend on each other: all at once, the CLI's default).
"""

from __future__ import annotations

import argparse
import copy
import pwd
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from plugin_process import running_plugin  # noqa: E402
from pulumi_harness import run_program  # noqa: E402
from ssh_fixtures import TEST_USER, start_sshd  # noqa: E402
from test_lifecycle_plan import plan  # noqa: E402

from phoenix.config import build_config  # noqa: E402
from phoenix.config.sample import sample_document  # noqa: E402
from phoenix.features.provider import _safe_expected_marker  # noqa: E402

# apt on the guest (measured: tests/test_converge_realboot.py under TCG, `apt-get update` ~14 s,
# installing `hello` ~15 s; a KVM guest on a LAN mirror is several times faster)
APT_UPDATE_S = 14.0
APT_INSTALL_S = 15.0
FEATURE = "pulumi-python:dynamic/phoenix:Feature"
PACKAGE = "hello"

STANDIN_APT_GET = """#!/bin/bash
# STAND-IN for apt-get (benchmark only): a fixed time per call; install records the packages in
# this VM's stand-in dpkg database ($PHOENIX_STATE_DIR/dpkg-db).
case " $* " in
  *" update "*) sleep {update};;
  *" install "*) sleep {install}
    for p in "$@"; do case "$p" in -*|install|*=*) ;; *) echo "$p 1.0" >> "$PHOENIX_STATE_DIR/dpkg-db";; esac; done;;
esac
"""
STANDIN_DPKG_QUERY = """#!/bin/bash
# STAND-IN for dpkg-query (benchmark only): this VM's stand-in database.
line="$(grep -m1 "^${@: -1} " "$PHOENIX_STATE_DIR/dpkg-db" 2>/dev/null)" || exit 1
printf 'ii |%s' "${line#* }"
"""
STANDIN_TIMEDATECTL = """#!/bin/sh
# STAND-IN for timedatectl (benchmark only)
[ "$1" = show ] && echo Etc/UTC
"""


def fleet(n: int) -> dict:
    doc = sample_document(2 * n)
    doc["vms"] = [vm for vm in doc["vms"] if "clone_from" in vm][:n]
    for vm in doc["vms"]:
        vm["features"] = []
    doc["defaults"].update(packages=["htop"], guest_agent={"preinstalled": True},
                           package_update=False)
    return doc


def private_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


def one_run(n: int, sshd, key: str, workdir: Path) -> float:
    doc = fleet(n)
    v1 = run_program(build_config(doc), key)
    doc2 = copy.deepcopy(doc)
    doc2["defaults"]["packages"] = ["htop", PACKAGE]
    v2 = run_program(build_config(doc2), key)
    result = plan(v1, v2)
    changed = {v2.by_urn(u).name: a for u, a in result.items() if a != "same"}
    expected = {f"vm-{vm['vmid']}-{what}": action for vm in doc["vms"]
                for what, action in (("converge", "update"), ("user-data", "replace"))}
    assert changed == expected, changed

    updates = []
    for new in v2.of_type(FEATURE):
        old = v1.by_urn(new.urn)
        state = tempfile.mkdtemp(prefix="vm-", dir=workdir)
        Path(state, "dpkg-db").write_text("htop 1.0\n")  # as the VM was built
        Path(state).chmod(0o755)
        where = {"host": "127.0.0.1", "port": sshd.port, "username": "root", "sudo": False,
                 "private_key": sshd.client_key, "host_keys": [sshd.host_key_line],
                 "marker_dir": state}

        def props(reg, state=state, where=where):
            p = {**reg.provider_inputs(), **where}
            p["params"] = {**p["params"], "user": TEST_USER, "state_dir": state}
            return p
        olds = {**props(old), "exit_code": 0, "stdout_tail": "", "changes": 0}
        olds["marker"] = _safe_expected_marker(olds)
        updates.append((new.name, olds, props(new)))

    # the VMs as built: the seed's keys in the admin user's authorized_keys (shared here)
    home = Path(pwd.getpwnam(TEST_USER).pw_dir)
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh" / "authorized_keys").write_text(updates[0][2]["params"]["keys"] + "\n")
    shutil.chown(home / ".ssh", TEST_USER)
    shutil.chown(home / ".ssh" / "authorized_keys", TEST_USER)

    session = running_plugin({})
    plugin = next(session)
    errors: list[str] = []
    try:
        for name, olds, news in updates:
            assert plugin.diff("id", olds, news, name=name).changes == "DIFF_SOME"
        start = time.monotonic()

        def update(name, olds, news):
            try:
                outs = plugin.update("id", olds, news, name=name)
                installed = Path(news["params"]["state_dir"], "dpkg-db").read_text()
                if outs.get("changes") != 1 or f"{PACKAGE} 1.0" not in installed:
                    errors.append(f"{name}: {outs.get('changes')} changes")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"{name}: {exc}")
        threads = [threading.Thread(target=update, args=u) for u in updates]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.monotonic() - start
    finally:
        session.close()
    if errors:
        raise RuntimeError("\n".join(errors[:5]))
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.2, help="multiplies the apt model")
    args = parser.parse_args()
    sshd = start_sshd(["root", TEST_USER], extra_config="MaxStartups 200\nMaxSessions 200\n",
                      path="/usr/sbin:/usr/bin:/sbin:/bin")
    workdir = Path(tempfile.mkdtemp(prefix="converge-", dir=sshd.workdir))
    workdir.chmod(0o755)
    results: dict[int, list[float]] = {}
    try:
        for name, text in (("apt-get", STANDIN_APT_GET.format(update=APT_UPDATE_S * args.scale,
                                                                install=APT_INSTALL_S * args.scale)),
                           ("dpkg-query", STANDIN_DPKG_QUERY), ("timedatectl", STANDIN_TIMEDATECTL)):
            (sshd.standin_bin / name).write_text(text)
            (sshd.standin_bin / name).chmod(0o755)
        key = private_key()
        for _ in range(args.repeat):  # interleaved, so load on the machine hits every size
            for n in args.sizes:
                total = one_run(n, sshd, key, workdir)
                results.setdefault(n, []).append(total)
                print(f"N={n:>3}: {total:.2f} s", file=sys.stderr, flush=True)
    finally:
        sshd.stop()
        shutil.rmtree(sshd.workdir, ignore_errors=True)
    base = statistics.median(results[min(args.sizes)])
    print(f"\nOne package added to every VM: the converge updates, wall-clock s (median of "
          f"{args.repeat}; apt modelled as update {APT_UPDATE_S * args.scale:g} s + install "
          f"{APT_INSTALL_S * args.scale:g} s)\n")
    print("| VMs | s (median) | runs | x one VM |")
    print("|---|---|---|---|")
    for n in args.sizes:
        med = statistics.median(results[n])
        runs = ", ".join(f"{t:.2f}" for t in results[n])
        print(f"| {n} | {med:.2f} | {runs} | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
