"""Key rotation over SSH (no VM rebuild) and the `phoenix ssh` CLI, against a real sshd."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest
from ssh_fixtures import TEST_USER, keygen, running_sshd

from phoenix.remote import SshError, SshTarget, connect, public_key_line
from phoenix.remote import cli as ssh_cli
from phoenix.remote.rotate import rotate_key


@pytest.fixture(scope="module")
def sshd():
    yield from running_sshd([TEST_USER])


@pytest.fixture
def user_keys(sshd, tmp_path):
    """The test user's own ~/.ssh/authorized_keys holding an 'old' key plus an unrelated one."""
    home = Path(subprocess.run(["getent", "passwd", TEST_USER], check=True, capture_output=True,
                               text=True).stdout.split(":")[5])
    auth = home / ".ssh" / "authorized_keys"
    auth.parent.mkdir(mode=0o700, exist_ok=True)
    old_key, old_public = keygen(tmp_path / "old")
    new_key, _ = keygen(tmp_path / "new")
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherAdminKeyStaysPut admin@laptop"
    auth.write_text(f'from="127.0.0.1" {old_public}\n{other}\n')
    auth.chmod(0o600)
    subprocess.run(["chown", "-R", f"{TEST_USER}:", str(auth.parent)], check=True)
    yield auth, old_key, new_key, other
    auth.unlink(missing_ok=True)


def login(server, key: str) -> SshTarget:
    return SshTarget("127.0.0.1", TEST_USER, key, (server.host_key_line,), port=server.port,
                     connect_deadline_s=5)


def test_rotate_adds_new_proves_it_then_removes_old(sshd, user_keys):
    auth, old_key, new_key, other = user_keys
    line = rotate_key(login(sshd, old_key), new_key)
    assert line == public_key_line(new_key)
    text = auth.read_text()
    assert line in text and other in text
    assert public_key_line(old_key, comment="") not in text
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    with connect(login(sshd, new_key)) as session:
        assert session.run("echo new-key-works").stdout == "new-key-works\n"
    with pytest.raises(SshError) as info:
        connect(login(sshd, old_key))
    assert info.value.step == "auth"


def test_rotate_refuses_the_same_key(sshd, user_keys):
    _, old_key, _, _ = user_keys
    with pytest.raises(ValueError, match="the new key is the old key"):
        rotate_key(login(sshd, old_key), old_key)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="phoenix ssh")
    ssh_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_public_key_reads_the_key_from_the_environment(sshd, monkeypatch, capsys):
    monkeypatch.setenv(ssh_cli.KEY_ENV, sshd.client_key)
    assert ssh_cli.run(parse(["public-key", "--comment", "ops"])) == 0
    assert capsys.readouterr().out.strip() == public_key_line(sshd.client_key, "ops")


def test_cli_rotate_and_its_errors_without_traceback(sshd, user_keys, tmp_path, monkeypatch,
                                                     capsys):
    _, old_key, new_key, _ = user_keys
    (tmp_path / "old.key").write_text(old_key)
    (tmp_path / "new.key").write_text(new_key)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")
    base = ["rotate", "--host", "127.0.0.1", "--port", str(sshd.port), "--user", TEST_USER,
            "--old-key-file", str(tmp_path / "old.key"), "--new-key-file",
            str(tmp_path / "new.key"), "--timeout", "5"]
    _, impostor = keygen(tmp_path / "impostor")
    assert ssh_cli.run(parse([*base, "--host-key", impostor])) == 1
    err = capsys.readouterr().err
    assert "host-key failed" in err and "Traceback" not in err and "PRIVATE" not in err

    assert ssh_cli.run(parse([*base, "--known-hosts", str(known_hosts)])) == 0
    assert "now accepts ssh-ed25519" in capsys.readouterr().out
    with connect(login(sshd, new_key)) as session:
        assert session.run("true").ok
