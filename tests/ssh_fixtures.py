"""A real OpenSSH server for the SSH layer's tests.

`sshd -f CONFIG -D -e` on a free 127.0.0.1 port with its own host key, an AuthorizedKeysFile
per user inside the fixture's directory (nobody's ~/.ssh is touched) and an optional directory
of clearly named stand-in executables put first on the sessions' PATH (sshd's `SetEnv`).
Needs root (sshd must switch users); the tests skip with the reason when not root.

Everything made on the host is removed when the server stops: the users it created (named for
this run, see host_hygiene.py), its directory, and /run/sshd when it made it and no other sshd
uses it. tests/conftest.py checks at the end of the run that nothing is left.
"""

from __future__ import annotations

import contextlib
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
from host_hygiene import run_user_name, temp_prefix

SSHD = "/usr/sbin/sshd"
TEST_USER = run_user_name("ssh")  # an unprivileged login for the tests, made for this run
PRIVSEP_DIR = Path("/run/sshd")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def need_root_and_sshd() -> None:
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture needs root (sshd switches to the test user)")
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server / ssh-keygen not installed (apt-get install openssh-server)")


def user_exists(name: str) -> bool:
    return subprocess.run(["id", "-u", name], check=False, capture_output=True).returncode == 0


def ensure_user(name: str, home: bool = True, shell: str = "/bin/bash") -> bool:
    """Create a local user if missing; `usermod -p '*'` unlocks it for key login without a
    password (with `UsePAM no`, sshd refuses a locked `!` account). -> True if it was created
    (then the caller removes it: remove_user)."""
    created = False
    if not user_exists(name):
        args = ["useradd", "-s", shell] + (["-m"] if home else ["-M"]) + [name]
        subprocess.run(args, check=True, capture_output=True)
        created = True
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return created


def remove_user(name: str) -> None:
    """Remove a user this run created, with its home and mail spool."""
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
    if user_exists(name):
        subprocess.run(["userdel", "-f", name], check=False, capture_output=True)


@contextlib.contextmanager
def host_users(*roles: str) -> Iterator[list[str]]:
    """Users without a home or login shell, named for this run; removed afterwards."""
    names = [run_user_name(role) for role in roles]
    created = [name for name in names if ensure_user(name, home=False, shell="/usr/sbin/nologin")]
    try:
        yield names
    finally:
        for name in created:
            remove_user(name)


def _other_sshd_running(own: subprocess.Popen | None) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (own is None or int(entry.name) != own.pid):
            try:
                if Path(entry / "exe").resolve() == Path(SSHD).resolve():
                    return True
            except OSError:
                continue
    return False


def keygen(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A new key pair (private text, public line) made by ssh-keygen."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "phoenix-test", "-f",
                    str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def reset_authorized_keys(user: str, content: str = "") -> Path:
    """The user's ~/.ssh/authorized_keys, written with `content` (0700 directory, owned by them)."""
    home = Path(subprocess.run(["getent", "passwd", user], check=True, capture_output=True,
                               text=True).stdout.split(":")[5])
    auth = home / ".ssh" / "authorized_keys"
    auth.parent.mkdir(mode=0o700, exist_ok=True)
    auth.write_text(content)
    subprocess.run(["chown", "-R", f"{user}:", str(auth.parent)], check=True)
    return auth


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
    created_users: list[str] = field(default_factory=list)
    created_privsep_dir: bool = False

    def authorize(self, user: str, public_line: str) -> None:
        path = self.workdir / "authorized_keys" / user
        with path.open("a") as fh:
            fh.write(public_line.strip() + "\n")
        path.chmod(0o644)

    def stop(self) -> None:
        """Stop sshd and remove what start_sshd made: its users, its directory, /run/sshd."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for user in self.created_users:
            remove_user(user)
        self.created_users = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.created_privsep_dir and not _other_sshd_running(None):
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()  # only when empty: another sshd's privsep would be in use
            self.created_privsep_dir = False


def start_sshd(users: list[str], extra_config: str = "", path: str = DEFAULT_PATH) -> SshServer:
    need_root_and_sshd()
    # Not pytest's tmp_path: that is 0700 and the test users must read their key files and
    # run the stand-ins.
    workdir = Path(tempfile.mkdtemp(prefix=temp_prefix("sshd")))
    workdir.chmod(0o755)
    (workdir / "authorized_keys").mkdir(mode=0o755)
    standin_bin = workdir / "standin-bin"
    standin_bin.mkdir(mode=0o755)
    created_privsep_dir = not PRIVSEP_DIR.exists()
    PRIVSEP_DIR.mkdir(exist_ok=True)  # privilege separation directory
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
    created = [user for user in users if user != "root" and ensure_user(user)]
    server = SshServer(workdir, port, host_key_line, client_key, client_public, standin_bin,
                       list(users), created_users=created, created_privsep_dir=created_privsep_dir)
    for user in users:
        server.authorize(user, client_public)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], check=False, capture_output=True,
                           text=True)
    if check.returncode != 0:
        server.stop()
        raise AssertionError(check.stderr)
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
    log = server.stderr_path.read_text()[-2000:]
    server.stop()
    raise RuntimeError("sshd did not start: " + log)


def running_sshd(users: list[str], extra_config: str = "",
                 path: str = DEFAULT_PATH) -> Iterator[SshServer]:
    """Body of a fixture: `yield from running_sshd([...])` in a test module's fixture.
    `path` follows the stand-in directory on the sessions' PATH."""
    server = start_sshd(users, extra_config, path)
    try:
        yield server
    finally:
        server.stop()
