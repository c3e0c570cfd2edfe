"""The paramiko SSH layer shared by the feature and ZFS providers.

- connect: one total deadline, jittered backoff over refused/reset/banner failures, pinned host
  keys only (the server may only offer key types we hold a pin for; a mismatch is final and
  names both fingerprints), public-key auth with a key given as text. No agent, no ~/.ssh.
- run: the script travels over the channel's stdin to `bash -s`, wrapped in `{ ...; } </dev/null`
  so bash parses it completely before running anything (a truncated transfer never runs half a
  script, and a command reading stdin cannot swallow the rest of the script). Parameters are
  shell-quoted `env K=V` assignments in the command (no sshd AcceptEnv needed); secret
  parameters travel on stdin instead, so they never appear in a process list. stdout and stderr
  are drained while the command runs, lines go to a log callback, a bounded tail is kept.
"""

from __future__ import annotations

import logging
import re
import select
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import paramiko

from phoenix.remote import hostkeys
from phoenix.remote.backoff import Backoff
from phoenix.remote.errors import Redactor, SshError
from phoenix.remote.keys import PrivateKeyError, load_private_key
from phoenix.remote.output import LogFn, StreamCollector

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 32 * 1024
# How long a killed command gets to exit after SIGTERM before the channel is closed anyway.
_KILL_GRACE_S = 2.0

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect. `private_key` is the key text itself (a Pulumi secret)."""

    host: str
    username: str
    private_key: str = field(repr=False)
    # "ssh-ed25519 AAAA..." lines and/or known_hosts text; at least one must match the host.
    host_keys: tuple[str, ...]
    port: int = 22
    connect_deadline_s: float = 120.0  # total, over all attempts (a booting VM needs retries)
    attempt_timeout_s: float = 10.0  # one TCP connect + SSH handshake
    passphrase: str | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)  # more values to redact

    def redactor(self) -> Redactor:
        values = [self.private_key, *self.secrets]
        if self.passphrase:
            values.append(self.passphrase)
        return Redactor(values)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str  # the last lines (bounded), redacted
    stderr: str
    stdout_bytes: int  # everything the command wrote, even what the tail dropped
    stderr_bytes: int
    duration_s: float
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def build_command(env: Mapping[str, str] | None = None, sudo: bool = False) -> str:
    """The remote command line: `[sudo -n] [env K='v' ...] bash -s`."""
    words: list[str] = []
    if sudo:
        # -n: never prompt (there is no terminal); a password requirement fails at once.
        words += ["sudo", "-n"]
    if env:
        words.append("env")
        for name, value in env.items():
            _check_env_name(name)
            words.append(f"{name}={shlex.quote(str(value))}")
    words += ["bash", "-s"]
    return " ".join(words)


def build_stdin(script: str, secret_env: Mapping[str, str] | None = None) -> bytes:
    """The script as sent: secret exports first, everything in one group reading /dev/null."""
    exports = ""
    for name, value in (secret_env or {}).items():
        _check_env_name(name)
        exports += f"export {name}={shlex.quote(str(value))}\n"
    body = script if script.endswith("\n") else script + "\n"
    return ("{\n" + exports + body + "} </dev/null\n").encode("utf-8")


def _check_env_name(name: str) -> None:
    if not _ENV_NAME.match(name):
        raise ValueError(f"invalid environment variable name {name!r}")


class SshSession:
    """An authenticated connection. Use as a context manager; `close()` is idempotent."""

    def __init__(self, target: SshTarget, transport: paramiko.Transport) -> None:
        self.target = target
        self._transport = transport
        self._redactor = target.redactor()

    def __enter__(self) -> SshSession:  # noqa: PYI034 - not meant to be subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _error(self, step: str, detail: str, **kw) -> SshError:
        return SshError(self.target.host, self.target.port, step, detail,
                        redactor=self._redactor, **kw)

    def run(
        self,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        sudo: bool = False,
        timeout_s: float = 600.0,
        log: LogFn | None = None,
        check: bool = True,
        stderr_lines: int = 20,
    ) -> CommandResult:
        """Run `script` with bash on the host. With `check`, a non-zero exit raises SshError."""
        redactor = self._redactor.extended([*(secret_env or {}).values()])
        command = build_command(env, sudo)
        payload = build_stdin(script, secret_env)
        out = StreamCollector("stdout", redactor, log)
        err = StreamCollector("stderr", redactor, log)
        started = time.monotonic()
        try:
            channel = self._transport.open_session(timeout=min(30.0, timeout_s))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._error("run", f"cannot open a session: {exc}") from None
        try:
            channel.exec_command(command)
            exit_code = _pump(channel, payload, out, err, started + timeout_s)
        except _Timeout:
            _terminate(channel)
            out.finish()
            err.finish()
            raise self._error("run", f"command still running after {timeout_s:g} s; "
                              "sent SIGTERM and closed the channel",
                              stderr_tail=err.lines(stderr_lines)) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._error("run", f"connection lost while running: {exc}",
                              stderr_tail=err.lines(stderr_lines)) from None
        finally:
            channel.close()
        out.finish()
        err.finish()
        result = CommandResult(
            exit_code=exit_code, stdout=out.text(), stderr=err.text(),
            stdout_bytes=out.total_bytes, stderr_bytes=err.total_bytes,
            duration_s=time.monotonic() - started, truncated=out.truncated or err.truncated,
        )
        if check and not result.ok:
            what = "sudo " if sudo else ""
            raise self._error("run", f"{what}script failed", exit_code=exit_code,
                              stderr_tail=err.lines(stderr_lines))
        return result


class _Timeout(Exception):
    pass


_EOF_GRACE_S = 2.0  # after exit-status, how long to wait for the channel's EOF


def _pump(channel: paramiko.Channel, payload: bytes, out: StreamCollector,
          err: StreamCollector, deadline: float) -> int:
    """Send stdin and drain both streams in one loop, so neither side can block the other."""
    channel.setblocking(False)
    pending = memoryview(payload)
    stdin_open = True
    exit_seen_at: float | None = None
    while True:
        progressed = False
        if stdin_open and pending and channel.send_ready():
            try:
                sent = channel.send(pending[:_CHUNK].tobytes())
            except TimeoutError:
                sent = 0
            pending = pending[sent:]
            progressed = sent > 0
        if stdin_open and not pending:
            channel.shutdown_write()  # EOF on the remote stdin
            stdin_open = False
        while channel.recv_ready():
            out.feed(channel.recv(_CHUNK))
            progressed = True
        while channel.recv_stderr_ready():
            err.feed(channel.recv_stderr(_CHUNK))
            progressed = True
        if channel.exit_status_ready() and not channel.recv_ready() \
                and not channel.recv_stderr_ready():
            # exit-status can arrive before the last output: sshd sends it when the command
            # exits, while stderr may still sit in its pipe (seen: ~10 KB of 4 MB lost). The
            # channel's EOF comes only after both streams are drained, so wait for it, bounded
            # (a background child holding the streams open must not hang the run).
            if exit_seen_at is None:
                exit_seen_at = time.monotonic()
            if channel.eof_received or channel.closed or time.monotonic() - exit_seen_at > _EOF_GRACE_S:
                return channel.recv_exit_status()
        if channel.closed and not channel.exit_status_ready():
            raise EOFError("the server closed the channel without an exit status")
        if time.monotonic() > deadline:
            raise _Timeout()
        if not progressed:
            # The channel's fd becomes readable on new data or EOF; the short cap covers the
            # exit-status message and free send window, which do not signal it.
            select.select([channel], [], [], 0.005 if pending else 0.05)


def _terminate(channel: paramiko.Channel) -> None:
    """Ask sshd to signal the command's process group (RFC 4254 "signal"), then give up on it.

    paramiko has no public call for this request; OpenSSH honours it for non-pty sessions
    (killpg on the session leader). Best effort: the channel is closed regardless.
    """
    for signal_name in ("TERM", "KILL"):
        try:
            message = paramiko.Message()
            message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
            message.add_int(channel.remote_chanid)
            message.add_string("signal")
            message.add_boolean(False)
            message.add_string(signal_name)
            channel.transport._send_user_message(message)
        except Exception:  # noqa: BLE001 - the connection may already be gone
            return
        end = time.monotonic() + _KILL_GRACE_S
        while time.monotonic() < end:
            if channel.exit_status_ready() or channel.closed:
                return
            time.sleep(0.05)


# paramiko's "Error reading SSH protocol banner": the port accepted TCP but never spoke SSH.
NOT_SSH_HINT = ("the port accepts TCP connections but does not speak SSH (no SSH banner): wrong "
                "port? SSH is usually 22; 8006 is the Proxmox API")


def quiet_paramiko() -> None:
    """paramiko logs every failed handshake, traceback included, on its `paramiko.transport`
    logger from its reader thread; with no logging set up, Python's `logging.lastResort` prints
    that on stderr. Our errors say what failed in one line, so paramiko's logger is silenced
    (a NullHandler, no propagation). Idempotent; called where a connection starts, not at import."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def is_banner_error(detail: str) -> bool:
    return "protocol banner" in detail


