"""The guest-agent transport straight over a QEMU guest-agent unix socket (no Proxmox).

This is the channel Proxmox itself uses under its `agent/*` API: QEMU started with

    -chardev socket,path=QGA.sock,server=on,wait=off,id=qga0
    -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0

Usage (e.g. the local boot waiting for a real qemu guest):

    from phoenix.readiness.qga import QgaSocketTransport
    from phoenix.readiness.wait import wait_for_ready

    transport = QgaSocketTransport("/tmp/run/QGA.sock", is_running=lambda: proc.poll() is None,
                                   name="local guest")
    try:
        result = wait_for_ready(transport, timeout_s=300, log=print)
    finally:
        transport.close()
    print(result.seconds_to_agent, result.ipv4_addresses, result.ssh_host_keys)

    transport.shutdown()        # guest-shutdown (powerdown); the agent sends no answer

Protocol: JSON objects, one per line. Before every command the transport resynchronises the
way QEMU documents it: it sends the byte 0xFF (which makes the agent drop any half-read
request) followed by `{"execute": "guest-sync-delimited", "arguments": {"id": N}}` with a fresh
random N; the agent answers 0xFF then `{"return": N}`. Everything read before the answer with
our N (stale replies to commands that timed out earlier, garbage from a previous boot) is
dropped. While no agent runs in the guest the socket accepts and swallows what we write and
never answers, so "not running" is a sync that times out.

The socket accepts one client at a time; keep one transport per guest and close() it.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    ExecStatus,
    GuestTransport,
    IpAddress,
    NetworkInterface,
    TransientError,
    VmNotRunningError,
)

DELIMITER = b"\xff"
# A running agent answers a sync in milliseconds; a longer wait only delays the next attempt.
DEFAULT_SYNC_TIMEOUT_S = 1.0
FILE_CHUNK = 48 * 1024  # guest-file-read's count; the agent caps one read at 48 MiB anyway


class QgaSocketTransport(GuestTransport):
    """GuestTransport over a QEMU guest-agent socket.

    path: the chardev socket. is_running: tells whether the QEMU process still runs (default:
    the socket file exists). name: how messages name the guest.
    """

    def __init__(
        self,
        path: str,
        *,
        is_running: Callable[[], bool] | None = None,
        name: str | None = None,
        sync_timeout_s: float = DEFAULT_SYNC_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.is_running = is_running
        self.name = name or f"guest at {path}"
        self.sync_timeout_s = sync_timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._calls = 0

    # ------------------------------------------------------------------ GuestTransport

    @property
    def calls(self) -> int:
        return self._calls

    def describe(self) -> str:
        return self.name

    def vm_status(self, *, timeout_s: float) -> str:
        if self.is_running is not None:
            return "running" if self.is_running() else "stopped"
        return "running" if os.path.exists(self.path) else "stopped"

    def ping(self, *, timeout_s: float) -> None:
        self.command("guest-ping", timeout_s=timeout_s)

    def exec_start(self, argv: Sequence[str], *, timeout_s: float) -> int:
        if not argv:
            raise ValueError("empty argv")
        answer = self.command(
            "guest-exec",
            {"path": argv[0], "arg": list(argv[1:]), "capture-output": True},
            timeout_s=timeout_s,
        )
        return int(answer["pid"])

    def exec_status(self, pid: int, *, timeout_s: float) -> ExecStatus:
        answer = self.command("guest-exec-status", {"pid": pid}, timeout_s=timeout_s)
        return ExecStatus(
            exited=bool(answer.get("exited")),
            exitcode=answer.get("exitcode"),
            signal=answer.get("signal"),
            stdout=_b64_text(answer.get("out-data")),
            stderr=_b64_text(answer.get("err-data")),
            truncated=bool(answer.get("out-truncated") or answer.get("err-truncated")),
        )

    def file_read(self, path: str, *, timeout_s: float, max_bytes: int = 1 << 20) -> bytes:
        deadline = time.monotonic() + timeout_s
        handle = self.command("guest-file-open", {"path": path, "mode": "r"}, timeout_s=timeout_s)
        data = b""
        try:
            while len(data) < max_bytes:
                chunk = self.command(
                    "guest-file-read",
                    {"handle": handle, "count": min(FILE_CHUNK, max_bytes - len(data))},
                    timeout_s=max(deadline - time.monotonic(), 0.1),
                )
                data += base64.b64decode(chunk.get("buf-b64") or "")
                if chunk.get("eof") or not chunk.get("count"):
                    break
        finally:
            try:
                self.command("guest-file-close", {"handle": handle},
                             timeout_s=max(deadline - time.monotonic(), 0.5))
            except (TransientError, AgentNotRunningError, AgentCommandError):
                pass  # a leaked handle in the guest is harmless; the read itself succeeded
        return data

    def network_interfaces(self, *, timeout_s: float) -> list[NetworkInterface]:
        return parse_interfaces(self.command("guest-network-get-interfaces", timeout_s=timeout_s))

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""

    # ------------------------------------------------------------------ extra commands

    def shutdown(self, mode: str = "powerdown", *, timeout_s: float = 5.0) -> None:
        """Ask the guest to power off. A successful guest-shutdown sends no answer."""
        self._sync(min(timeout_s, self.sync_timeout_s))
        self._send({"execute": "guest-shutdown", "arguments": {"mode": mode}})
        self._calls += 1

    def command(self, name: str, arguments: dict[str, Any] | None = None, *,
                timeout_s: float = 5.0) -> Any:
        """Resync, send one command, return its "return" value."""
        self._calls += 1
        try:
            self._sync(min(timeout_s, self.sync_timeout_s))
            message: dict[str, Any] = {"execute": name}
            if arguments is not None:
                message["arguments"] = arguments
            self._send(message)
            reply = self._read_reply(time.monotonic() + max(timeout_s, 0.1), name)
        except (TransientError, AgentNotRunningError, VmNotRunningError):
            self.close()  # a half-read reply would confuse the next command
            raise
        if "error" in reply:
            error = reply["error"] or {}
            raise AgentCommandError(
                f"{self.name}: {name} failed: {error.get('desc') or error.get('class') or error}"
            )
        return reply.get("return")

    # ------------------------------------------------------------------ wire

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                raise VmNotRunningError(
                    f"{self.name}: no QEMU listening on {self.path} ({exc.strerror})"
                ) from None
            except OSError as exc:
                sock.close()
                raise TransientError(f"{self.name}: cannot connect to {self.path}: {exc}") from None
            self._sock = sock
            self._buffer = b""
        return self._sock

    def _send(self, message: dict[str, Any], prefix: bytes = b"") -> None:
        sock = self._connect()
        try:
            sock.sendall(prefix + json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise TransientError(f"{self.name}: write to agent socket failed: {exc}") from None

    def _sync(self, timeout_s: float) -> None:
        sync_id = random.randrange(1, 2**31)
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}},
                   prefix=DELIMITER)
        deadline = time.monotonic() + max(timeout_s, 0.05)
        while True:
            try:
                reply = self._read_json(deadline)
            except TimeoutError:
                raise AgentNotRunningError(
                    f"{self.name}: guest agent did not answer guest-sync-delimited within "
                    f"{timeout_s:.1f} s"
                ) from None
            if reply.get("return") == sync_id:
                return
            # Anything else is a stale reply or noise from before the resync: drop it.

    def _read_reply(self, deadline: float, name: str) -> dict[str, Any]:
        try:
            return self._read_json(deadline)
        except TimeoutError:
            raise TransientError(f"{self.name}: no answer to {name} (timed out)") from None

    def _read_json(self, deadline: float) -> dict[str, Any]:
        """The next line that parses as a JSON object; raises TimeoutError at the deadline."""
        sock = self._connect()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                # The agent puts 0xFF before a guest-sync-delimited answer; it may also be noise.
                line = line.replace(DELIMITER, b"").strip()
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)  # socket.timeout is TimeoutError: the caller's to handle
            except TimeoutError:
                raise
            except OSError as exc:
                raise TransientError(f"{self.name}: read from agent socket failed: {exc}") from None
            if not chunk:
                raise VmNotRunningError(f"{self.name}: QEMU closed the agent socket")
            self._buffer += chunk


def _b64_text(value: str | None) -> str:
    if not value:
        return ""
    return base64.b64decode(value).decode("utf-8", errors="replace")


def parse_interfaces(raw: Any) -> list[NetworkInterface]:
    """guest-network-get-interfaces' answer (the same list PVE passes through as `result`)."""
    interfaces = []
    for item in raw or []:
        if not isinstance(item, dict):
            continue
        addresses = tuple(
            IpAddress(
                address=str(a.get("ip-address")),
                family=str(a.get("ip-address-type", "")),
                prefix=a.get("prefix"),
            )
            for a in item.get("ip-addresses") or []
            if isinstance(a, dict) and a.get("ip-address")
        )
        interfaces.append(
            NetworkInterface(name=str(item.get("name", "")), mac=item.get("hardware-address"),
                             addresses=addresses)
        )
    return interfaces
