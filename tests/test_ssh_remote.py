"""The SSH layer against a real OpenSSH sshd on 127.0.0.1 (see ssh_fixtures.py)."""

from __future__ import annotations

import shlex
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from ssh_fixtures import TEST_USER, free_port, keygen, running_sshd

from phoenix.remote import (
    SshError,
    SshTarget,
    connect,
    parse_pinned_keys,
    public_key_line,
    redact,
    run_script,
)
from phoenix.remote.hostkeys import HostKeyFormatError


@pytest.fixture(scope="module")
def sshd():
    yield from running_sshd(["root", TEST_USER])


def target(server, user: str = TEST_USER, **kw) -> SshTarget:
    kw.setdefault("host_keys", (server.host_key_line,))
    kw.setdefault("private_key", server.client_key)
    kw.setdefault("port", server.port)
    return SshTarget(host="127.0.0.1", username=user, **kw)


def ssh_keygen_fingerprint(public_line: str, tmp: Path) -> str:
    path = tmp / f"{uuid.uuid4().hex}.pub"
    path.write_text(public_line + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]  # "256 SHA256:... comment (ED25519)"


# --- run and exit codes ---------------------------------------------------------------------

def test_runs_script_over_stdin_with_env_and_exit_code(sshd):
    lines: list[tuple[str, str]] = []
    result = run_script(
        target(sshd),
        'echo "user=$(id -un) greeting=$GREETING"\necho oops >&2\nexit 0\n',
        env={"GREETING": "it's $(touch /tmp/pwned) `id` ; rm -rf /"},
        log=lambda stream, line: lines.append((stream, line)),
    )
    assert result.ok and result.exit_code == 0
    # The value arrives literally: quoting made it data, not shell.
    assert result.stdout == f"user={TEST_USER} greeting=it's $(touch /tmp/pwned) `id` ; rm -rf /\n"
    assert result.stderr == "oops\n"
    assert ("stderr", "oops") in lines and lines[0][0] == "stdout"


def test_nonzero_exit_raises_with_host_step_code_and_stderr_tail(sshd):
    script = "for i in $(seq 1 40); do echo line-$i >&2; done\necho 'apt: no such package' >&2\n" \
             "exit 7\n"
    with pytest.raises(SshError) as info:
        run_script(target(sshd), script)
    err = info.value
    assert err.step == "run" and err.exit_code == 7
    message = str(err)
    assert f"127.0.0.1:{sshd.port}" in message and "exit code 7" in message
    assert "apt: no such package" in message and "line-40" in message
    assert "line-5\n" not in message  # only the last lines, not all of stderr
    # check=False gives the code back instead.
    result = run_script(target(sshd), script, check=False)
    assert result.exit_code == 7 and "line-1\n" in result.stderr


def test_command_reading_stdin_cannot_swallow_the_script(sshd):
    # Plain `bash -s` would hand the rest of the script to `cat`; ours gives cat /dev/null.
    result = run_script(target(sshd), "cat\necho after-cat\n")
    assert result.stdout == "after-cat\n"


def test_a_script_with_a_syntax_error_runs_nothing(sshd):
    result = run_script(target(sshd), "echo first\nif then fi\n", check=False)
    assert result.exit_code != 0 and "first" not in result.stdout


def test_megabytes_on_both_streams_do_not_deadlock(sshd):
    # 4 MiB on each stream, interleaved, plus a 2 MiB script: more than paramiko's and
    # sshd's windows, so a reader that drained one stream at a time would hang.
    padding = "# " + "x" * 1000 + "\n"
    script = padding * 2048 + (
        "chunk=$(head -c 1023 /dev/zero | tr '\\0' 'o')\n"
        "for i in $(seq 1 4096); do echo \"$chunk\"; echo \"$chunk\" >&2; done\n"
        "echo done-out; echo done-err >&2\n"
    )
    seen = {"stdout": 0, "stderr": 0}

    def count(stream: str, line: str) -> None:
        seen[stream] += 1

    started = time.monotonic()
    result = run_script(target(sshd), script, timeout_s=60, log=count)
    assert time.monotonic() - started < 30
    assert result.stdout_bytes == 4096 * 1024 + len("done-out\n")
    assert result.stderr_bytes == 4096 * 1024 + len("done-err\n")
    assert seen == {"stdout": 4097, "stderr": 4097}
    assert result.stdout.endswith("done-out\n") and result.truncated
    assert len(result.stdout) <= 70 * 1024  # the kept tail is bounded