def connect(target: SshTarget, progress: ProgressFn | None = None) -> SshSession:
    """Connect and authenticate within `target.connect_deadline_s`, retrying what a boot causes.

    Retried: refused/reset/unreachable, timeouts, sshd closing before or during the handshake.
    Final at once: host key mismatch, authentication refused, unusable key or pins.
    """
    quiet_paramiko()
    redactor = target.redactor()

    def fail(step: str, detail: str) -> SshError:
        return SshError(target.host, target.port, step, detail, redactor=redactor)

    try:
        pinned = hostkeys.parse_pinned_keys(target.host_keys, target.host, target.port)
    except hostkeys.HostKeyFormatError as exc:
        raise fail("host-key", str(exc)) from None
    if not pinned:
        raise fail("host-key", "no pinned host key for this host (never trusted on first use)")
    try:
        key = load_private_key(target.private_key, target.passphrase)
    except PrivateKeyError as exc:
        raise fail("auth", str(exc)) from None

    backoff = Backoff(target.connect_deadline_s)
    attempts = 0
    while True:
        attempts += 1
        try:
            transport = _handshake(target, pinned, backoff)
        except _Retryable as exc:
            last = str(exc)
            if progress:
                progress(f"ssh {target.host}:{target.port}: attempt {attempts} failed ({last}); "
                         f"{max(backoff.remaining_s, 0):.0f} s left")
            if not backoff.sleep():
                hint = f" ({NOT_SSH_HINT})" if is_banner_error(last) else ""
                raise fail("connect", f"gave up after {attempts} attempts in "
                           f"{backoff.elapsed_s:.1f} s; last error: {last}{hint}") from None
            continue
        except SshError:
            raise
        try:
            transport.auth_timeout = max(1.0, min(30.0, backoff.remaining_s))
            transport.auth_publickey(target.username, key)
        except paramiko.AuthenticationException:
            transport.close()
            raise fail("auth", f"public key {key.get_name()} refused for user "
                       f"{target.username!r}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise fail("auth", f"connection lost during authentication: {exc}") from None
        return SshSession(target, transport)


class _Retryable(Exception):
    pass


def _handshake(target: SshTarget, pinned: list[hostkeys.PinnedKey],
               backoff: Backoff) -> paramiko.Transport:
    budget = max(0.5, min(target.attempt_timeout_s, backoff.remaining_s))
    try:
        sock = socket.create_connection((target.host, target.port), timeout=budget)
    except OSError as exc:  # refused, reset, unreachable, timed out, DNS
        raise _Retryable(exc.strerror or type(exc).__name__) from None
    # Small request/reply messages (channel open, exec, exit status): without NODELAY, Nagle
    # plus delayed ACKs add ~40 ms to each round trip.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    options = transport.get_security_options()
    offered = hostkeys.preferred_algorithms(pinned, options.key_types)
    if not offered:
        transport.close()
        raise SshError(target.host, target.port, "host-key",
                       "none of the pinned key types is supported by paramiko")
    options.key_types = offered
    transport.banner_timeout = budget
    transport.handshake_timeout = budget
    started = time.monotonic()
    try:
        transport.start_client(timeout=budget)
        server_key = transport.get_remote_server_key()  # "No existing session" if it timed out
    except paramiko.SSHException as exc:
        transport.close()
        if "host key" in str(exc).lower():
            raise SshError(target.host, target.port, "host-key",
                           f"the server offers none of the pinned key types "
                           f"({', '.join(offered)}): {exc}") from None
        silent = is_banner_error(str(exc)) or "no existing session" in str(exc).lower()
        if silent and time.monotonic() - started >= budget * 0.9:
            # Held open the whole attempt without a word: not an SSH server (a port forward
            # whose far side is not up yet closes at once instead, and is retried).
            raise SshError(target.host, target.port, "connect",
                           f"no SSH banner within {budget:.0f} s: {NOT_SSH_HINT}") from None
        raise _Retryable(f"handshake: {exc}") from None
    except (OSError, EOFError) as exc:
        transport.close()
        raise _Retryable(f"handshake: {type(exc).__name__} {exc}") from None
    if not hostkeys.matches(pinned, server_key):
        transport.close()
        raise SshError(target.host, target.port, "host-key",
                       hostkeys.mismatch_detail(pinned, server_key))
    return transport


def run_script(target: SshTarget, script: str, *, progress: ProgressFn | None = None,
               **run_kwargs) -> CommandResult:
    """Connect, run one script (see `SshSession.run` for the keywords), always close."""
    with connect(target, progress) as session:
        return session.run(script, **run_kwargs)
