"""One VM's first boot, locally: seed -> ISO -> qemu -> readiness -> features -> report.

Every step is the project's own code: the seed is rendered by `phoenix.cloudinit`, the wait is
`phoenix.readiness.wait.wait_for_ready` over the QGA-socket transport (the same logic the
Pulumi resource runs over the PVE API), and features run through the `Feature` provider of
`phoenix.features` over `phoenix.remote.ssh`, with the host keys read through the agent pinned.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from phoenix.cloudinit import first_boot_hint, render_seed
from phoenix.config.model import VmConfig
from phoenix.features.catalog import FEATURES
from phoenix.features.provider import FeatureProvider
from phoenix.localboot.image import RECIPES, ensure_image
from phoenix.localboot.qemu import BootSpec, QemuGuest, create_data_disk
from phoenix.localboot.report import BootReport, FeatureOutcome
from phoenix.localboot.seed import make_seed_iso
from phoenix.readiness.causes import cause_lines
from phoenix.readiness.qga import QgaSocketTransport
from phoenix.readiness.transport import TransportError
from phoenix.readiness.wait import ReadinessError, ReadyResult, wait_for_ready
from phoenix.remote.errors import SshError
from phoenix.remote.keys import public_key_line
from phoenix.remote.ssh import SshSession, SshTarget, connect

Log = Callable[[str], None]
RESULT_JSON = "/run/cloud-init/result.json"
# The root filesystem counts as grown when it fills at least this share of its disk (ext4
# metadata and the 1 MiB partition offset take the rest).
GROWN_SHARE = 0.9


class LocalBootError(RuntimeError):
    """A user mistake or missing prerequisite (no traceback for these)."""


@dataclass(frozen=True)
class BootImage:
    """The disk to boot, and for an image without bootloader the kernel to boot it with."""

    label: str
    disk: Path
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None


def resolve_image(image: str, *, kernel: str | None = None, initrd: str | None = None,
                  append: str | None = None, log: Log = print) -> BootImage:
    """A cached debootstrap image by name (built on first use), or a user's disk image file."""
    if image in RECIPES:
        built = ensure_image(image, log=log)
        return BootImage(image, built.disk, built.kernel, built.initrd, append or built.append)
    disk = Path(image).expanduser()
    if not disk.is_file():
        known = ", ".join(sorted(RECIPES))
        raise LocalBootError(f"--image {image!r}: no such file (or use a built-in image: {known})")
    paths = {"--kernel": kernel, "--initrd": initrd}
    for flag, value in paths.items():
        if value is not None and not Path(value).expanduser().is_file():
            raise LocalBootError(f"{flag} {value!r}: no such file")
    if (initrd or append) and not kernel:
        raise LocalBootError("--initrd and --append need --kernel (direct kernel boot)")
    return BootImage(
        label=str(disk), disk=disk,
        kernel=Path(kernel).expanduser() if kernel else None,
        initrd=Path(initrd).expanduser() if initrd else None,
        append=append,
    )


@dataclass(frozen=True)
class RunKey:
    """The throwaway SSH key of one run; only its public half ever leaves this process."""

    private_key: str = field(repr=False)
    public_line: str


def make_run_key() -> RunKey:
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return RunKey(private, public_key_line(private, comment="phoenix-localboot-run"))