def test_command_outliving_its_timeout_is_stopped_and_reported(sshd):
    marker = f"{time.time_ns() % 1000}.{uuid.uuid4().int % 10**6}"
    started = time.monotonic()
    with pytest.raises(SshError) as info:
        run_script(target(sshd), f"echo begun >&2\nsleep {marker}\n", timeout_s=1.5)
    elapsed = time.monotonic() - started
    assert info.value.step == "run" and "still running after 1.5 s" in str(info.value)
    assert "begun" in str(info.value)
    assert elapsed < 6
    # The remote sleep was killed (sshd delivered the signal to the process group).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", f"sleep {marker}"], check=False,
                          capture_output=True).returncode:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the timed-out command is still running on the host")


def test_sudo_runs_as_root_and_fails_cleanly_without_rights(sshd):
    result = run_script(target(sshd, user="root"), "id -u\n", sudo=True)
    assert result.stdout == "0\n"
    with pytest.raises(SshError) as info:
        run_script(target(sshd), "id -u\n", sudo=True)
    assert info.value.step == "run" and info.value.exit_code == 1
    assert "sudo" in str(info.value)  # sudo's own complaint, from stderr


def test_one_session_runs_several_commands(sshd):
    with connect(target(sshd)) as session:
        assert [session.run(f"echo {i}").stdout for i in range(3)] == ["0\n", "1\n", "2\n"]


# --- connecting -----------------------------------------------------------------------------

def test_refusing_port_fails_within_the_deadline(sshd):
    port = free_port()  # nothing listens there
    progress: list[str] = []
    started = time.monotonic()
    with pytest.raises(SshError) as info:
        connect(target(sshd, port=port, connect_deadline_s=2.0), progress=progress.append)
    elapsed = time.monotonic() - started
    assert info.value.step == "connect"
    assert "gave up after" in str(info.value) and "refused" in str(info.value).lower()
    assert 1.5 <= elapsed < 4.0
    assert len(progress) >= 3  # jittered retries, each reported


class BootingVmProxy:
    """Plays a booting VM in front of sshd: refuses first, then accepts and resets, then
    forwards to the real sshd."""

    def __init__(self, upstream_port: int, refuse_s: float, resets: int) -> None:
        self.port = free_port()
        self.upstream = upstream_port
        self.resets_left = resets
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(refuse_s,), daemon=True)
        self._thread.start()

    def _serve(self, refuse_s: float) -> None:
        time.sleep(refuse_s)  # the port is closed: connects are refused
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self.resets_left > 0:
                self.resets_left -= 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                conn.close()  # RST: "connection reset by peer"
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
        listener.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def test_connect_rides_out_refused_then_reset_then_accepts(sshd):
    proxy = BootingVmProxy(sshd.port, refuse_s=0.8, resets=2)
    progress: list[str] = []
    try:
        result = run_script(target(sshd, port=proxy.port, connect_deadline_s=20),
                            "echo booted\n", progress=progress.append)
    finally:
        proxy.stop()
    assert result.stdout == "booted\n"
    assert proxy.accepted == 3
    assert any("refused" in p.lower() for p in progress)
    assert any("reset" in p.lower() or "handshake" in p.lower() for p in progress)


def test_wrong_key_is_refused_at_once(sshd, tmp_path):
    other_key, _ = keygen(tmp_path / "intruder")
    started = time.monotonic()
    with pytest.raises(SshError) as info:
        connect(target(sshd, private_key=other_key, connect_deadline_s=30))
    assert info.value.step == "auth" and TEST_USER in str(info.value)
    assert time.monotonic() - started < 5  # not retried until the deadline
    assert other_key.splitlines()[1] not in str(info.value)


def test_host_key_mismatch_is_refused_with_both_fingerprints(sshd, tmp_path):
    _, impostor_public = keygen(tmp_path / "impostor_host")
    with pytest.raises(SshError) as info:
        connect(target(sshd, host_keys=(impostor_public,)))
    message = str(info.value)
    assert info.value.step == "host-key" and "mismatch" in message
    assert ssh_keygen_fingerprint(sshd.host_key_line, tmp_path) in message  # presented
    assert ssh_keygen_fingerprint(impostor_public, tmp_path) in message  # pinned


def test_no_pin_for_the_host_is_refused_not_trusted_on_first_use(sshd):
    known_hosts = f"[10.9.9.9]:22 {sshd.host_key_line}\n"  # a pin for another host only
    with pytest.raises(SshError) as info:
        connect(target(sshd, host_keys=(known_hosts,)))
    assert info.value.step == "host-key" and "no pinned host key" in str(info.value)


