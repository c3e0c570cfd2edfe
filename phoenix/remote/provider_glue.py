"""What both dynamic providers (features, ZFS) share: connection inputs and the Pulumi log.

The connection travels as resource inputs (the key as a Pulumi secret string, never a path),
so `read` and `delete` can reconnect long after the program that created the resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phoenix.remote.output import LogFn
from phoenix.remote.ssh import SshTarget

# Inputs that only say how to reach the host: changing them never re-runs anything.
CONNECTION_ONLY_KEYS = ("private_key", "connect_timeout_s", "run_timeout_s")


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
