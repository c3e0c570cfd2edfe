"""A data disk survives a rebuild, on a real guest (marker `realboot`; docs/data.md).

Boot 1: a VM with one data disk (a blank qcow2 attached as PVE attaches it: scsi-hd with the
serial phx-<name>) boots its rendered seed; the boot script formats the blank disk, mounts it by
UUID; the test writes a file on it. Then a "rebuild", exactly what PVE does to a rebuilt VM:
a fresh root overlay of the same image, the same data disk (grown by 1 GiB, as a larger
size_gb grows the holder's volume), a new instance-id. Boot 2: the file is there, the
filesystem UUID is the same (not reformatted), it has grown, and it is mounted when the guest
first becomes ready, which is when features start (they wait for readiness).

One guest generation (bookworm with the agent baked in: the fast path), two boots.
Run: flock /tmp/phoenix-realboot.lock .venv/bin/python -m pytest -q -m realboot tests/test_data_disks_realboot.py
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from phoenix.cloudinit import render_meta_data
from phoenix.config import load_config
from phoenix.config.model import DataDiskConfig
from phoenix.localboot.qemu import create_data_disk
from phoenix.localboot.run import LocalBoot, booted, resolve_image

pytestmark = pytest.mark.realboot

CONFIG = Path(__file__).parent / "data" / "realboot_vms.json"
FAST_VMID = 8102
MOUNT = "/srv/data"
GIB = 1024**3


def _progress(message: str) -> None:
    print(message, flush=True)


def _run(boot: LocalBoot, command: str) -> str:
    with boot.ssh() as session:
        result = session.run(command, timeout_s=60)
    assert result.ok, f"{command}: exit {result.exit_code}: {result.stderr}"
    return result.stdout.strip()


def _facts(boot: LocalBoot) -> dict[str, str]:
    """Where MOUNT comes from, its UUID, size, and the script's lines in this boot's journal."""
    out = _run(boot, (
        f"src=$(findmnt -no SOURCE {MOUNT}); echo source=$src; "
        f"echo fstype=$(findmnt -no FSTYPE {MOUNT}); "
        "echo uuid=$(sudo -n blkid -p -o value -s UUID $src); "
        f"echo size=$(df -B1 --output=size {MOUNT} | tail -n 1 | tr -d ' '); "
        "echo serial_link=$(ls /dev/disk/by-id/ | grep -x 'scsi-0QEMU_QEMU_HARDDISK_phx-data'); "
        "echo iid=$(cat /var/lib/cloud/data/instance-id); "
        "echo fstab=$(grep -F '# phoenix-data phx-data' /etc/fstab); "
        "sudo -n journalctl -b -o cat | grep -F 'phoenix: data disk' | sed 's/^/log=/'"))
    facts: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        facts[key] = (facts[key] + "\n" + value) if key in facts else value
    return facts


def test_data_disk_survives_a_rebuild_same_filesystem_grown(tmp_path: Path) -> None:
    image = resolve_image("debian-bookworm-agent", log=_progress)
    base = load_config(CONFIG).vm(FAST_VMID)
    assert base.guest_agent.preinstalled and not base.package_update  # the fast path
    vm = dataclasses.replace(base, data_disks=(DataDiskConfig("data", 1, MOUNT, "local-zfs"),))
    data = tmp_path / "holder-disk-0.qcow2"
    create_data_disk(data, 1)
    token = secrets.token_hex(16)
    started = time.monotonic()

    with booted(vm, image, log=_progress, data_disk_files=[data]) as boot:
        assert boot.readiness_error is None, boot.readiness_error.message
        assert boot.ready is not None and boot.ready.cloud_init_status == "done"
        first = _facts(boot)
        _progress(f"boot 1: {first}")
        assert first["fstype"] == "ext4" and first["uuid"] and first["serial_link"]
        assert "is blank: making ext4" in first["log"] and f"mounted at {MOUNT}" in first["log"]
        assert first["fstab"].startswith(f"UUID={first['uuid']} {MOUNT} ext4 defaults,nofail")
        assert int(first["size"]) < GIB
        _run(boot, f"echo {token} | sudo -n tee {MOUNT}/proof.txt >/dev/null && sync")
    first_s = time.monotonic() - started

    # The rebuild: a new root (booted() makes a fresh overlay every time), the same data disk,
    # grown as the holder's resize grows its volume, and a new instance-id.
    subprocess.run(["qemu-img", "resize", "-q", str(data), "2G"], check=True, timeout=60)
    rebuilt_vm = dataclasses.replace(vm, data_disks=(DataDiskConfig("data", 2, MOUNT, "local-zfs"),))
    meta = render_meta_data(vm).replace("iid-phoenix-8102", "iid-phoenix-8102-rebuilt")
    assert "iid-phoenix-8102-rebuilt" in meta
    with booted(rebuilt_vm, image, log=_progress, data_disk_files=[data], meta_data=meta) as boot:
        assert boot.readiness_error is None, boot.readiness_error.message
        # The first moment features could run: the disk is already mounted, with the data.
        second = _facts(boot)
        _progress(f"boot 2 (rebuilt): {second}")
        assert second["iid"] == "iid-phoenix-8102-rebuilt"  # cloud-init saw a new instance
        assert _run(boot, f"cat {MOUNT}/proof.txt") == token
        assert second["uuid"] == first["uuid"]  # the same filesystem: not recreated
        assert "is blank" not in second["log"] and f"mounted at {MOUNT}" in second["log"]
        assert int(second["size"]) > 1.8 * GIB  # grown to the larger disk at boot
    total_s = time.monotonic() - started
    _progress(f"data disk rebuild proof: boot 1 {first_s:.0f} s, both boots {total_s:.0f} s")


def test_a_disk_that_is_not_blank_and_not_the_filesystem_is_never_formatted(tmp_path: Path) -> None:
    """A disk with a partition table (someone else's data) is left alone: the boot script refuses
    to format or mount it, cloud-init ends in error and readiness names the disk."""
    image = resolve_image("debian-bookworm-agent", log=_progress)
    vm = dataclasses.replace(load_config(CONFIG).vm(FAST_VMID),
                             data_disks=(DataDiskConfig("data", 1, MOUNT, "local-zfs"),))
    raw = tmp_path / "foreign.raw"
    subprocess.run(["truncate", "-s", "64M", str(raw)], check=True)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: gpt\n,\n", text=True, check=True)
    data = tmp_path / "foreign.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(raw), str(data)], check=True)
    before = subprocess.run(["qemu-img", "compare", "-q", str(raw), str(data)], check=False).returncode
    assert before == 0
    with booted(vm, image, log=_progress, data_disk_files=[data], timeout_s=400) as boot:
        error = boot.readiness_error
        assert error is not None, "readiness passed although the data disk was not mounted"
        assert error.stage == "cloud-init" and "exit 1" in error.message
        assert "phx-data" in error.message or "phx-data" in boot.guest.console_text()
    # untouched: the image still equals the partitioned disk byte for byte
    assert subprocess.run(["qemu-img", "compare", "-q", str(raw), str(data)], check=False).returncode == 0