def test_pin_from_known_hosts_text_plain_and_hashed(sshd, tmp_path):
    plain = f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n"
    assert run_script(target(sshd, host_keys=(plain,)), "echo ok").stdout == "ok\n"
    hashed_file = tmp_path / "known_hosts"
    hashed_file.write_text(plain)
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed_file)], check=True, capture_output=True)
    hashed = hashed_file.read_text()
    assert hashed.startswith("|1|")
    assert run_script(target(sshd, host_keys=(hashed,)), "echo ok").stdout == "ok\n"


def test_pinned_key_parser_rejects_bad_lines():
    with pytest.raises(HostKeyFormatError, match="not valid base64"):
        parse_pinned_keys(["ssh-ed25519 !!!notbase64"])
    # Types paramiko cannot verify are skipped, not fatal: another pin may still match.
    assert parse_pinned_keys(["ssh-dss AAAAB3NzaC1kc3MAAACBAP"]) == []
    with pytest.raises(HostKeyFormatError, match="@revoked"):
        parse_pinned_keys(["@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"])


def test_key_type_mismatch_inside_line_is_rejected(sshd):
    blob = sshd.host_key_line.split()[1]
    with pytest.raises(HostKeyFormatError, match="key says 'ssh-ed25519'"):
        parse_pinned_keys([f"ecdsa-sha2-nistp256 {blob}"])


# --- secrets --------------------------------------------------------------------------------

def test_secrets_never_reach_outputs_logs_or_errors(sshd):
    password = "hunter2-" + uuid.uuid4().hex
    token = "tok'en with quote " + uuid.uuid4().hex[:8]
    logged: list[str] = []
    script = (
        'echo "pw=$DB_PASSWORD"; echo "token=$API_TOKEN" >&2\n'
        'printf "%s\\n" "$KEYTEXT" | sed -n 2p\n'  # one line of the private key
        "exit 4\n"
    )
    with pytest.raises(SshError) as info:
        run_script(
            target(sshd, secrets=(token,)),
            script,
            env={"API_TOKEN": token, "KEYTEXT": sshd.client_key},
            secret_env={"DB_PASSWORD": password},
            log=lambda stream, line: logged.append(line),
        )
    everything = str(info.value) + repr(info.value.args) + "\n".join(logged)
    assert password not in everything and "hunter2" not in everything
    assert token not in everything and shlex.quote(token) not in everything
    assert sshd.client_key.splitlines()[1] not in everything
    assert "pw=[redacted]" in "\n".join(logged)
    assert "token=[redacted]" in str(info.value)
    # The target's repr (seen in tracebacks) leaves the key out too.
    assert "PRIVATE KEY" not in repr(target(sshd))


def test_secret_env_is_not_on_the_command_line(sshd):
    secret = uuid.uuid4().hex
    result = run_script(target(sshd), 'echo "$(tr "\\0" " " </proc/$PPID/cmdline)"; '
                        'echo "${#S}"\n', secret_env={"S": secret})
    assert secret not in result.stdout and result.stdout.endswith("32\n")


def test_redact_helper_handles_quoted_and_multiline_secrets():
    assert redact("a 'it'\"'\"'s' b it's", ["it's"]) == "a [redacted] b [redacted]"
    key = "-----BEGIN X-----\nAAAABBBBCCCCDDDDEEEE\nFFFFGGGGHHHHIIII\n-----END X-----"
    assert redact("leak: FFFFGGGGHHHHIIII", [key]) == "leak: [redacted]"
    assert redact("nothing", ["", "zzz"]) == "nothing"


def test_public_key_line_matches_ssh_keygen(sshd):
    expected = " ".join(sshd.client_public.split()[:2])
    assert public_key_line(sshd.client_key, comment="") == expected
    assert public_key_line(sshd.client_key).endswith(" phoenix-pulumi")


def test_output_after_exit_status_is_not_lost(sshd):
    # sshd may send exit-status before the last stderr bytes left its pipe: the run waits for
    # the channel's EOF. Many small runs make the race likely; every byte must arrive.
    script = "head -c 300000 /dev/zero | tr '\\0' 'e' >&2; echo last >&2"
    for _ in range(5):
        result = run_script(target(sshd), script, timeout_s=30)
        assert result.stderr_bytes == 300000 + len("last\n")
        assert result.stderr.endswith("last\n")


def test_background_child_holding_the_streams_does_not_hang_the_run(sshd):
    started = time.monotonic()
    result = run_script(target(sshd), "sleep 20 & echo started", timeout_s=60)
    assert result.exit_code == 0 and result.stdout == "started\n"
    assert time.monotonic() - started < 10  # bounded grace for the EOF, not the child's 20 s
