"""The local qemu harness attaches data disks as PVE does (scsi-hd on a virtio-scsi controller,
with the disk's serial), keeps given disk files, and makes blank throwaway ones otherwise."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

from phoenix.localboot import qemu


def _argv(**changes: object) -> list[str]:
    spec = qemu.BootSpec(name="vm1", disk=Path("/img/base.qcow2"), seed_iso=Path("/w/seed.iso"),
                         mac_address="52:54:00:12:34:56",
                         guest_ip=ipaddress.IPv4Interface("10.0.2.15/24"), **changes)
    return qemu.qemu_argv(spec, overlay=Path("/w/disk.qcow2"), ssh_port=40022, qga_socket=Path("/w/qga.sock"),
                          serial_log=Path("/w/console.log"), accel="tcg")


def test_no_data_disks_no_controller():
    argv = _argv()
    assert "virtio-scsi-pci,id=scsi0" not in argv and not any("scsi-hd" in a for a in argv)


def test_data_disks_are_scsi_hd_with_their_serials():
    argv = " ".join(_argv(data_disks=((Path("/keep/a.qcow2"), "phx-docker"), (Path("/keep/b.qcow2"), "phx-logs"))))
    assert "-device virtio-scsi-pci,id=scsi0" in argv
    assert "-drive file=/keep/a.qcow2,if=none,id=data0,format=qcow2,discard=unmap" in argv
    assert "-device scsi-hd,bus=scsi0.0,drive=data0,serial=phx-docker" in argv
    assert "-device scsi-hd,bus=scsi0.0,drive=data1,serial=phx-logs" in argv


def test_create_data_disk_is_blank_and_sparse(tmp_path):
    path = tmp_path / "d.qcow2"
    qemu.create_data_disk(path, 100)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["virtual-size"] == 100 * 1024**3 and info["actual-size"] < 10 * 1024**2
