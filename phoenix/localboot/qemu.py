"""One qemu guest as a context manager: overlay disk, seed, user networking, guest-agent socket.

The guest gets exactly what Proxmox gives a VM: a virtio disk (here a throwaway overlay larger
than the image, so growpart has work to do), a ``cidata`` seed drive, a virtio NIC with the MAC
the network-config matches on, and the guest-agent virtio-serial port whose host end is the
same unix socket Proxmox's ``agent/*`` API talks to.

Cleanup always runs (normal exit, exception, Ctrl-C, SIGTERM): shut the guest down through the
agent, then terminate, then kill; reap; remove the overlay and sockets. qemu runs in its own
session so a terminal Ctrl-C reaches only us (and we shut down in order) and is killed by the
kernel if we die without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

Log = Callable[[str], None]

# qemu's user network (slirp) defaults: what a guest on "-netdev user" sees without options.
USER_NET = ipaddress.IPv4Network("10.0.2.0/24")


class QemuError(RuntimeError):
    pass


@dataclass(frozen=True)
class BootSpec:
    """What to boot and how; everything the qemu command line is built from."""

    name: str
    disk: Path  # the image: backing file of the per-run overlay, never written
    seed_iso: Path
    mac_address: str
    guest_ip: ipaddress.IPv4Interface  # the VM's static address: target of the SSH forward
    gateway: ipaddress.IPv4Address | None = None
    dns: tuple[str, ...] = ()
    kernel: Path | None = None  # direct kernel boot; None boots the disk's own bootloader
    initrd: Path | None = None
    append: str | None = None
    disk_size_gb: int = 6
    memory_mb: int = 2048
    cpus: int = 2
    accel: str = "auto"  # "auto", "tcg" or "kvm"
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    # (image file, serial) per data disk: kept across runs by the caller, never thrown away here;
    # attached as PVE attaches them (scsi-hd on a virtio-scsi controller, with the serial).
    data_disks: tuple[tuple[Path, str], ...] = ()


def real_kvm_available() -> bool:
    """True only for a hardware KVM: the paravirtual nested one here (kvm_pvm) stalls guests."""
    hardware = Path("/sys/module/kvm_intel").exists() or Path("/sys/module/kvm_amd").exists()
    return hardware and os.access("/dev/kvm", os.R_OK | os.W_OK)


def choose_accel(requested: str = "auto") -> str:
    if requested == "auto":
        return "kvm" if real_kvm_available() else "tcg"
    if requested not in ("tcg", "kvm"):
        raise QemuError(f"unknown accelerator {requested!r} (use auto, tcg or kvm)")
    return requested


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 right now (qemu binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def user_net_options(spec: BootSpec) -> list[str]:
    """slirp options that put the VM's own subnet, gateway and DNS on the user network.

    With the default 10.0.2.0/24 nothing is needed; for another subnet slirp is told to use it,
    so the config's static network-config works unchanged.
    """
    network = spec.guest_ip.network
    if network == USER_NET:
        return []
    options = [f"net={network}"]
    if spec.gateway is not None and spec.gateway in network:
        options.append(f"host={spec.gateway}")
    for server in spec.dns:
        try:
            address = ipaddress.IPv4Address(server)
        except ValueError:
            continue
        # slirp answers DNS on its own address only; it must not be the gateway's.
        if address in network and address != spec.gateway:
            options.append(f"dns={address}")
            break
    return options


def qemu_argv(
    spec: BootSpec, *, overlay: Path, ssh_port: int, qga_socket: Path, serial_log: Path,
    accel: str,
) -> list[str]:
    """The complete qemu command line for one boot (pure: unit-tested without qemu)."""
    netdev = ",".join(
        ["user", "id=n0", *user_net_options(spec),
         f"hostfwd=tcp:127.0.0.1:{ssh_port}-{spec.guest_ip.ip}:22"]
    )
    cpu = "host" if accel == "kvm" else "max"
    argv = [
        "qemu-system-x86_64",
        "-name", spec.name,
        # i440fx ("pc"): what Proxmox uses by default, and fewer devices to emulate under TCG.
        "-machine", "pc",
        "-accel", accel,
        "-cpu", cpu,
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        "-display", "none",
        "-monitor", "none",
        "-serial", f"file:{serial_log}",
        # The overlay is thrown away after the run: no need to flush it to disk.
        "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-drive", f"file={spec.seed_iso},if=virtio,format=raw,readonly=on",
        "-netdev", netdev,
        "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac_address}",
        "-chardev", f"socket,path={qga_socket},server=on,wait=off,id=qga0",
        "-device", "virtio-serial",
        "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        # sshd's first-boot host key generation waits for entropy; TCG guests have little.
        "-object", "rng-random,filename=/dev/urandom,id=rng0",
        "-device", "virtio-rng-pci,rng=rng0",
    ]
    if spec.data_disks:
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
    for n, (image, serial) in enumerate(spec.data_disks):
        argv += ["-drive", f"file={image},if=none,id=data{n},format=qcow2,discard=unmap",
                 "-device", f"scsi-hd,bus=scsi0.0,drive=data{n},serial={serial}"]
    if spec.kernel is not None:
        argv += ["-kernel", str(spec.kernel)]
        if spec.initrd is not None:
            argv += ["-initrd", str(spec.initrd)]
        argv += ["-append", spec.append or "root=LABEL=rootfs ro console=ttyS0"]
    return argv + list(spec.extra_args)


def image_info(path: Path) -> dict:
    done = subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                          check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise QemuError(f"{path}: not a disk image qemu can read: {done.stderr.strip()}")
    return json.loads(done.stdout)


def create_data_disk(path: Path, size_gb: int) -> None:
    """A blank, sparse qcow2 data disk (what a new holder volume is to the guest: no signature)."""
    done = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_gb}G"],
                          check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise QemuError(f"qemu-img create failed: {done.stderr.strip()}")


def create_overlay(base: Path, overlay: Path, size_gb: int) -> None:
    """A copy-on-write overlay of ``base``, at least ``size_gb`` and never smaller than base."""
    info = image_info(base)
    size = max(size_gb * 1024**3, int(info.get("virtual-size", 0)))
    done = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", info.get("format", "qcow2"),
         "-b", str(base.resolve()), str(overlay), str(size)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        raise QemuError(f"qemu-img create failed: {done.stderr.strip()}")


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel kills qemu if this Python process dies.
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


ShutdownHook = Callable[[Path, float], None]


class QemuGuest:
    """Context manager: a booted (booting) guest; its ports and sockets as attributes."""

    def __init__(
        self,
        spec: BootSpec,
        *,
        log: Log = print,
        agent_shutdown: ShutdownHook | None = None,
        shutdown_timeout_s: float = 30.0,
        workdir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.log = log
        self.accel = choose_accel(spec.accel)
        self._agent_shutdown = agent_shutdown
        self._shutdown_timeout_s = shutdown_timeout_s
        self._given_workdir = workdir
        self.workdir: Path = Path()
        self.overlay: Path = Path()
        self.qga_socket: Path = Path()
        self.serial_log: Path = Path()
        self.qemu_log: Path = Path()
        self.ssh_port: int = 0
        self.process: subprocess.Popen | None = None
        self.started_at: float = 0.0
        self._old_sigterm: object = None

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> QemuGuest:  # noqa: PYI034 - py3.10 has no typing.Self
        self._trap_sigterm()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _trap_sigterm(self) -> None:
        # SIGTERM would end Python without unwinding; turn it into an exception so the
        # cleanup in __exit__ runs. Only the main thread may install handlers.
        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:
            self._old_sigterm = None

    def _start(self) -> None:
        for tool in ("qemu-system-x86_64", "qemu-img"):
            if shutil.which(tool) is None:
                raise QemuError(f"{tool} not found: install qemu-system-x86 and qemu-utils")
        # Short path: unix socket paths are limited to 108 bytes.
        self.workdir = self._given_workdir or Path(
            tempfile.mkdtemp(prefix=f"phoenix-{self.spec.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.overlay = self.workdir / "disk.qcow2"
        self.qga_socket = self.workdir / "qga.sock"
        self.serial_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        create_overlay(self.spec.disk, self.overlay, self.spec.disk_size_gb)
        for attempt in range(3):
            # The port is free when probed; another process may take it before qemu binds it.
            self.ssh_port = free_local_port()
            argv = qemu_argv(self.spec, overlay=self.overlay, ssh_port=self.ssh_port,
                             qga_socket=self.qga_socket, serial_log=self.serial_log,
                             accel=self.accel)
            self.log(f"qemu: starting {self.spec.name} ({self.accel}, {self.spec.cpus} cpu, "
                     f"{self.spec.memory_mb} MiB, ssh on 127.0.0.1:{self.ssh_port})")
            with open(self.qemu_log, "wb") as out:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe prctl only
                )
            self.started_at = time.monotonic()
            if self._wait_started(timeout_s=20):
                return
            message = self.qemu_output()
            self._reap()
            if "hostfwd" not in message or attempt == 2:
                raise QemuError(f"qemu exited at start: {message.strip()[-800:]}")

    def _wait_started(self, timeout_s: float) -> bool:
        """True once qemu is up (its agent socket exists), False if it exited."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self.qga_socket.exists():
                return True
            time.sleep(0.05)
        raise QemuError(f"qemu did not create {self.qga_socket} within {timeout_s:.0f} s")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def qemu_output(self) -> str:
        try:
            return self.qemu_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_text(self) -> str:
        """Everything the guest wrote to its serial console so far ("" if nothing)."""
        try:
            return self.serial_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 40) -> str:
        return "\n".join(self.console_text().splitlines()[-lines:])

    def close(self) -> None:
        """Stop the guest (agent, then SIGTERM, then SIGKILL), reap it, remove the files."""
        try:
            if self.running():
                self._shutdown()
            self._reap()
        finally:
            if self._given_workdir is None and self.workdir != Path():
                shutil.rmtree(self.workdir, ignore_errors=True)
            elif self.workdir != Path():
                for leftover in (self.overlay, self.qga_socket):
                    leftover.unlink(missing_ok=True)
            if self._old_sigterm is not None:
                try:
                    signal.signal(signal.SIGTERM, self._old_sigterm)  # type: ignore[arg-type]
                except ValueError:
                    pass
                self._old_sigterm = None

    def _shutdown(self) -> None:
        assert self.process is not None
        if self._agent_shutdown is not None:
            try:
                self._agent_shutdown(self.qga_socket, 5.0)
                self.log("qemu: guest-shutdown sent through the agent; waiting for power-off")
                self.process.wait(timeout=self._shutdown_timeout_s)
                self.log("qemu: guest powered off")
                return
            except subprocess.TimeoutExpired:
                self.log(f"qemu: no power-off within {self._shutdown_timeout_s:.0f} s; "
                         "terminating qemu")
            except Exception as exc:  # noqa: BLE001 - any agent failure falls back to SIGTERM
                self.log(f"qemu: agent shutdown failed ({exc}); terminating qemu")
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def _reap(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
