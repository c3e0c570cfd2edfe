"""A template baked for real (marker `realboot`): `python -m phoenix template bake` on the
debootstrap image without agent, then a VM's first boot from the baked image. Both guest
generations: Debian 12 (cloud-init 22.4, a Python process per stage) and Debian 13 (cloud-init
25.1, one `cloud-init --all-stages` process that the stage units only signal, as in current
Ubuntu 24.04 images): the seal and the trims must hold for both.

Run: sudo .venv/bin/python -m pytest -q -m realboot tests/test_template_bake_realboot.py
Needs root, qemu-system-x86, qemu-utils, debootstrap, fdisk, genisoimage, e2fsprogs (debugfs)
and Debian's mirror (the bake installs the agent from it). Missing prerequisites fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.config import load_config
from phoenix.localboot.bake_inspect import BakedImageFacts, inspect_baked_image
from phoenix.localboot.run import BootImage, booted, resolve_image

pytestmark = pytest.mark.realboot

CONFIG = Path(__file__).parent / "data" / "realboot_templates.json"
TEMPLATE, VMID = "debian-12-agent", 8301
QEMU_IDLE_WAIT_S = 600
# A qemu guest's command line starts with the binary; a shell that merely mentions the name
# (`pgrep -f qemu-system` typed by someone) must not count as a running guest.
QEMU_PROCESS = r"^(\S*/)?qemu-system-"


def _progress(message: str) -> None:
    print(message, flush=True)


def wait_for_other_guests() -> None:
    """Two cores: boot only when no other qemu guest runs on this machine."""
    deadline = time.monotonic() + QEMU_IDLE_WAIT_S
    while subprocess.run(["pgrep", "-f", QEMU_PROCESS], capture_output=True, check=False).returncode == 0:
        if time.monotonic() > deadline:
            pytest.fail("another qemu guest ran for 10 minutes; not booting beside it")
        time.sleep(1)  # another run's guests may follow each other within seconds


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "genisoimage", "debugfs", "sfdisk",
                           "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"real-boot template tests cannot run here: missing {', '.join(missing)}",
                    pytrace=False)


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def suite(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def base_image(suite: str) -> BootImage:
    return resolve_image(f"debian-{suite}", log=_progress)


@pytest.fixture(scope="module")
def baked(suite: str, base_image: BootImage) -> Iterator[tuple[Path, str]]:
    """The CLI's bake: the same seed a Proxmox node boots, on the image without agent.

    Its own directory, not pytest's tmp_path: concurrent pytest sessions on this machine
    rotate the shared basetemp and could remove it mid-test."""
    workdir = Path(tempfile.mkdtemp(prefix="phoenix-bake-test-"))
    output = workdir / f"debian-{suite}-agent.qcow2"
    wait_for_other_guests()
    done = subprocess.run(
        [sys.executable, "-m", "phoenix", "template", "bake", TEMPLATE, "--file", str(CONFIG),
         "--image", f"debian-{suite}", "--output", str(output), "--accel", "tcg"],
        capture_output=True, text=True, check=False, timeout=1800)
    _progress(done.stderr[-4000:])
    _progress(done.stdout)
    try:
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        yield output, done.stdout
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_base_image_has_no_agent(base_image: BootImage) -> None:
    # What makes the next test mean something: the agent comes from the bake, not the image.
    assert not inspect_baked_image(base_image.disk).agent_installed


def test_baked_image_is_a_clean_template_with_the_agent(baked: tuple[Path, str]) -> None:
    output, stdout = baked
    facts: BakedImageFacts = inspect_baked_image(output)
    assert facts.agent_installed
    assert facts.agent_start in ("enabled", "static-udev")
    assert facts.machine_id == ""
    assert facts.ssh_host_keys == ()
    assert facts.cloud_init_state == () and facts.cloud_init_logs == ()
    assert facts.apt_lists == ()
    assert facts.network_config == ()  # the bake VM's rendered network files are gone too
    # The first-boot trims the sealing step wrote (apt's timers ship with Debian's apt).
    assert facts.agent_early
    assert facts.datasource_list == "datasource_list: [NoCloud, ConfigDrive]"
    assert facts.apt_timers_without_catch_up == ("apt-daily.timer", "apt-daily-upgrade.timer")
    assert facts.problems == []
    assert f"python -m phoenix boot VMID --image {output}" in stdout


def test_vm_booted_from_the_baked_image_is_ready_without_apt(baked: tuple[Path, str]) -> None:
    output, _ = baked
    vm = load_config(CONFIG).vm(VMID)
    # inherited from the template: the seed does not install the agent
    assert vm.guest_agent.preinstalled and vm.package_update is False and vm.clone_from == 9300
    image = resolve_image(str(output), kernel=str(output.with_name(output.stem + ".vmlinuz")),
                          initrd=str(output.with_name(output.stem + ".initrd.img")),
                          append="root=LABEL=rootfs ro console=ttyS0")
    wait_for_other_guests()
    with booted(vm, image, log=_progress, accel="tcg") as boot:
        assert boot.readiness_error is None, boot.readiness_error.message
        assert boot.ready is not None and boot.ready.cloud_init_status == "done"
        read = boot.transport.file_read
        log = read("/var/log/cloud-init.log", timeout_s=30).decode(errors="replace")
        assert "Cloud-init v. " in log
        assert "'apt-get'" not in log and "apt-get update" not in log  # no apt at first boot
        assert "iid-phoenix-8301" in log  # a new instance: the bake's state is gone
        machine_id = read("/etc/machine-id", timeout_s=30).decode().strip()
        assert re.fullmatch(r"[0-9a-f]{32}", machine_id), machine_id
        assert boot.ready.ssh_host_keys  # its own keys, made at this boot (the image had none)
        boot.collect_facts()
        assert boot.report.passed, boot.report.render_text()
        _progress(boot.report.render_text())
        # The boot report says where the time went, and the trim shows there: the agent's
        # critical chain is its virtio port, not cloud-init's local and network stages.
        timing = boot.report.boot_timing
        assert "Startup finished in" in timing, timing
        agent_chain = timing.split("critical chain to qemu-guest-agent.service:")[1].split(
            "critical chain to cloud-final.service:")[0]
        assert "qemu-guest-agent.service @" in agent_chain, timing
        assert "cloud-init" not in agent_chain and "sysinit.target" not in agent_chain, timing
        # cloud-final waits for cloud-init's network stage: `cloud-init.service` (22.4) or
        # `cloud-init-network.service` (24.3+, the single process's shim unit)
        final_chain = timing.split("critical chain to cloud-final.service:")[1]
        assert re.search(r"cloud-init(-network)?\.service @", final_chain), timing
        _progress(json.dumps({"seconds_to_agent": boot.report.seconds_to_agent,
                              "seconds_to_cloud_init_done": boot.report.seconds_to_cloud_init_done}))