@dataclass
class LocalBoot:
    """A booted guest and what the run learnt about it so far."""

    vm: VmConfig
    guest: QemuGuest
    transport: QgaSocketTransport
    key: RunKey
    report: BootReport
    log: Log
    ready: ReadyResult | None = None
    readiness_error: ReadinessError | None = None

    def ssh_target(self, *, username: str | None = None, deadline_s: float = 120.0) -> SshTarget:
        if self.ready is None:
            raise LocalBootError("the guest is not ready: no host keys to pin")
        return SshTarget(
            host="127.0.0.1", port=self.guest.ssh_port,
            username=username or self.vm.user.name, private_key=self.key.private_key,
            host_keys=self.ready.ssh_host_keys, connect_deadline_s=deadline_s,
        )

    @contextmanager
    def ssh(self) -> Iterator[SshSession]:
        with connect(self.ssh_target(), progress=self.log) as session:
            yield session

    def feature_props(self, name: str, params: dict[str, str]) -> dict[str, Any]:
        """The Feature resource's inputs for this guest, as the Pulumi program would set them."""
        target = self.ssh_target()
        return {
            "host": target.host, "port": target.port, "username": target.username,
            "private_key": target.private_key, "host_keys": list(target.host_keys),
            "feature": name, "params": dict(params), "sudo": None, "triggers": [],
            "connect_timeout_s": 120.0, "run_timeout_s": 1800.0,
            "marker_dir": "/var/lib/phoenix/features",
            "script_hash": FEATURES[name].script_hash(),
        }

    def run_feature(self, name: str, params: dict[str, str]) -> FeatureOutcome:
        started = time.monotonic()
        try:
            outputs = FeatureProvider().create(self.feature_props(name, params)).outs
        except (SshError, ValueError) as exc:
            return FeatureOutcome(name, ok=False, detail=str(exc))
        changes = outputs.get("changes")
        return FeatureOutcome(
            name, ok=outputs.get("exit_code") == 0,
            changed=None if changes is None else changes > 0,
            detail=f"{changes} change(s) in {time.monotonic() - started:.0f} s",
        )

    def run_features(self) -> None:
        for feature in self.vm.features:
            self.log(f"feature {feature.name}: running over SSH ...")
            outcome = self.run_feature(feature.name, dict(feature.params))
            self.report.features.append(outcome)
            if not outcome.ok:
                self.report.fail(f"feature {feature.name} failed: {outcome.detail}")

    def collect_facts(self) -> None:
        """Cloud-init's own verdict, the disk, network and SSH: what the report shows."""
        self._read_result_json()
        if self.ready is None:
            return
        started = time.monotonic()
        try:
            with self.ssh() as session:
                if self.report.seconds_to_ssh is None:
                    self.report.seconds_to_ssh = round(time.monotonic() - self.guest.started_at, 1)
                facts = session.run(FACTS_SCRIPT, timeout_s=60).stdout
                self.report.boot_timing = session.run(BOOT_TIMING_SCRIPT, timeout_s=60).stdout.strip()
        except SshError as exc:
            self.report.fail(f"SSH with the run's key failed after "
                             f"{time.monotonic() - started:.0f} s: {exc}")
            return
        self._apply_facts(facts)

    def _read_result_json(self) -> None:
        try:
            raw = self.transport.file_read(RESULT_JSON, timeout_s=10)
            errors = json.loads(raw).get("v1", {}).get("errors", [])
        except (TransportError, ValueError) as exc:
            self.report.fail(f"could not read {RESULT_JSON} through the agent: {exc}")
            return
        self.report.cloud_init_errors = [str(e) for e in errors]
        if errors:
            self.report.fail(f"{RESULT_JSON} lists {len(errors)} error(s)")

    def _apply_facts(self, facts: str) -> None:
        values: dict[str, list[str]] = {}
        for line in facts.splitlines():
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value.strip())
        report = self.report
        try:
            report.root_fs_bytes = int(values.get("root_fs", ["x"])[0])
            report.root_disk_bytes = int(values.get("root_disk", ["x"])[0])
        except ValueError:
            report.fail(f"could not read the root filesystem and disk sizes: {facts!r}")
        report.routes = [v for v in values.get("route", []) if v]
        report.dns_servers = [v for v in " ".join(values.get("dns", [])).split() if v]
        if report.root_fs_bytes and report.root_disk_bytes \
                and report.root_fs_bytes < GROWN_SHARE * report.root_disk_bytes:
            report.fail(f"the root filesystem did not grow: {report.root_fs_bytes} bytes on a "
                        f"{report.root_disk_bytes}-byte disk")
        net = self.vm.network_config
        if str(net.ip.ip) not in report.addresses:
            report.fail(f"static address {net.ip} not applied (guest has: "
                        f"{', '.join(report.addresses) or 'none'})")
        if net.gateway and not any(f"via {net.gateway} " in f"{r} " for r in report.routes):
            report.fail(f"default route via {net.gateway} not applied (routes: {report.routes})")
        missing_dns = [d for d in net.dns if d not in report.dns_servers]
        if missing_dns:
            report.fail(f"DNS server(s) {', '.join(missing_dns)} not applied "
                        f"(guest uses: {', '.join(report.dns_servers) or 'none'})")


