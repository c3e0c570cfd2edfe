"""Real first boots that fail on purpose (marker `realboot`): every failure is named, and named
about as soon as the guest knows it, not at the readiness deadline.

Each scenario runs the user's command, `python -m phoenix boot VMID --file F --image I`, as a
process, and checks its exit code, how long it took and the message that names the cause:

- a package that does not exist, on both guest generations (Debian 12: cloud-init 22.4;
  Debian 13: cloud-init 25.1): the agent is installed on its own, answers, and readiness fails
  as soon as cloud-init reports `error`, quoting apt's "E: Unable to locate package";
- packages whose installation apt refuses (sysvinit-core with systemd-sysv: they conflict, so
  apt ends in "held broken packages");
- a VM whose gateway does not exist: it cannot reach its mirror, so the agent cannot be
  installed; the timeout message says what this VM's first boot needed (gateway, DNS) and the
  guest's serial console lines say what apt hit.

Which scenarios run on both generations: the missing package (the one whose handling differs
between 22.4 and 25.1); the others exercise apt and the network, not cloud-init's version.

Needs root, qemu, debootstrap and Debian's mirror, like tests/test_localboot_realboot.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from phoenix.localboot.image import check_build_prerequisites, ensure_image, image_name

pytestmark = pytest.mark.realboot

CONFIG = Path(__file__).parent / "data" / "realboot_vms.json"
REPO = Path(__file__).resolve().parents[1]
VMID = 8101
DEADLINE_S = 900  # the default guest_agent.timeout_s: what a user would wait without the fix
MISSING = "phoenix-no-such-package"


@dataclass(frozen=True)
class BootRun:
    exit_code: int
    seconds: float
    stdout: str
    stderr: str


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    problems = check_build_prerequisites()
    if problems:
        pytest.fail("real-boot tests cannot run here: " + "; ".join(problems), pytrace=False)


def _config(tmp_path: Path, *, packages: list[str], network: dict | None = None,
            timeout_s: int = DEADLINE_S) -> Path:
    """realboot_vms.json with VM 8101 changed as the scenario needs (no features)."""
    doc = json.loads(CONFIG.read_text())
    doc["$schema"] = str((REPO / "phoenix/config/phoenix_vm_configs.schema.json").resolve())
    (vm,) = [v for v in doc["vms"] if v["vmid"] == VMID]
    vm.update({"packages": packages, "features": [], "guest_agent": {"timeout_s": timeout_s}})
    vm["network_config"].update(network or {})
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _boot(config: Path, image: str, *, timeout_s: float) -> BootRun:
    ensure_image(image, log=lambda line: print(line, flush=True))  # a build is not boot time
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "phoenix", "boot", str(VMID), "--file", str(config),
         "--image", image, "--timeout", str(timeout_s)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=timeout_s + 600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    run = BootRun(done.returncode, time.monotonic() - started, done.stdout, done.stderr)
    print(f"boot on {image}: exit {run.exit_code} after {run.seconds:.0f} s\n{run.stdout}",
          flush=True)
    return run


def _agent_seconds(report: str) -> float:
    line = next(line for line in report.splitlines() if "guest agent after" in line)
    return float(line.split()[-2])


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_missing_package_is_named_when_cloud_init_ends(suite: str, tmp_path: Path) -> None:
    run = _boot(_config(tmp_path, packages=["htop", MISSING]), image_name(suite, agent=False),
                timeout_s=DEADLINE_S)
    assert run.exit_code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "readiness failed at stage 'cloud-init'" in run.stdout
    assert "cloud-init failed (`cloud-init status` exit 1)" in run.stdout
    cause = run.stdout.split("status name it:\n", 1)[1].split("\n---", 1)[0]
    # 22.4 hands the name to apt; 25.1 leaves it out of apt's call and names it itself
    named = {"bookworm": f"E: Unable to locate package {MISSING}",
             "trixie": f"Failed to install the following packages: {{'{MISSING}'}}"}[suite]
    assert named in cause, run.stdout
    # the agent came up on its own, so the failure was read from the guest, not waited out
    assert 0 < _agent_seconds(run.stdout) < run.seconds
    assert "cloud-init status  error" in run.stdout
    assert run.seconds < DEADLINE_S / 2, f"took {run.seconds:.0f} s"


def test_packages_apt_refuses_to_install_are_named(tmp_path: Path) -> None:
    # Both requested, but they conflict (the init system): apt refuses the whole transaction.
    run = _boot(_config(tmp_path, packages=["sysvinit-core", "systemd-sysv"]),
                image_name("bookworm", agent=False), timeout_s=DEADLINE_S)
    assert run.exit_code == 1, run.stderr
    assert "readiness failed at stage 'cloud-init'" in run.stdout
    cause = run.stdout.split("status name it:\n", 1)[1].split("\n---", 1)[0]
    assert "E: Unable to correct problems, you have held broken packages." in cause, run.stdout
    assert "sysvinit-core : Conflicts: systemd-sysv" in cause, run.stdout
    assert run.seconds < DEADLINE_S / 2, f"took {run.seconds:.0f} s"


def test_no_route_to_the_mirror_names_this_vms_gateway(tmp_path: Path) -> None:
    """Gateway 10.0.2.99 does not exist on the user network (slirp answers only 10.0.2.2 and
    10.0.2.3): DNS still answers, but no packet reaches the mirror, so the agent cannot be
    installed and the wait can only time out. The message must say why this VM needed the
    network and show what the console saw."""
    # The guest gives up on the mirror ~100 s into its first boot (measured under TCG on a busy
    # 2-core machine): 240 s leaves room and keeps the scenario short.
    timeout_s = 240
    config = _config(tmp_path, packages=["htop"], network={"gateway": "10.0.2.99"},
                     timeout_s=timeout_s)
    run = _boot(config, image_name("bookworm", agent=False), timeout_s=timeout_s)
    assert run.exit_code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "readiness failed at stage 'agent'" in run.stdout
    assert f"did not answer within {timeout_s} s" in run.stdout
    assert f"VM {VMID} (phoenix-docker-01) installs qemu-guest-agent from its package mirror" \
        in run.stdout
    assert "gateway 10.0.2.99" in run.stdout and "DNS 10.0.2.3" in run.stdout
    assert "guest_agent.preinstalled: true" in run.stdout
    console = run.stdout.split("The guest's serial console says:\n", 1)[1]
    assert "phoenix: guest agent: FAILED to install qemu-guest-agent" in console, run.stdout
    assert any(reason in console for reason in ("No route to host", "Could not connect",
                                                "Network is unreachable", "connection timed out"))
    assert run.seconds < timeout_s + 120, f"took {run.seconds:.0f} s"
