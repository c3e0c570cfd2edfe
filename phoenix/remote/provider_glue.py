"""What both dynamic providers (features, ZFS) share: connection inputs and the Pulumi log.

The connection travels as resource inputs (the key as a Pulumi secret string, never a path),
so `read` and `delete` can reconnect long after the program that created the resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phoenix.remote.errors import SshError
from phoenix.remote.output import LogFn
from phoenix.remote.ssh import SshSession, SshTarget, connect

# Inputs that only say how to reach the host: changing them never re-runs anything.
CONNECTION_ONLY_KEYS = ("private_key", "connect_timeout_s", "run_timeout_s")
# Inputs an update records without touching the host: the connection ones and the provider's
# version (a new provider release is no reason to run a script again).
RECORD_ONLY_KEYS = (*CONNECTION_ONLY_KEYS, "provider_version")
# read (refresh) and delete give up on a host after this long (or the resource's own shorter
# connect_timeout_s): a stopped or deleted VM must not hold `pulumi refresh`/`destroy` for the
# 5 minutes a booting VM gets at create.
UNREACHABLE_AFTER_S = 30.0


def target_from_props(props: Mapping[str, Any], secrets: Sequence[str] = (),
                      deadline_s: float | None = None) -> SshTarget:
    host_keys = props.get("host_keys") or ()
    if isinstance(host_keys, str):
        host_keys = (host_keys,)
    return SshTarget(
        host=str(props["host"]),
        port=int(props.get("port") or 22),
        username=str(props["username"]),
        private_key=str(props["private_key"]),
        host_keys=tuple(str(k) for k in host_keys),
        connect_deadline_s=float(deadline_s if deadline_s is not None
                                 else props.get("connect_timeout_s") or 300),
        secrets=tuple(s for s in secrets if s),
    )


def unreachable_after(props: Mapping[str, Any]) -> float:
    """Connect deadline for read/delete: the resource's connect_timeout_s, at most
    UNREACHABLE_AFTER_S."""
    return min(float(props.get("connect_timeout_s") or UNREACHABLE_AFTER_S), UNREACHABLE_AFTER_S)


def connect_or_warn(target: SshTarget, prefix: str, consequence: str) -> SshSession | None:
    """A session, or None after a warning when the host cannot be reached or verified (connect,
    host key or login failed within the target's deadline). `consequence` says what the caller
    does instead (e.g. what was not undone). Failures after connecting still raise."""
    try:
        return connect(target, pulumi_progress(prefix))
    except SshError as exc:
        if exc.step == "run":
            raise
        pulumi_warn(f"{prefix} host not reachable: {exc}. {consequence}")
        return None


def pulumi_warn(message: str) -> None:
    """A warning for the user. In the dynamic-provider process the SDK has no engine
    connection (`pulumi.log.warn` finds no engine), so it prints "warning: MESSAGE" on the
    plugin's stderr; the CLI shows every stderr line of a plugin as a message of the run, not
    tied to a resource (pulumi/pulumi `pkg/resource/plugin/plugin.go`, newPlugin's `runtrace`:
    `ctx.Diag.Infoerrf(diag.StreamMessage("" /*urn*/, msg, ...))`). So MESSAGE names the
    resource itself (the callers' prefix)."""
    import pulumi.log

    pulumi.log.warn(message)


def pulumi_log(prefix: str) -> LogFn:
    """A log callback writing to the Pulumi log (inside a dynamic provider, its stderr)."""

    def log(stream: str, line: str) -> None:
        import pulumi.log  # lazily: importing this module must stay side-effect free

        pulumi.log.info(f"{prefix} {line}" if stream == "stdout" else f"{prefix} [stderr] {line}")

    return log


def pulumi_progress(prefix: str) -> Callable[[str], None]:
    def progress(message: str) -> None:
        import pulumi.log

        pulumi.log.info(f"{prefix} {message}")

    return progress