# One SSH round trip for every fact; `key=value` lines so parsing is trivial.
FACTS_SCRIPT = r"""
root_source=$(findmnt -no SOURCE /)
echo "root_fs=$(df -B1 --output=size / | tail -n 1 | tr -d ' ')"
disk=$(lsblk -no PKNAME "$root_source" | head -n 1)
echo "root_disk=$(lsblk -bdno SIZE "/dev/${disk:-$(basename "$root_source")}")"
ip -4 route show default | sed 's/^/route=/'
if command -v resolvectl >/dev/null 2>&1; then
    resolvectl dns 2>/dev/null | sed -n 's/^[^:]*: *//p' | tr ' ' '\n' | sed '/^$/d;s/^/dns=/'
else
    sed -n 's/^nameserver */dns=/p' /etc/resolv.conf
fi
"""


# Where the first boot's time went, in the guest's own words: the kernel/initrd/userspace split,
# then the chains of units that held up the agent and cloud-init's last stage (each unit with the
# time it became active, "@", and how long it took to start, "+"). Read-only; any user may run it.
# critical-chain refuses while the boot has jobs left ("Bootup is not yet finished"), so it waits
# (bounded) for the boot to settle first.
BOOT_TIMING_SCRIPT = r"""
for _ in $(seq 1 30); do
    systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$' && break
    sleep 1
done
systemd-analyze time 2>&1 | head -n 2
for unit in qemu-guest-agent.service cloud-final.service; do
    echo "critical chain to $unit:"
    systemd-analyze critical-chain --no-pager "$unit" 2>&1 | sed -n '3,40p'
done
echo "cloud-init's slowest steps (cloud-init analyze blame):"
{ sudo -n cloud-init analyze blame 2>/dev/null || cloud-init analyze blame 2>&1; } \
    | sed -n '/^ *[0-9]/p' | head -n 12
"""


def _elapsed_log(log: Log, started: Callable[[], float]) -> Log:
    return lambda message: log(f"[{time.monotonic() - started():6.1f} s] {message}")


@contextmanager
def booted(
    vm: VmConfig,
    image: BootImage,
    *,
    log: Log = print,
    user_data: str | None = None,
    accel: str = "auto",
    disk_size_gb: int | None = None,
    timeout_s: float | None = None,
    workdir: Path | None = None,
    data_disk_files: Sequence[Path] | None = None,
    meta_data: str | None = None,
) -> Iterator[LocalBoot]:
    """Boot the VM's first boot and wait for readiness; yields even when readiness failed
    (`readiness_error` says why), so callers can inspect a broken guest. Always cleans up.

    The disk is a sparse overlay of `disk_size_gb` (default: the VM's `disk_gb`).
    `user_data` replaces the rendered user-data (for experiments such as the original plan's);
    network-config is always the VM's own, and so is meta-data unless `meta_data` is given (a
    new instance-id: what a rebuilt VM's first boot sees).
    The VM's data disks are `data_disk_files` (qcow2, in the order of `data_disks`; the caller
    keeps them, e.g. across a "rebuild"), or blank throwaway ones.
    """
    key = make_run_key()
    seed = render_seed(vm, extra_keys=[key.public_line])
    net = vm.network_config
    boot_started = [time.monotonic()]
    timed_log = _elapsed_log(log, lambda: boot_started[0])
    guest_box: dict[str, QgaSocketTransport] = {}

    def agent_shutdown(_socket: Path, timeout: float) -> None:
        guest_box["transport"].shutdown(timeout_s=timeout)

    with tempfile.TemporaryDirectory(prefix="phoenix-seed-") as seed_dir:
        iso = make_seed_iso(Path(seed_dir) / "seed.iso",
                            user_data=seed.user_data if user_data is None else user_data,
                            meta_data=seed.meta_data if meta_data is None else meta_data,
                            network_config=seed.network_config)
        if data_disk_files is None:
            data_disk_files = [Path(seed_dir) / f"data-{disk.name}.qcow2" for disk in vm.data_disks]
            for disk, path in zip(vm.data_disks, data_disk_files, strict=True):
                create_data_disk(path, disk.size_gb)
        if len(data_disk_files) != len(vm.data_disks):
            raise LocalBootError(f"{vm.label} has {len(vm.data_disks)} data disk(s), "
                                 f"{len(data_disk_files)} file(s) given")
        spec = BootSpec(
            name=f"vm{vm.vmid}", disk=image.disk, seed_iso=iso, mac_address=net.mac_address,
            guest_ip=net.ip, gateway=net.gateway, dns=net.dns, kernel=image.kernel,
            initrd=image.initrd, append=image.append, disk_size_gb=disk_size_gb or vm.disk_gb,
            memory_mb=max(vm.memory_mb, 1024), cpus=2, accel=accel,
            data_disks=tuple((Path(f), d.serial) for f, d in zip(data_disk_files, vm.data_disks, strict=True)),
        )
        guest = QemuGuest(spec, log=timed_log, agent_shutdown=agent_shutdown, workdir=workdir)
        with guest:
            boot_started[0] = guest.started_at
            transport = QgaSocketTransport(str(guest.qga_socket), is_running=guest.running,
                                           name=f"local guest {vm.name}")
            guest_box["transport"] = transport
            report = BootReport(vm=vm.label, image=image.label, accelerator=guest.accel,
                                ssh_port=guest.ssh_port)
            boot = LocalBoot(vm, guest, transport, key, report, timed_log)
            try:
                _wait(boot, timeout_s or float(vm.guest_agent.timeout_s))
                yield boot
            finally:
                if not report.passed:
                    report.console_tail = guest.console_tail()
                # guest.__exit__ shuts down through this transport, then it is closed.
                guest.close()
                transport.close()


