"""A template's bake, locally: the same bake seed the Proxmox node uses, on a local disk image.

    bake_image(template, image, output)  ->  BakeReport

The image is never written: the guest runs on a copy-on-write overlay; when it has sealed
itself and powered off, the overlay is flattened into `output` (written beside it and renamed
in one step, so a failed or interrupted bake never leaves a half-made baked image). Progress is
reported by stage from the sealing step's console lines (`phoenix-bake: ...`), like readiness.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from phoenix.cloudinit import render_bake_meta_data, render_bake_user_data
from phoenix.config.model import TemplateConfig
from phoenix.localboot.qemu import BootSpec, QemuError, QemuGuest
from phoenix.localboot.run import BootImage
from phoenix.localboot.seed import make_seed_iso

Log = Callable[[str], None]
BAKE_MAC = "52:54:00:ba:ce:01"
BAKE_IP = ipaddress.IPv4Interface("10.0.2.15/24")
BAKE_GATEWAY = ipaddress.IPv4Address("10.0.2.2")
BAKE_DNS = "10.0.2.3"
MARK = "phoenix-bake: "
POLL_S = 1.0
STAGES = ("boot", "cloud-init", "sealing", "power-off")


class BakeError(RuntimeError):
    """The bake did not produce a sealed image; `stage` says how far it got."""

    def __init__(self, stage: str, message: str, console_tail: str = "") -> None:
        text = f"[stage: {stage}] {message}"
        if console_tail:
            text += "\n--- console (last lines) ---\n" + console_tail
        super().__init__(text)
        self.stage = stage
        self.message = message


@dataclass
class BakeReport:
    template: str
    image: str
    output: str
    accelerator: str = ""
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds when reached


def bake_network_config() -> str:
    """Static address on qemu's user network (what the SSH forward of BootSpec targets)."""
    return yaml.safe_dump({"version": 2, "ethernets": {"eth0": {
        "match": {"macaddress": BAKE_MAC}, "set-name": "eth0",
        "addresses": [BAKE_IP.with_prefixlen],
        "routes": [{"to": "0.0.0.0/0", "via": str(BAKE_GATEWAY)}],
        "nameservers": {"addresses": [BAKE_DNS]},
    }}}, sort_keys=False)


def _bake_lines(console: str) -> list[str]:
    return [line.split(MARK, 1)[1].strip() for line in console.splitlines() if MARK in line]


def stage_of(lines: list[str]) -> str:
    """How far the bake got, from the sealing step's console lines."""
    if not lines:
        return "cloud-init"
    last = lines[-1]
    if last.startswith("sealed"):
        return "power-off"
    if last.startswith("sealing"):
        return "sealing"
    return "cloud-init"


def _milestone(line: str) -> str:
    """The report's name for a sealing-step line (the step starts once cloud-final ended)."""
    if line.startswith("waiting for cloud-init"):
        return "cloud-init finished"
    return "failed" if line.startswith("failed") else stage_of([line])


def flatten(overlay: Path, output: Path) -> None:
    """Write the overlay and its backing chain as one compressed qcow2, atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    done = subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", str(overlay), str(partial)],
                          check=False, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BakeError("power-off", f"qemu-img convert failed: {done.stderr.strip()}")
    partial.replace(output)


def bake_image(template: TemplateConfig, image: BootImage, output: Path, *, log: Log = print,
               accel: str = "auto", timeout_s: float | None = None) -> BakeReport:
    """Boot `image` once with the template's bake seed; write the sealed disk to `output`."""
    timeout = float(timeout_s or template.bake_timeout_s)
    report = BakeReport(template=template.label, image=image.label, output=str(output))
    node = template.nodes[0]
    with tempfile.TemporaryDirectory(prefix="phoenix-bake-") as tmp:
        iso = make_seed_iso(Path(tmp) / "seed.iso", user_data=render_bake_user_data(template),
                            meta_data=render_bake_meta_data(template, node),
                            network_config=bake_network_config())
        spec = BootSpec(
            name=f"bake{template.vmid}", disk=image.disk, seed_iso=iso, mac_address=BAKE_MAC,
            guest_ip=BAKE_IP, gateway=BAKE_GATEWAY, dns=(BAKE_DNS,), kernel=image.kernel,
            initrd=image.initrd, append=image.append, disk_size_gb=template.disk_gb,
            memory_mb=max(template.memory_mb, 1024), cpus=2, accel=accel,
        )
        # Our own work directory: QemuGuest removes only the overlay and socket from it, after
        # the flattened copy has been written.
        with QemuGuest(spec, log=log, workdir=Path(tmp) / "guest") as guest:
            report.accelerator = guest.accel
            report.stages["boot"] = 0.0
            seen: list[str] = []
            deadline = guest.started_at + timeout
            while guest.running():
                if time.monotonic() > deadline:
                    stage = stage_of(seen)
                    raise BakeError(stage, f"no power-off within {timeout:.0f} s (still at stage "
                                    f"{stage!r})", guest.console_tail())
                lines = _bake_lines(_read(guest.serial_log))
                for line in lines[len(seen):]:
                    log(f"[{time.monotonic() - guest.started_at:6.1f} s] bake: {line}")
                    report.stages.setdefault(_milestone(line),
                                             round(time.monotonic() - guest.started_at, 1))
                    if line.startswith("failed"):
                        raise BakeError(stage_of(seen) if seen else "cloud-init", line,
                                        guest.console_tail())
                seen = lines
                time.sleep(POLL_S)
            report.seconds = round(time.monotonic() - guest.started_at, 1)
            lines = _bake_lines(_read(guest.serial_log))
            if not lines or not lines[-1].startswith("sealed"):
                raise BakeError(stage_of(lines), "the guest powered off without sealing itself "
                                "(no 'phoenix-bake: sealed' on the console)", guest.console_tail())
            log(f"bake: sealed and powered off after {report.seconds:.0f} s; writing {output}")
            flatten(guest.overlay, output)
    _copy_boot_files(image, output)
    return report


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _copy_boot_files(image: BootImage, output: Path) -> None:
    """An image without bootloader boots with its kernel/initrd: keep them beside the output."""
    for source, suffix in ((image.kernel, ".vmlinuz"), (image.initrd, ".initrd.img")):
        if source is not None:
            shutil.copyfile(source, output.with_name(output.stem + suffix))


def boot_command(image: BootImage, output: Path) -> str:
    """How to boot a VM from the baked image with `python -m phoenix boot`."""
    command = f"python -m phoenix boot VMID --image {output}"
    if image.kernel is not None:
        command += (f" --kernel {output.with_name(output.stem + '.vmlinuz')}"
                    f" --initrd {output.with_name(output.stem + '.initrd.img')}"
                    f" --append '{image.append}'")
    return command


__all__ = ["BakeError", "BakeReport", "QemuError", "bake_image", "boot_command", "flatten",
           "stage_of"]
