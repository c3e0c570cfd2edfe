"""A real OpenSSH server for the SSH layer's tests (helper area "ssh").

`sshd -f CONFIG -D -e` on a free 127.0.0.1 port with its own host key, an AuthorizedKeysFile
per user inside the fixture's directory (nobody's ~/.ssh is touched) and an optional directory
of clearly named stand-in executables put first on the sessions' PATH (sshd's `SetEnv`).
Needs root (sshd must switch users); the tests skip with the reason when not root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
TEST_USER = "phxssh"  # an unprivileged login for the tests (created if missing)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def need_root_and_sshd() -> None:
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture needs root (sshd switches to the test user)")
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server / ssh-keygen not installed (apt-get install openssh-server)")


def ensure_user(name: str, home: bool = True) -> None:
    """Create a local user once; `usermod -p '*'` unlocks it for key login without a password
    (with `UsePAM no`, sshd refuses a locked `!` account)."""
    if subprocess.run(["id", "-u", name], check=False, capture_output=True).returncode != 0:
        args = ["useradd", "-s", "/bin/bash"] + (["-m"] if home else ["-M"]) + [name]
        subprocess.run(args, check=True, capture_output=True)
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)


def keygen(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A new key pair (private text, public line) made by ssh-keygen."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "phoenix-test", "-f",
                    str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SshServer:
    workdir: Path
    port: int
    host_key_line: str  # "ssh-ed25519 AAAA... comment" of the server
    client_key: str  # private key text authorized for every user below
    client_public: str
    standin_bin: Path  # first on PATH in sessions; put stand-in executables here
    users: list[str]
    process: subprocess.Popen | None = None
    stderr_path: Path = field(init=False)
    host: str = "127.0.0.1"

    def authorize(self, user: str, public_line: str) -> None:
        path = self.workdir / "authorized_keys" / user
        with path.open("a") as fh:
            fh.write(public_line.strip() + "\n")
        path.chmod(0o644)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_sshd(users: list[str], extra_config: str = "", path: str = DEFAULT_PATH) -> SshServer:
    need_root_and_sshd()
    # Not pytest's tmp_path: that is 0700 and the test users must read their key files and
    # run the stand-ins.
    workdir = Path(tempfile.mkdtemp(prefix="phoenix-sshd-"))
    workdir.chmod(0o755)
    (workdir / "authorized_keys").mkdir(mode=0o755)
    standin_bin = workdir / "standin-bin"
    standin_bin.mkdir(mode=0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    keygen(workdir / "ssh_host_ed25519_key")
    host_key_line = (workdir / "ssh_host_ed25519_key.pub").read_text().strip()
    client_key, client_public = keygen(workdir / "client_key")
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {workdir}/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AuthorizedKeysFile {workdir}/authorized_keys/%u .ssh/authorized_keys
StrictModes no
MaxStartups 50
MaxSessions 50
Subsystem sftp internal-sftp
SetEnv PATH={standin_bin}:{path}
LogLevel VERBOSE
{extra_config}
""")
    for user in users:
        if user != "root":
            ensure_user(user)
    server = SshServer(workdir, port, host_key_line, client_key, client_public, standin_bin,
                       list(users))
    for user in users:
        server.authorize(user, client_public)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], check=False, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    server.stderr_path = workdir / "sshd.log"
    server.process = subprocess.Popen([SSHD, "-f", str(config), "-D", "-e"],
                                      stdout=subprocess.DEVNULL,
                                      stderr=server.stderr_path.open("w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if server.process.poll() is not None:
                break
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("sshd did not start: " + server.stderr_path.read_text()[-2000:])


def running_sshd(users: list[str], extra_config: str = "",
                 path: str = DEFAULT_PATH) -> Iterator[SshServer]:
    """Body of a fixture: `yield from running_sshd([...])` in a test module's fixture.
    `path` follows the stand-in directory on the sessions' PATH."""
    server = start_sshd(users, extra_config, path)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
