"""One template bake on Proxmox VE, bounded and reported by stage; all or nothing.

Stages: `prepare` (VM stopped, pre-bake snapshot), `start`, `agent` (the guest agent the bake
installs answers), `cloud-init` (packages install), `sealing` (instance state removed),
`power-off` (the guest switched itself off), `template` (snapshot dropped, converted).

All or nothing: before the first start the disk is snapshotted (`phoenix_prebake`). When the
bake fails or times out the VM is stopped and rolled back to that snapshot, so it is again the
untouched imported image and never a template; the next `pulumi up` bakes again from there.
Only a sealed, powered-off guest is converted. An interrupted earlier attempt (the snapshot still
there) is rolled back before starting. This needs storage that takes snapshots (ZFS, LVM-thin,
Ceph RBD, qcow2 on a directory/NFS); on other storage the bake stops in `prepare` and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from phoenix.cloudinit.bake import STATUS_FILE
from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    TransientError,
    TransportError,
    VmNotRunningError,
)
from phoenix.templatebake.pve_control import PveVmControl, TaskFailed

PREBAKE_SNAPSHOT = "phoenix_prebake"
POLL_INTERVAL_S = 3.0
CALL_TIMEOUT_S = 10.0
Log = Callable[[str], None]


class BakeFailed(Exception):
    """The bake did not produce a template; the VM was rolled back (message says if not)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"[stage: {stage}] {message}")
        self.stage = stage
        self.message = message


@dataclass
class BakeOutcome:
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)


def bake_on_pve(control: PveVmControl, *, timeout_s: float, log: Log = print,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> BakeOutcome:
    started = clock()
    outcome = BakeOutcome(seconds=0.0)
    where = control.describe()

    def reached(stage: str) -> None:
        outcome.stages.setdefault(stage, round(clock() - started, 1))
        log(f"{where}: bake stage {stage} ({clock() - started:.0f} s)")

    reached("prepare")
    try:
        if str(control.config().get("template", 0)) in ("1", "True", "true"):
            raise BakeFailed("prepare", f"{where} is already a template: a template is baked once")
        snapshots = control.snapshot_names()
        if PREBAKE_SNAPSHOT in snapshots:
            log(f"{where}: an earlier bake was interrupted; rolling back to {PREBAKE_SNAPSHOT}")
            if control.vm_status(timeout_s=CALL_TIMEOUT_S) == "running":
                control.stop()
            control.rollback(PREBAKE_SNAPSHOT)
        else:
            if control.vm_status(timeout_s=CALL_TIMEOUT_S) != "stopped":
                raise BakeFailed("prepare", f"{where} is running: a bake starts from the stopped, "
                                 "freshly imported VM")
            control.snapshot(PREBAKE_SNAPSHOT)
    except TaskFailed as exc:
        raise BakeFailed("prepare", f"{exc} (the template's storage must take snapshots: ZFS, "
                         "LVM-thin, Ceph RBD or qcow2 on a directory)") from None
    except TransportError as exc:
        raise BakeFailed("prepare", str(exc)) from None

    stage = "start"
    try:
        reached("start")
        control.start()
        stage = _wait_power_off(control, started + timeout_s, reached, clock, sleep)
        reached("template")
        stage = "template"
        control.delete_snapshot(PREBAKE_SNAPSHOT)
        control.convert_to_template()
    except (BakeFailed, TaskFailed, TransportError) as exc:
        message = exc.message if isinstance(exc, BakeFailed) else str(exc)
        stage = exc.stage if isinstance(exc, BakeFailed) else stage
        raise BakeFailed(stage, message + _roll_back(control, log)) from None
    outcome.seconds = round(clock() - started, 1)
    log(f"{where}: baked and converted to a template in {outcome.seconds:.0f} s")
    return outcome


def _wait_power_off(control: PveVmControl, deadline: float, reached: Callable[[str], None],
                    clock: Callable[[], float], sleep: Callable[[float], None]) -> str:
    """Poll until the guest has sealed itself and powered off; returns the last stage."""
    stage = "start"
    last_error = ""
    while True:
        try:
            status = control.vm_status(timeout_s=CALL_TIMEOUT_S)
        except TransientError as exc:
            status, last_error = "unknown", str(exc)
        if status == "stopped":
            if stage != "sealing":
                # Only the sealing step powers off: anything else (a crash, a user's stop)
                # leaves an unsealed disk.
                raise BakeFailed(stage, "the VM stopped before the bake sealed it "
                                 f"(last stage {stage!r}); nothing was converted")
            reached("power-off")
            return "power-off"
        if status == "running":
            try:
                text = control.file_read(STATUS_FILE, timeout_s=CALL_TIMEOUT_S).decode(errors="replace")
                if stage == "start":
                    reached("agent")
                    stage = "agent"
                if "phoenix-bake: failed" in text:
                    raise BakeFailed("cloud-init" if stage in ("agent", "cloud-init") else stage,
                                     text.strip().removeprefix("phoenix-bake: "))
                if "sealing" in text or "sealed" in text:
                    if stage != "sealing":
                        reached("sealing")
                    stage = "sealing"
                elif stage == "agent":
                    reached("cloud-init")
                    stage = "cloud-init"
            except AgentNotRunningError as exc:
                last_error = str(exc)  # not installed yet: the bake installs it
            except AgentCommandError as exc:
                # The agent answers; the status file is not there yet (cloud-init still runs).
                last_error = str(exc)
                if stage == "start":
                    reached("agent")
                    stage = "agent"
                if stage == "agent":
                    reached("cloud-init")
                    stage = "cloud-init"
            except (TransientError, VmNotRunningError) as exc:
                last_error = str(exc)
        if clock() > deadline:
            raise BakeFailed(stage, f"no power-off within the bake timeout (last stage {stage!r}"
                             + (f"; last answer: {last_error}" if last_error else "") + ")")
        sleep(POLL_INTERVAL_S)


def _roll_back(control: PveVmControl, log: Log) -> str:
    """Stop and roll back to the pre-bake snapshot; returns what to add to the error."""
    try:
        if control.vm_status(timeout_s=CALL_TIMEOUT_S) != "stopped":
            control.stop()
        if PREBAKE_SNAPSHOT in control.snapshot_names():
            control.rollback(PREBAKE_SNAPSHOT)
            control.delete_snapshot(PREBAKE_SNAPSHOT)
        log(f"{control.describe()}: bake failed; the VM was stopped and rolled back to its "
            "imported disk (not a template)")
        return "; the VM was stopped and rolled back to its imported disk (not a template)"
    except (TaskFailed, TransportError) as exc:
        return (f"; rolling back failed too ({exc}): the VM is NOT a template, and the next "
                f"`pulumi up` rolls it back to {PREBAKE_SNAPSHOT} before baking again")
