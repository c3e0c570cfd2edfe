"""Real first boots in qemu (marker `realboot`): the rendered cloud-init, the readiness wait over
the guest-agent socket, the Docker feature over SSH, and the proof that the check can fail.

Run: sudo .venv/bin/python -m pytest -m realboot tests/test_localboot_realboot.py -v
Needs root, qemu-system-x86, qemu-utils, debootstrap, fdisk, genisoimage (and Debian's mirror).
Missing prerequisites FAIL these tests: a skipped real boot would hide that nothing was proven.
Guests run one at a time; one booted Docker VM serves every assertion about it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest
import yaml

from phoenix.config import load_config
from phoenix.config.model import VmConfig
from phoenix.localboot.image import check_build_prerequisites, image_name
from phoenix.localboot.run import BootImage, LocalBoot, booted, make_run_key, resolve_image
from phoenix.localboot.seed import SEED_USER_DATA
from phoenix.remote.errors import SshError
from phoenix.remote.ssh import connect

pytestmark = pytest.mark.realboot

CONFIG = Path(__file__).parent / "data" / "realboot_vms.json"
DOCKER_VMID, FAST_VMID = 8101, 8102
GIB = 1024**3



def _progress(message: str) -> None:
    print(message, flush=True)


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    problems = check_build_prerequisites()
    for tool in ("qemu-system-x86_64", "genisoimage"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH")
    if problems:
        pytest.fail("real-boot tests cannot run here: " + "; ".join(problems)
                    + " (install qemu-system-x86 qemu-utils debootstrap fdisk genisoimage, "
                    "run as root)", pytrace=False)


def _vm(vmid: int) -> VmConfig:
    return load_config(CONFIG).vm(vmid)


@pytest.fixture(scope="module")
def base_image() -> BootImage:
    return resolve_image("debian-bookworm", log=_progress)


@pytest.fixture(scope="module")
def agent_image() -> BootImage:
    return resolve_image("debian-bookworm-agent", log=_progress)


@pytest.fixture(scope="module")
def docker_vm(base_image: BootImage) -> Iterator[LocalBoot]:
    """The Docker VM booted from the image without agent: cloud-init must install it."""
    with booted(_vm(DOCKER_VMID), base_image, log=_progress) as boot:
        yield boot


def test_cloud_init_installs_the_agent_and_finishes_clean(docker_vm: LocalBoot) -> None:
    assert docker_vm.readiness_error is None, docker_vm.readiness_error.message
    assert docker_vm.ready is not None and docker_vm.ready.cloud_init_status == "done"
    docker_vm.collect_facts()
    assert docker_vm.report.cloud_init_errors == []
    # The image has no agent: it answers only because cloud-init installed and started it.
    with docker_vm.ssh() as session:
        history = session.run("cat /var/log/apt/history.log", timeout_s=30).stdout
        output = session.run("sudo cat /var/log/cloud-init-output.log", timeout_s=30).stdout
    assert "qemu-guest-agent" in history
    # ... by its own step (bootcmd), before and apart from the VM's packages
    assert "phoenix: guest agent: installed" in output


def test_disk_grew_and_static_network_applied(docker_vm: LocalBoot) -> None:
    report = docker_vm.report
    if report.root_disk_bytes is None:
        docker_vm.collect_facts()
    assert report.root_disk_bytes == 6 * GIB
    assert report.root_fs_bytes is not None and report.root_fs_bytes > 5.5 * GIB
    assert "10.0.2.15" in report.addresses
    assert any(route.startswith("default via 10.0.2.2 ") for route in report.routes)
    assert report.dns_servers == ["10.0.2.3"]
    assert report.failures == [], report.failures


def test_ssh_only_with_the_injected_key(docker_vm: LocalBoot) -> None:
    target = docker_vm.ssh_target(deadline_s=30)
    with connect(target) as session:
        assert session.run("id -un", timeout_s=30).stdout.strip() == "phoenix"

    other = make_run_key()  # never added to the seed
    with pytest.raises(SshError) as refused:
        connect(replace(target, private_key=other.private_key))
    assert refused.value.step == "auth"

    with pytest.raises(SshError) as root:
        connect(replace(target, username="root"))
    assert root.value.step == "auth"

    # Password logins are off: sshd does not even offer the method.
    transport = paramiko.Transport(("127.0.0.1", docker_vm.guest.ssh_port))
    try:
        transport.start_client(timeout=30)
        with pytest.raises(paramiko.BadAuthenticationType) as methods:
            transport.auth_password("phoenix", "phoenix")
        assert "password" not in methods.value.allowed_types
        assert "publickey" in methods.value.allowed_types
    finally:
        transport.close()


def test_docker_feature_installs_docker_and_reruns_as_a_no_op(docker_vm: LocalBoot) -> None:
    first = docker_vm.run_feature("docker", {})
    assert first.ok and first.changed, first.detail
    # A new login picks up the docker group: docker works without sudo.
    with docker_vm.ssh() as session:
        info = session.run("docker info --format '{{.ServerVersion}}'", timeout_s=120,
                           check=False)
    assert info.exit_code == 0 and info.stdout.strip(), info.stderr
    second = docker_vm.run_feature("docker", {})
    assert second.ok and second.changed is False, second.detail


def test_seed_resize2fs_on_virtio_is_caught(agent_image: BootImage) -> None:
    """The seed's hard-coded `resize2fs /dev/sda1` fails on a virtio disk (/dev/vda1).

    Verbatim, the seed's runcmd hides that failure: runcmd is one shell script without `set -e`,
    so its exit status is that of the last line (`systemctl enable --now`, which succeeds) and
    cloud-init reports `done` (see docs/localboot.md). With the resize2fs line last its failure
    reaches cloud-init, which must end in `error`, and the readiness error must name it.
    """
    seed = yaml.safe_load(SEED_USER_DATA)
    seed["runcmd"].reverse()
    user_data = "#cloud-config\n" + yaml.safe_dump(seed)
    with booted(_vm(FAST_VMID), agent_image, log=_progress, user_data=user_data,
                timeout_s=600) as boot:
        error = boot.readiness_error
        assert error is not None, "readiness passed although resize2fs /dev/sda1 failed"
        _progress(f"readiness error (expected), stage {error.stage}:\n{error.message}")
        assert error.stage == "cloud-init"
        # `cloud-init status` exits 1 only for "error" (2 is "degraded", 0 "done").
        assert "cloud-init failed (`cloud-init status` exit 1)" in error.message
        assert "resize2fs" in error.message and "/dev/sda1" in error.message
        assert not boot.report.passed
        # What cloud-init itself recorded, read through the agent after the failure.
        status = boot.transport.file_read("/run/cloud-init/status.json", timeout_s=30)
        assert "scripts-user" in status.decode()


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_agent_baked_image_without_package_update_is_ready(suite: str) -> None:
    """The fast path on both guest generations (cloud-init 22.4 and 25.1)."""
    image = resolve_image(image_name(suite, agent=True), log=_progress)
    vm = _vm(FAST_VMID)
    assert vm.package_update is False and vm.guest_agent.preinstalled
    with booted(vm, image, log=_progress) as boot:
        assert boot.readiness_error is None, boot.readiness_error.message
        assert boot.ready is not None and boot.ready.cloud_init_status == "done"
        # The fast path makes no apt call at all (cloud-init 22.4 runs `apt-get update` for any
        # non-empty `packages`, which is why a preinstalled agent is not listed).
        log = boot.transport.file_read("/var/log/cloud-init.log", timeout_s=30).decode(errors="replace")
        assert "Cloud-init v. " in log  # it is cloud-init's log, as written by this boot
        assert "'apt-get'" not in log and "apt-get update" not in log
        boot.collect_facts()
        assert boot.report.passed, boot.report.render_text()
        _progress(boot.report.render_text())


def test_root_is_required() -> None:
    # Keeps the prerequisite check honest: these tests really run as root.
    assert os.geteuid() == 0
