"""QemuGuest always cleans up: exceptions, SIGTERM, agent shutdown, a qemu that exits at start.

A stand-in `qemu-system-x86_64` (a small Python script first on PATH) listens on the agent
socket path it is given and runs until signalled, so no guest is booted; qemu-img is real.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.localboot.qemu import BootSpec, QemuError, QemuGuest

FAKE_QEMU = """\
#!{python}
import socket, sys, time
argv = sys.argv[1:]
if "{mode}" == "fail":
    print("qemu-system-x86_64: -drive file=x: Could not open 'x'", file=sys.stderr)
    sys.exit(1)
chardev = argv[argv.index("-chardev") + 1]
path = [p.split("=", 1)[1] for p in chardev.split(",") if p.startswith("path=")][0]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(1)
while True:
    time.sleep(0.1)
"""


def _fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str = "run") -> None:
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is required (Debian package qemu-utils)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "qemu-system-x86_64"
    fake.write_text(FAKE_QEMU.format(python=sys.executable, mode=mode))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def _spec(tmp_path: Path) -> BootSpec:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    return BootSpec(name="cleanup", disk=base, seed_iso=tmp_path / "seed.iso",
                    mac_address="52:54:00:00:00:01",
                    guest_ip=ipaddress.IPv4Interface("10.0.2.15/24"), accel="tcg")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_exception_inside_stops_qemu_and_removes_files(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        with QemuGuest(_spec(tmp_path), log=lambda _: None) as guest:
            assert guest.running() and guest.qga_socket.exists() and guest.overlay.exists()
            assert 1024 <= guest.ssh_port <= 65535
            pid, workdir = guest.process.pid, guest.workdir
            raise RuntimeError("boom")
    assert _gone(pid)
    assert not workdir.exists()


def test_sigterm_unwinds_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with QemuGuest(_spec(tmp_path), log=lambda _: None) as guest:
            pid, workdir = guest.process.pid, guest.workdir
            os.kill(os.getpid(), signal.SIGTERM)
    assert _gone(pid) and not workdir.exists()
    assert signal.getsignal(signal.SIGTERM) == before


def test_agent_shutdown_is_tried_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch)
    calls: list[Path] = []

    def power_off(socket_path: Path, timeout_s: float) -> None:
        calls.append(socket_path)
        guest.process.send_signal(signal.SIGKILL)  # the guest "powers off"

    guest = QemuGuest(_spec(tmp_path), log=lambda _: None, agent_shutdown=power_off)
    with guest:
        socket_path = guest.qga_socket
    assert calls == [socket_path]
    assert guest.process.returncode == -signal.SIGKILL  # exited by itself, not terminated


def test_failed_agent_shutdown_falls_back_to_terminate(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch)

    def broken(_socket: Path, _timeout: float) -> None:
        raise ConnectionRefusedError("agent not running")

    messages: list[str] = []
    with QemuGuest(_spec(tmp_path), log=messages.append, agent_shutdown=broken) as guest:
        pass
    assert guest.process.returncode == -signal.SIGTERM
    assert any("agent shutdown failed" in m for m in messages)


def test_qemu_failing_at_start_is_reported_and_cleaned(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch, mode="fail")
    guest = QemuGuest(_spec(tmp_path), log=lambda _: None)
    with pytest.raises(QemuError, match="Could not open 'x'"):
        with guest:
            pass
    assert not guest.workdir.exists()
