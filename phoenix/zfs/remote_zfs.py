"""The three zfs commands the provider needs, run over one SSH session.

Dataset, property and value travel as shell-quoted environment values and are used quoted in
the script, so nothing from config is ever parsed as shell or as a zfs option.
"""

from __future__ import annotations

from dataclasses import dataclass

from phoenix.remote.errors import SshError
from phoenix.remote.ssh import SshSession

_PRELUDE = """\
set -u
if ! command -v zfs >/dev/null 2>&1; then
    echo "phoenix-zfs: the zfs command is not installed on this host (not a ZFS node?)" >&2
    exit 127
fi
"""
_GET = _PRELUDE + 'exec zfs get -Hp -o value,source -- "$PROP" "$DATASET"\n'
_SET = _PRELUDE + 'exec zfs set "$PROP=$VALUE" "$DATASET"\n'
_INHERIT = _PRELUDE + 'exec zfs inherit ${RECEIVED:+-S} "$PROP" "$DATASET"\n'


class ZfsError(RuntimeError):
    """A clear ZFS-level failure (missing command, missing dataset, rejected value)."""


@dataclass(frozen=True)
class PropertyState:
    value: str
    source: str  # local, default, inherited from X, received, temporary, -

    @property
    def inherited(self) -> bool:
        return self.source.startswith("inherited") or self.source == "default"


def _run(session: SshSession, script: str, env: dict[str, str], sudo: bool, what: str):
    try:
        return session.run(script, env=env, sudo=sudo, timeout_s=120)
    except SshError as exc:
        if exc.step != "run" or exc.exit_code is None:
            raise
        stderr = "\n".join(exc.stderr_tail)
        host = f"{exc.host}:{exc.port}"
        if exc.exit_code == 127 and "zfs command is not installed" in stderr:
            raise ZfsError(f"{host}: the zfs command is not installed (is this a ZFS-backed "
                           "Proxmox node?)") from None
        if "dataset does not exist" in stderr:
            raise ZfsError(f"{host}: dataset {env['DATASET']!r} does not exist") from None
        raise ZfsError(f"{host}: {what} failed (exit code {exc.exit_code}): "
                       f"{stderr.strip() or 'no error output'}") from None


def get_property(session: SshSession, dataset: str, prop: str, sudo: bool) -> PropertyState:
    result = _run(session, _GET, {"DATASET": dataset, "PROP": prop}, sudo,
                  f"zfs get {prop} {dataset}")
    line = result.stdout.rstrip("\n").split("\n")[-1]
    value, sep, source = line.partition("\t")
    if not sep:
        raise ZfsError(f"unexpected `zfs get` output for {dataset} {prop}: {line!r}")
    return PropertyState(value, source)


def set_property(session: SshSession, dataset: str, prop: str, value: str, sudo: bool) -> None:
    _run(session, _SET, {"DATASET": dataset, "PROP": prop, "VALUE": value}, sudo,
         f"zfs set {prop}={value} {dataset}")


def inherit_property(session: SshSession, dataset: str, prop: str, sudo: bool,
                     received: bool = False) -> None:
    env = {"DATASET": dataset, "PROP": prop, "RECEIVED": "1" if received else ""}
    _run(session, _INHERIT, env, sudo, f"zfs inherit {prop} {dataset}")
