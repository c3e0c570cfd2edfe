"""The bounded wait for a VM: running, guest agent answering, cloud-init finished.

`wait_for_ready(transport, timeout_s=..., log=...)` knows nothing about Proxmox: it drives a
`GuestTransport` (PVE API or a QEMU agent socket) and either returns a `ReadyResult` or raises
a `ReadinessError` whose `.stage` says what never became ready and whose message carries the
evidence (the last answer, `cloud-init status --long`, the tail of the cloud-init log).

Polling design (the targets: notice the agent within 1.5 s of it answering, and make at most
40 API calls per minute of waiting on average; the proxmoxve provider polls every second, 60/min):

- Every call buys 1.5 s (60 s / 40 calls) of waiting: the next attempt starts
  `calls made by this attempt x 1.5 s` after this one started (start-to-start, so slow answers
  do not stretch the gaps). The status check at t=0 costs one call, so the first ping goes out
  at 1.5 s, then one every 1.5 s: 40 calls a minute, and an agent that starts answering is seen
  by the next ping, at most 1.5 s later (plus half a round trip). A cloud-init poll
  (exec + exec-status, 2-3 calls) repeats every 3-4.5 s: still 40 calls a minute. No attempt
  ever catches up on a late one, so there are no bursts.
- No fast start-up ramp (0.25, 0.5, 1 s...): right after a VM was created or started its agent
  is at its least likely to be about to answer, so early fast polls spend calls for nothing and
  cannot improve the 1.5 s bound. An agent that is already up is seen at the first ping (1.5 s).
- One exec answers everything the wait needs once cloud-init is over (`PROBE_ARGV`, probe.py): cloud-init's
  status (the exec's exit code is `cloud-init status`'s), then the SSH host keys and the IPv4
  addresses, so a VM that finishes costs exec + exec-status and nothing after. While cloud-init
  is waited for, that exec is also the agent poll: where no agent answers, PVE refuses it exactly
  as it refuses a ping (one call), and the first one accepted is the agent answering. With many
  VMs finishing at once this is what the per-node API budget has to carry
  (`phoenix.readiness.api_budget`): 2 calls per VM instead of 6 (ping, status exec and its
  status, interfaces, host-key exec and its status). A guest without `sh` or `ip` gets the
  separate calls instead.
- The only calls outside that budget are one-offs after a failure (the evidence), or the
  separate reads above. Over a whole wait of T s the
  count is therefore 1 + T/1.5 plus those: 40/min plus one call, which no schedule can avoid
  while it must both check the status first and never leave a 1.5 s gap.
- No periodic VM status re-check while pinging (it would cost calls and delay pings): PVE
  answers an agent command on a stopped VM with "VM N is not running", which ends the wait at
  once; a final status check at the deadline tells "stopped" from "no agent" in the message.
- Every call is bounded by the time left, so the wait ends at its deadline plus at most the
  evidence reads (`EVIDENCE_TIMEOUT_S`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phoenix.readiness.causes import cause_lines

# The probe and its parsing (re-exported: the wait's users import them from here too).
from phoenix.readiness.probe import (
    CLOUD_INIT_STATUS_ARGV,
    EXIT_NOT_FOUND,
    HOST_KEYS_ARGV,
    PROBE_ADDRESSES_LINE,
    PROBE_ARGV,
    PROBE_KEYS_LINE,
    PROBE_SCRIPT,
    ProbeAnswer,
    ipv4_addresses,
    parse_cloud_init_status,
    parse_host_keys,
    parse_probe,
)
from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    AuthError,
    ExecResult,
    GuestTransport,
    PermissionDeniedError,
    TransientError,
    TransportConfigError,
    TransportError,
    VmNotFoundError,
    VmNotRunningError,
    finish_command,
    run_command,
)

# The probe and its parsing live in probe.py; the wait's users import them from here too.
__all__ = [
    "CLOUD_INIT_STATUS_ARGV", "DEFAULT_TIMEOUT_S", "EXIT_NOT_FOUND", "HOST_KEYS_ARGV",
    "PROBE_ADDRESSES_LINE", "PROBE_ARGV", "PROBE_KEYS_LINE", "PROBE_SCRIPT", "STAGES", "ProbeAnswer",
    "ReadinessError", "ReadyResult", "ipv4_addresses", "parse_cloud_init_status", "parse_host_keys",
    "parse_probe", "wait_for_ready",
]

CALLS_PER_MINUTE = 40
POLL_INTERVAL_S = 60.0 / CALLS_PER_MINUTE  # 1.5 s per call
PROGRESS_EVERY_S = 5.0
MAX_CALL_S = 10.0  # one API call never blocks longer (PVE's own agent timeouts are shorter)
EVIDENCE_TIMEOUT_S = 3.0  # reads made after a failure, to show why
# `cloud-init status --long` after cloud-init ended (exit 1 or 2): not bound by the deadline, and
# measured at more than 3 s in a TCG guest, where the evidence then went missing.
EVIDENCE_COMMAND_TIMEOUT_S = 20.0
# Reading the whole output log (for the lines that name the cause) after a failure: over the
# QGA socket that is a chunked read, slower than one API answer.
EVIDENCE_LOG_TIMEOUT_S = 10.0
CLOUD_INIT_LOG = "/var/log/cloud-init-output.log"
LOG_TAIL_LINES = 40
HOST_KEY_FILES = tuple(f"/etc/ssh/ssh_host_{kind}_key.pub" for kind in ("ed25519", "ecdsa", "rsa"))
DEFAULT_TIMEOUT_S = 900.0

STAGES = ("vm-status", "agent", "cloud-init")
_FATAL = (AuthError, PermissionDeniedError, TransportConfigError, VmNotFoundError)


@dataclass(frozen=True)
class ReadyResult:
    """What a ready VM looks like. Times are seconds since the wait began."""

    seconds_to_agent: float
    seconds_to_cloud_init: float | None  # None when cloud-init was not waited for
    cloud_init_status: str  # "done", "degraded" or "skipped"
    warnings: tuple[str, ...] = ()
    ipv4_addresses: tuple[str, ...] = ()
    ssh_host_keys: tuple[str, ...] = ()  # "ssh-ed25519 AAAA..." (no comment)
    api_calls: int = 0

    def to_outputs(self) -> dict[str, Any]:
        """The resource outputs (plain JSON values)."""
        return {
            "seconds_to_agent": self.seconds_to_agent,
            "seconds_to_cloud_init": self.seconds_to_cloud_init,
            "cloud_init_status": self.cloud_init_status,
            "ipv4_addresses": list(self.ipv4_addresses),
            "ssh_host_keys": list(self.ssh_host_keys),
            "warnings": list(self.warnings),
        }


class ReadinessError(Exception):
    """The VM did not become ready. `stage` is one of STAGES; the message holds the evidence."""

    def __init__(self, stage: str, message: str, *, elapsed_s: float = 0.0,
                 seconds_to_agent: float | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.elapsed_s = elapsed_s
        # When the agent had answered before the failure (a cloud-init failure read through it).
        self.seconds_to_agent = seconds_to_agent


def wait_for_ready(
    transport: GuestTransport,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None],
    wait_for_cloud_init: bool = True,
    read_host_keys: bool = True,
    poll_interval_s: float | None = None,  # default POLL_INTERVAL_S (read at call time)
    progress_every_s: float = PROGRESS_EVERY_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    first_boot_hint: str = "",
) -> ReadyResult:
    """Wait until the VM runs, its agent answers and cloud-init is done; at most timeout_s.

    `first_boot_hint` says what this VM's first boot needs for its agent to answer and what
    most likely stops it (`phoenix.cloudinit.first_boot_hint`); the agent timeout message ends
    with it, since without an agent nothing in the guest can be read.
    """
    interval = POLL_INTERVAL_S if poll_interval_s is None else poll_interval_s
    wait = _Wait(transport, timeout_s, log, interval, progress_every_s, clock, sleep,
                 first_boot_hint=first_boot_hint.strip())
    return wait.run(wait_for_cloud_init=wait_for_cloud_init, read_host_keys=read_host_keys)


def _cannot_execute(exc: AgentCommandError) -> bool:
    """The agent could not start the program at all (not installed, not executable)."""
    return "No such file" in str(exc) or "Failed to execute" in str(exc)


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# ---------------------------------------------------------------------------- the wait


@dataclass
class _Wait:
    transport: GuestTransport
    timeout_s: float
    log: Callable[[str], None]
    interval_s: float
    progress_every_s: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    warnings: list[str] = field(default_factory=list)
    first_boot_hint: str = ""

    def __post_init__(self) -> None:
        self.name = self.transport.describe()
        self.start = self.clock()
        self.deadline = self.start + self.timeout_s
        self.last_progress = self.start
        self.last_answer = "none yet"
        self.attempts = 0
        self.status_paid_until = self.start
        self.seconds_to_agent: float | None = None
        # The cloud-init poll: the probe, or plain `cloud-init status` once the guest showed it
        # cannot run the probe (no sh).
        self.status_argv: tuple[str, ...] = PROBE_ARGV
        # A probe the agent stage started: (pid, attempt start, calls before it).
        self.pending: tuple[int, float, int] | None = None
        self.probe: ProbeAnswer | None = None  # the probe's answer that ended the wait

    # -- helpers

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def call_timeout(self) -> float:
        return max(min(MAX_CALL_S, self.remaining()), 0.2)

    def fail(self, stage: str, message: str) -> ReadinessError:
        return ReadinessError(stage, message, elapsed_s=round(self.elapsed(), 1),
                              seconds_to_agent=self.seconds_to_agent)

    def pace(self, attempt_start: float, calls_before: int, what: str) -> bool:
        """Sleep until the next attempt may start; False if the deadline comes first."""
        cost = max(self.transport.calls - calls_before, 1)
        return self.hold(attempt_start + cost * self.interval_s, what)

    def hold(self, next_start: float, what: str) -> bool:
        now = self.clock()
        if now - self.last_progress >= self.progress_every_s:
            self.last_progress = now
            self.log(f"{self.name}: waiting for {what} ({now - self.start:.0f} s of "
                     f"{self.timeout_s:.0f} s; last answer: {self.last_answer})")
        if next_start >= self.deadline:
            remaining = self.deadline - now
            if remaining > 0:
                self.sleep(remaining)
            return False
        if next_start > now:
            self.sleep(next_start - now)
        return True

    def fatal(self, stage: str, exc: TransportError) -> ReadinessError:
        return self.fail(stage, f"{self.name}: {exc}")

    # -- stages

    def run(self, *, wait_for_cloud_init: bool, read_host_keys: bool) -> ReadyResult:
        self.log(f"{self.name}: waiting up to {self.timeout_s:.0f} s for the guest agent"
                 + (" and cloud-init" if wait_for_cloud_init else ""))
        self.wait_running()
        seconds_to_agent = self.seconds_to_agent = round(
            self.wait_agent(probe=wait_for_cloud_init), 1)
        self.log(f"{self.name}: guest agent answered after {seconds_to_agent:.1f} s")
        status, seconds_to_cloud_init = "skipped", None
        if wait_for_cloud_init:
            status, seconds_to_cloud_init = self.wait_cloud_init()
            self.log(f"{self.name}: cloud-init {status} after {seconds_to_cloud_init:.1f} s")
        addresses = self.read_addresses()
        keys = self.read_host_keys() if read_host_keys else ()
        return ReadyResult(
            seconds_to_agent=round(seconds_to_agent, 1),
            seconds_to_cloud_init=(round(seconds_to_cloud_init, 1)
                                   if seconds_to_cloud_init is not None else None),
            cloud_init_status=status,
            warnings=tuple(self.warnings),
            ipv4_addresses=addresses,
            ssh_host_keys=keys,
            api_calls=self.transport.calls,
        )

    def wait_running(self) -> None:
        while True:
            attempt_start, calls_before = self.clock(), self.transport.calls
            try:
                status = self.transport.vm_status(timeout_s=self.call_timeout())
            except _FATAL + (VmNotRunningError,) as exc:
                raise self.fatal("vm-status", exc) from None
            except (TransientError, AgentNotRunningError, AgentCommandError) as exc:
                self.last_answer = str(exc)
            else:
                if status == "running":
                    self.status_paid_until = (attempt_start + max(
                        self.transport.calls - calls_before, 1) * self.interval_s)
                    return
                raise self.fail("vm-status", f"{self.name} is {status}")
            if not self.pace(attempt_start, calls_before, "the VM status"):
                raise self.fail("vm-status", f"{self.name}: no VM status within "
                                f"{self.timeout_s:.0f} s; last answer: {self.last_answer}")

    def wait_agent(self, *, probe: bool) -> float:
        """Poll until the agent answers. With `probe`, the poll is the cloud-init probe's exec
        (refused like a ping while no agent runs); the first one accepted is left in
        `self.pending` for the cloud-init stage to finish."""
        # The status check bought the first 1.5 s: the first ping follows it by one interval
        # (an agent already up is still seen within 1.5 s, and the wait stays at 40 calls/min).
        if not self.hold(self.status_paid_until, "the guest agent"):
            raise self.fail("agent", self.agent_timeout_message())
        while True:
            attempt_start, calls_before = self.clock(), self.transport.calls
            self.attempts += 1
            try:
                if probe:
                    pid = self.transport.exec_start(self.status_argv,
                                                    timeout_s=self.call_timeout())
                    self.pending = (pid, attempt_start, calls_before)
                else:
                    self.transport.ping(timeout_s=self.call_timeout())
                return self.clock() - self.start
            except AgentCommandError as exc:
                if probe and _cannot_execute(exc):
                    # The agent answered: it cannot run the probe (no sh). Poll cloud-init alone.
                    self.status_argv = CLOUD_INIT_STATUS_ARGV
                    return self.clock() - self.start
                self.last_answer = str(exc)
            except PermissionDeniedError as exc:
                # PVE checks the privilege before asking the agent: a token that may not exec is
                # named now, not after the boot. Exec is what the cloud-init stage needs.
                raise self.fatal("cloud-init" if probe else "agent", exc) from None
            except _FATAL as exc:
                raise self.fatal("agent", exc) from None
            except VmNotRunningError as exc:
                raise self.fail("agent", f"{self.name} stopped while waiting for the guest "
                                f"agent: {exc}") from None
            except (TransientError, AgentNotRunningError) as exc:
                self.last_answer = str(exc)
            if not self.pace(attempt_start, calls_before, "the guest agent"):
                raise self.fail("agent", self.agent_timeout_message())

    def agent_timeout_message(self) -> str:
        stopped = ""
        try:
            status = self.transport.vm_status(timeout_s=EVIDENCE_TIMEOUT_S)
            if status != "running":
                stopped = f" The VM is now {status}."
        except TransportError:
            pass  # the message below stands without it
        hint = (f"\n{self.first_boot_hint}" if self.first_boot_hint else
                " Is qemu-guest-agent installed and started by cloud-init (and the VM's agent "
                "option enabled)?")
        return (f"{self.name}: the guest agent did not answer within {self.timeout_s:.0f} s "
                f"({self.attempts} pings; last answer: {self.last_answer}).{stopped}{hint}")

    def wait_cloud_init(self) -> tuple[str, float]:
        self.last_answer = "none yet"
        while True:
            attempt_start, calls_before = self.clock(), self.transport.calls
            pending, self.pending = self.pending, None
            if pending is not None:  # the agent stage's probe: that attempt goes on
                attempt_start, calls_before = pending[1], pending[2]
            argv = self.status_argv
            try:
                result = self.poll_cloud_init(argv, pending[0] if pending else None)
            except _FATAL as exc:
                raise self.fatal("cloud-init", exc) from None
            except VmNotRunningError as exc:
                raise self.fail("cloud-init", f"{self.name} stopped while cloud-init ran: {exc}") from None
            except AgentCommandError as exc:
                if _cannot_execute(exc):
                    if argv == PROBE_ARGV:
                        self.status_argv = CLOUD_INIT_STATUS_ARGV  # no sh: ask cloud-init alone
                        continue
                    raise self.fail("cloud-init", f"{self.name}: cannot run `cloud-init status` "
                                    f"in the guest: is cloud-init installed? ({exc})") from None
                self.last_answer = str(exc)
            except (TransientError, AgentNotRunningError) as exc:
                # The agent may restart while cloud-init upgrades packages: keep polling.
                self.last_answer = str(exc)
            else:
                outcome = self.judge_cloud_init(result, argv)
                if outcome is not None:
                    return outcome, self.clock() - self.start
            if not self.pace(attempt_start, calls_before, "cloud-init"):
                raise self.fail("cloud-init", self.cloud_init_timeout_message())

    def poll_cloud_init(self, argv: tuple[str, ...], pid: int | None) -> ExecResult:
        """One cloud-init poll: finish the exec the agent stage started (pid), or run argv."""
        timeout_s = min(30.0, max(self.remaining(), 0.2))
        if pid is not None:
            return finish_command(self.transport, pid, argv,
                                  deadline=self.clock() + timeout_s, timeout_s=timeout_s,
                                  clock=self.clock, sleep=self.sleep)
        return run_command(self.transport, argv, timeout_s=timeout_s,
                           clock=self.clock, sleep=self.sleep)

    def judge_cloud_init(self, result: ExecResult,
                         argv: tuple[str, ...] = CLOUD_INIT_STATUS_ARGV) -> str | None:
        """"done", "degraded", None (still running); raises on failure."""
        probe = parse_probe(result.stdout) if argv == PROBE_ARGV else None
        status = parse_cloud_init_status(probe.status_text if probe else result.stdout)
        if probe is not None and result.exitcode == EXIT_NOT_FOUND and not status:
            raise self.fail("cloud-init", f"{self.name}: cannot run `cloud-init status` in the "
                            f"guest: is cloud-init installed? ({result.stderr.strip()[:200]})")
        self.last_answer = (f"exit {result.exitcode}, status: {status or '(none)'}"
                            + (f", stderr: {result.stderr.strip()[:200]}"
                               if result.stderr.strip() else ""))
        if status in ("running", "not started", "not run"):
            return None
        if result.exitcode == 1 or status == "error":
            raise self.fail("cloud-init", self.cloud_init_failure_message(result))
        if status == "disabled":
            raise self.fail("cloud-init", f"{self.name}: cloud-init is disabled in the guest, so "
                            "the user-data was not applied (`cloud-init status`: disabled)")
        if result.exitcode == 2 or "degraded" in status:
            details = self.evidence_command(["cloud-init", "status", "--long"])
            self.warnings.append(f"cloud-init finished with recoverable errors (exit 2, "
                                 f"degraded):\n{details}")
            self.log(f"{self.name}: warning: cloud-init degraded (exit 2); see the warnings output")
            self.probe = probe
            return "degraded"
        if result.exitcode == 0 and status == "done":
            self.probe = probe
            return "done"
        return None  # an answer we do not know: keep polling; the deadline message shows it

    def cloud_init_failure_message(self, result: ExecResult) -> str:
        long_status = self.evidence_command(["cloud-init", "status", "--long"])
        log_text = self.evidence_log()
        return (f"{self.name}: cloud-init failed (`cloud-init status` exit {result.exitcode}) "
                f"after {self.elapsed():.0f} s.{self.causes_section(log_text, long_status)}\n"
                f"--- cloud-init status --long ---\n{long_status}\n"
                f"--- last {LOG_TAIL_LINES} lines of {CLOUD_INIT_LOG} ---\n{log_tail(log_text)}")

    def cloud_init_timeout_message(self) -> str:
        log_text = self.evidence_log()
        return (f"{self.name}: cloud-init still running after {self.timeout_s:.0f} s "
                f"(the guest agent answered; last `cloud-init status`: {self.last_answer})."
                f"{self.causes_section(log_text)}\n"
                f"--- last {LOG_TAIL_LINES} lines of {CLOUD_INIT_LOG} ---\n{log_tail(log_text)}")

    @staticmethod
    def causes_section(log_text: str, long_status: str = "") -> str:
        """The lines that name the failure (apt/dpkg errors, failed modules), if any: from the
        output log, then from `cloud-init status --long` (where 25.1 names missing packages)."""
        causes = cause_lines(log_text)
        causes += [line for line in cause_lines(long_status) if line not in causes]
        if not causes:
            return ""
        return (f"\nCause, as {CLOUD_INIT_LOG} and cloud-init's status name it:\n"
                + "\n".join(f"  {line}" for line in causes))

    def evidence_command(self, argv: list[str]) -> str:
        try:
            result = run_command(self.transport, argv, timeout_s=EVIDENCE_COMMAND_TIMEOUT_S,
                                 clock=self.clock, sleep=self.sleep)
        except TransportError as exc:
            return f"(could not run {' '.join(argv)}: {exc})"
        return (result.stdout + result.stderr).strip() or "(no output)"

    def evidence_log(self) -> str:
        """The whole cloud-init output log (its text, or why it could not be read)."""
        try:
            data = self.transport.file_read(CLOUD_INIT_LOG, timeout_s=EVIDENCE_LOG_TIMEOUT_S)
        except TransportError as exc:
            return f"(could not read {CLOUD_INIT_LOG}: {exc})"
        return data.decode("utf-8", errors="replace") or "(empty)"

    # -- final reads

    def retry_read(self, what: str, read: Callable[[], Any]) -> Any:
        """A one-off read, retried on transient answers until the deadline."""
        while True:
            attempt_start, calls_before = self.clock(), self.transport.calls
            try:
                return read()
            except _FATAL as exc:
                raise self.fatal("agent", exc) from None
            except VmNotRunningError as exc:
                raise self.fail("agent", f"{self.name} stopped while reading {what}: {exc}") from None
            except (TransientError, AgentNotRunningError) as exc:
                self.last_answer = str(exc)
            if not self.pace(attempt_start, calls_before, what):
                raise self.fail("agent", f"{self.name}: could not read {what} before the "
                                f"deadline; last answer: {self.last_answer}")

    def read_addresses(self) -> tuple[str, ...]:
        if self.probe is not None and self.probe.addresses is not None:
            addresses = self.probe.addresses
            if not addresses:
                self.warnings.append("the guest reports no IPv4 address besides loopback")
            return addresses
        try:
            interfaces = self.retry_read(
                "the network interfaces",
                lambda: self.transport.network_interfaces(timeout_s=self.call_timeout()),
            )
        except AgentCommandError as exc:
            self.warnings.append(f"could not read the guest's network interfaces: {exc}")
            return ()
        addresses = ipv4_addresses(interfaces)
        if not addresses:
            self.warnings.append("the guest reports no IPv4 address besides loopback")
        return addresses

    def read_host_keys(self) -> tuple[str, ...]:
        if self.probe is not None and self.probe.host_keys:
            return self.probe.host_keys

        def by_exec() -> str:
            result = run_command(self.transport, HOST_KEYS_ARGV,
                                 timeout_s=min(30.0, max(self.remaining(), 1.0)),
                                 clock=self.clock, sleep=self.sleep)
            return result.stdout

        try:
            text = self.retry_read("the SSH host keys", by_exec)
            keys = parse_host_keys(text)
        except AgentCommandError:
            keys = ()
        if not keys:
            # No shell in the guest, or exec not allowed: read the usual files one by one.
            found = []
            for path in HOST_KEY_FILES:
                try:
                    found.append(self.retry_read(
                        "the SSH host keys",
                        lambda p=path: self.transport.file_read(
                            p, timeout_s=self.call_timeout()).decode("ascii", "replace")))
                except AgentCommandError:
                    continue
            keys = parse_host_keys("\n".join(found))
        if not keys:
            self.warnings.append("no SSH host public keys found in /etc/ssh "
                                 "(is openssh-server installed?)")
        return keys
