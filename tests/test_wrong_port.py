"""A port that accepts TCP but never speaks SSH (e.g. `--node-port 8006`, the PVE API): `init`,
`doctor` and `ssh rotate` each say so in one `error:` line naming host:port and the likely
cause, with no traceback and nothing from paramiko's logger on stderr. The peer is a real local
TCP listener that accepts and holds connections without a word."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pulumi_standin import StandinPulumi
from ssh_fixtures import keygen

ROOT = Path(__file__).resolve().parents[1]
HINT = "the port accepts TCP connections but does not speak SSH (no SSH banner): wrong port?"
NOBODY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINE+UEg8YNDlya0Dx3jsOlscJwK+HjcL5Gj7S0KwlVoN"


@pytest.fixture(scope="module")
def silent_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phoenix", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "paramiko" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_init(silent_port, tmp_path):
    pulumi = StandinPulumi.create(tmp_path)
    done = run("init", "--node", "pve", "--node-address", "127.0.0.1", "--node-port", str(silent_port),
               env=pulumi.env())
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: phoenix-hypervisor:nodes.pve.hostKeys: 127.0.0.1:{silent_port}: {HINT} SSH is usually 22; "
        "8006 is the Proxmox API (give the key with --host-key 'TYPE BASE64')"]
    assert done.stdout == "nothing was written.\n"


def test_ssh_rotate(silent_port, tmp_path):
    keygen(tmp_path / "old")
    keygen(tmp_path / "new")
    done = run("ssh", "rotate", "--host", "127.0.0.1", "--port", str(silent_port), "--user", "x",
               "--host-key", NOBODY, "--old-key-file", str(tmp_path / "old"), "--new-key-file",
               str(tmp_path / "new"), "--timeout", "8")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: ssh 127.0.0.1:{silent_port}: connect failed: no SSH banner within ")
    assert HINT in line


def test_doctor(silent_port, tmp_path, monkeypatch, doc, capsys):
    import json

    from phoenix.cli import main

    private, _ = keygen(tmp_path / "key")
    vm_file = tmp_path / "vms.json"
    vm_file.write_text(json.dumps(doc))
    pulumi = StandinPulumi.create(tmp_path, config={
        "proxmoxve:endpoint": "https://127.0.0.1:1/",  # unreachable: one API line, SSH still checked
        "proxmoxve:apiToken": "pulumi@pve!phoenix=0b7c3f1e-6d2a-4c55-9e8f-2a1d9c4b7e60",
        "phoenix-hypervisor:vmConfigFile": str(vm_file),
        "phoenix-hypervisor:sshPrivateKey": private,
        "phoenix-hypervisor:nodes": {"pve": {"address": "127.0.0.1", "port": silent_port,
                                             "hostKeys": [NOBODY]}}})
    for key, value in pulumi.env().items():
        if key in ("PATH", "FAKE_PULUMI_STATE"):
            monkeypatch.setenv(key, value)
    for name in ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr()
    lines = error_lines(out.err)
    assert len(out.err.splitlines()) == len(lines)  # nothing but error lines
    ssh = [line for line in lines if line.startswith("error: node pve (ssh): ")]
    assert len(ssh) == 1 and f"127.0.0.1:{silent_port}" in ssh[0] and HINT in ssh[0], lines
