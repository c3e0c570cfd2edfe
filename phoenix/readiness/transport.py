"""How the readiness wait reaches a VM's guest agent: one interface, typed errors.

Two implementations exist: `phoenix.readiness.pve.PveTransport` (the Proxmox VE API, what the
Pulumi resource and `phoenix wait` use) and `phoenix.readiness.qga.QgaSocketTransport` (a QEMU
guest-agent unix socket, what the real-boot tests use). `phoenix.readiness.wait` only ever sees
this interface, so both run the same waiting logic.

Every method takes `timeout_s`: the longest the call may block. The wait passes the time left
before its deadline, so no call can carry a wait far past the deadline the user gave.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class TransportError(Exception):
    """Base of every error a transport raises. Messages never contain credentials."""


class TransientError(TransportError):
    """Worth retrying: a timeout, a lock held by another task, a proxy or connection error."""


class AgentNotRunningError(TransportError):
    """The VM runs but its guest agent does not answer (yet): the normal state while booting."""


class VmNotRunningError(TransportError):
    """The VM is stopped (or its QEMU process is gone)."""


class VmNotFoundError(TransportError):
    """No such VM on that node."""


class AuthError(TransportError):
    """The credentials were refused (HTTP 401). Retrying cannot help."""


class PermissionDeniedError(TransportError):
    """The credentials lack a privilege (HTTP 403). `privilege` names what to grant."""

    def __init__(self, message: str, privilege: str) -> None:
        super().__init__(message)
        self.privilege = privilege


class AgentCommandError(TransportError):
    """The agent answered, with an error for this command (no such file, no such program...)."""


class TransportConfigError(TransportError):
    """The transport cannot be built: missing endpoint or token, malformed token."""


@dataclass(frozen=True)
class ExecStatus:
    """One `guest-exec-status` answer. Output is already decoded from base64."""

    exited: bool
    exitcode: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class ExecResult:
    """A finished command run in the guest."""

    argv: tuple[str, ...]
    exitcode: int
    stdout: str
    stderr: str
    signal: int | None = None
    truncated: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exitcode == 0 and self.signal is None


@dataclass(frozen=True)
class IpAddress:
    address: str
    family: str  # "ipv4" or "ipv6", as the agent names it
    prefix: int | None = None


@dataclass(frozen=True)
class NetworkInterface:
    name: str
    mac: str | None
    addresses: tuple[IpAddress, ...] = field(default_factory=tuple)


class ExecTimeoutError(TransientError):
    """A command started in the guest but did not finish within the time given."""


# Between exec-status polls of one command: short at first (`cloud-init status` takes ~0.3-1 s
# to start Python in a guest), then longer, so a slow command costs few API calls.
EXEC_POLL_DELAYS_S = (0.3, 0.3, 0.5, 1.0, 1.5)


@runtime_checkable
class GuestTransport(Protocol):
    """What the readiness wait needs from a way of reaching a guest agent."""

    @property
    def calls(self) -> int:
        """Requests made so far (API calls, or agent commands on a socket); for pacing."""
        ...

    def describe(self) -> str:
        """How messages name the VM, e.g. "VM 8001 on pve"."""
        ...

    def vm_status(self, *, timeout_s: float) -> str:
        """"running", "stopped", "paused", ... as the hypervisor reports it."""
        ...

    def ping(self, *, timeout_s: float) -> None:
        """Return if the agent answers; raise AgentNotRunningError (or another error) if not."""
        ...

    def exec_start(self, argv: Sequence[str], *, timeout_s: float) -> int:
        """Start argv in the guest (no shell); returns the agent's pid for exec_status."""
        ...

    def exec_status(self, pid: int, *, timeout_s: float) -> ExecStatus:
        ...

    def file_read(self, path: str, *, timeout_s: float, max_bytes: int = 1 << 20) -> bytes:
        """The file's content (at most max_bytes of its start)."""
        ...

    def network_interfaces(self, *, timeout_s: float) -> list[NetworkInterface]:
        ...

    def close(self) -> None:
        ...


def run_command(
    transport: GuestTransport,
    argv: Sequence[str],
    *,
    timeout_s: float,
    clock=time.monotonic,
    sleep=time.sleep,
) -> ExecResult:
    """Run argv in the guest and wait (at most timeout_s) for it to finish.

    Raises ExecTimeoutError if it is still running at the end; the command is left running
    (neither PVE nor the agent can kill it).
    """
    deadline = clock() + timeout_s
    pid = transport.exec_start(argv, timeout_s=max(timeout_s, 0.1))
    return finish_command(transport, pid, argv, deadline=deadline, timeout_s=timeout_s,
                          clock=clock, sleep=sleep)


def finish_command(
    transport: GuestTransport,
    pid: int,
    argv: Sequence[str],
    *,
    deadline: float,
    timeout_s: float,
    clock=time.monotonic,
    sleep=time.sleep,
) -> ExecResult:
    """Poll exec-status of a command already started (pid) until it exits or the deadline
    (`timeout_s`: the time it was given, for the message)."""
    for n in range(10**9):
        delay = EXEC_POLL_DELAYS_S[min(n, len(EXEC_POLL_DELAYS_S) - 1)]
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
        status = transport.exec_status(pid, timeout_s=max(deadline - clock(), 0.1))
        if status.exited:
            return ExecResult(
                argv=tuple(argv),
                exitcode=status.exitcode if status.exitcode is not None else -1,
                stdout=status.stdout,
                stderr=status.stderr,
                signal=status.signal,
                truncated=status.truncated,
            )
    raise ExecTimeoutError(f"{' '.join(argv)!r} still running after {timeout_s:.0f} s")