def _wait(boot: LocalBoot, timeout_s: float) -> None:
    wait_started = time.monotonic()
    offset = wait_started - boot.guest.started_at
    try:
        ready = wait_for_ready(boot.transport, timeout_s=timeout_s, log=boot.log,
                               first_boot_hint=first_boot_hint(boot.vm))
    except ReadinessError as exc:
        if exc.stage != "cloud-init":
            # Nothing in the guest could be read through the agent; its console still tells.
            message = exc.message + console_causes(boot.guest.console_text())
            if not boot.guest.running() and boot.guest.process is not None:
                output = boot.guest.qemu_output().strip()[-1000:] or "(no output)"
                message += (f"\nqemu itself exited with code {boot.guest.process.returncode}; "
                            f"its output: {output}")
            exc = ReadinessError(exc.stage, message, elapsed_s=exc.elapsed_s,
                                 seconds_to_agent=exc.seconds_to_agent)
        boot.readiness_error = exc
        if exc.seconds_to_agent is not None:
            boot.report.seconds_to_agent = round(exc.seconds_to_agent + offset, 1)
        if exc.stage == "cloud-init" and "`cloud-init status` exit 1" in exc.message:
            boot.report.cloud_init_status = "error"
        boot.report.fail(f"readiness failed at stage {exc.stage!r}: {exc.message}")
        return
    boot.ready = ready
    report = boot.report
    report.seconds_to_agent = round(ready.seconds_to_agent + offset, 1)
    if ready.seconds_to_cloud_init is not None:
        report.seconds_to_cloud_init_done = round(ready.seconds_to_cloud_init + offset, 1)
    report.cloud_init_status = ready.cloud_init_status
    report.addresses = list(ready.ipv4_addresses)
    if ready.cloud_init_status != "done":
        report.fail(f"cloud-init finished {ready.cloud_init_status}: "
                    + "; ".join(ready.warnings))
    if not ready.ssh_host_keys:
        report.fail("no SSH host keys could be read through the agent (nothing to pin)")


def console_causes(console: str) -> str:
    """The serial-console lines that name why first boot failed, as a message section."""
    causes = cause_lines(console)
    if not causes:
        return ("\nThe guest's serial console names no apt, network or cloud-init error "
                "(its last lines are in the report).")
    return "\nThe guest's serial console says:\n" + "\n".join(f"  {line}" for line in causes)


def boot_vm(vm: VmConfig, image: BootImage, *, log: Log = print, accel: str = "auto",
            disk_size_gb: int | None = None, timeout_s: float | None = None) -> BootReport:
    """The whole local first boot of one VM; the report says what passed and what did not."""
    with booted(vm, image, log=log, accel=accel, disk_size_gb=disk_size_gb,
                timeout_s=timeout_s) as boot:
        if boot.ready is not None:
            boot.collect_facts()
            if boot.report.seconds_to_ssh is not None:
                boot.run_features()
        return boot.report
