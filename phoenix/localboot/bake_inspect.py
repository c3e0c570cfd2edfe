"""Look inside a baked image without booting it: is it a clean template?

Read with e2fsprogs' `debugfs` on a raw copy (no loop device, no mount, no root needed for the
read itself). The facts are what a template must be: the agent installed and started by the
system (an enabled unit, or a static one started by udev), and nothing of the bake boot's
identity left: no machine-id, no SSH host keys, no cloud-init instance state or logs, no apt lists.
And the first-boot trims the sealing step writes (cloud_init/bake-seal.sh): the agent starts with
its virtio port (not after cloud-init's network stage), cloud-init's datasource list, apt's daily
timers without catch-up at boot.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

AGENT_UNIT = "qemu-guest-agent.service"
EARLY_AGENT_DROP_IN = f"/etc/systemd/system/{AGENT_UNIT}.d/10-phoenix-early.conf"
DATASOURCE_FILE = "/etc/cloud/cloud.cfg.d/90-phoenix-datasource.cfg"
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


class InspectError(RuntimeError):
    pass


@dataclass(frozen=True)
class BakedImageFacts:
    agent_installed: bool
    agent_start: str  # "enabled", "static-udev" (Debian/Ubuntu), or "not started"
    machine_id: str  # content of /etc/machine-id ("" = a new one at first boot)
    ssh_host_keys: tuple[str, ...]
    cloud_init_state: tuple[str, ...]  # entries under /var/lib/cloud (instance state)
    cloud_init_logs: tuple[str, ...]
    apt_lists: tuple[str, ...]
    network_config: tuple[str, ...] = ()  # cloud-init's rendered network files of the bake VM
    agent_early: bool = True  # the early-start drop-in (DefaultDependencies=no) is in place
    datasource_list: str = "(not inspected)"  # the datasource_list line the bake wrote, or ""
    apt_timers_without_catch_up: tuple[str, ...] = ()
    apt_timers_with_catch_up: tuple[str, ...] = ()  # present in the image, no drop-in

    @property
    def problems(self) -> list[str]:
        out = []
        if not self.agent_installed:
            out.append("qemu-guest-agent is not installed")
        if self.agent_start == "not started":
            out.append("qemu-guest-agent is neither enabled nor started by udev")
        if self.machine_id not in ("", "uninitialized"):
            out.append(f"/etc/machine-id is set ({self.machine_id[:8]}...)")
        if self.ssh_host_keys:
            out.append(f"SSH host keys left: {', '.join(self.ssh_host_keys)}")
        if self.cloud_init_state:
            out.append(f"cloud-init instance state left: {', '.join(self.cloud_init_state)}")
        if self.cloud_init_logs:
            out.append(f"cloud-init logs left: {', '.join(self.cloud_init_logs)}")
        if self.network_config:
            out.append(f"the bake VM's network config left: {', '.join(self.network_config)}")
        if self.apt_lists:
            out.append(f"{len(self.apt_lists)} apt list(s) left")
        if not self.agent_early:
            out.append(f"no {EARLY_AGENT_DROP_IN}: the agent would wait for cloud-init's "
                       "network stage at every clone's first boot")
        if not self.datasource_list:
            out.append(f"no datasource_list in {DATASOURCE_FILE}")
        if self.apt_timers_with_catch_up:
            out.append(f"apt timers would catch up at first boot: "
                       f"{', '.join(self.apt_timers_with_catch_up)}")
        return out


class _Fs:
    def __init__(self, raw: Path, offset: int) -> None:
        self.spec = f"{raw}?offset={offset}"

    def run(self, request: str) -> str:
        done = subprocess.run(["debugfs", "-R", request, self.spec], capture_output=True,
                              text=True, errors="replace", check=False, timeout=120)
        if done.returncode != 0:
            raise InspectError(f"debugfs {request!r} failed: {done.stderr.strip()}")
        return done.stdout

    def names(self, directory: str) -> tuple[str, ...]:
        out = self.run(f"ls -p {directory}")
        names = [line.split("/")[5] for line in out.splitlines() if line.count("/") >= 6]
        return tuple(n for n in names if n not in (".", ".."))

    def exists(self, path: str) -> bool:
        done = subprocess.run(["debugfs", "-R", f"stat {path}", self.spec], capture_output=True,
                              text=True, errors="replace", check=False, timeout=120)
        return done.returncode == 0 and "File not found" not in done.stderr

    def cat(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        done = subprocess.run(["debugfs", "-R", f"cat {path}", self.spec], capture_output=True,
                              text=True, errors="replace", check=False, timeout=120)
        return done.stdout


def _root_partition_offset(raw: Path) -> int:
    done = subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True,
                          check=False, timeout=60)
    if done.returncode != 0:
        return 0  # a bare filesystem image
    table = json.loads(done.stdout)["partitiontable"]
    parts = table.get("partitions") or []
    if not parts:
        return 0
    biggest = max(parts, key=lambda p: p["size"])
    return int(biggest["start"]) * int(table.get("sectorsize", 512))


def inspect_baked_image(image: Path) -> BakedImageFacts:
    """The facts of a baked image (qcow2 or raw) with one ext4 root partition."""
    with tempfile.TemporaryDirectory(prefix="phoenix-inspect-") as tmp:
        raw = Path(tmp) / "disk.raw"
        done = subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)],
                              capture_output=True, text=True, check=False, timeout=1800)
        if done.returncode != 0:
            raise InspectError(f"qemu-img convert failed: {done.stderr.strip()}")
        fs = _Fs(raw, _root_partition_offset(raw))
        status = fs.cat("/var/lib/dpkg/status") or ""
        agent_installed = bool(re.search(
            r"^Package: qemu-guest-agent\nStatus: install ok installed$", status, re.M))
        wants = [d for d in fs.names("/etc/systemd/system") if d.endswith(".wants")]
        # a listing of a missing directory is empty: names() never fails on absence
        enabled = any(AGENT_UNIT in fs.names(f"/etc/systemd/system/{d}") for d in wants)
        unit = (fs.cat(f"/lib/systemd/system/{AGENT_UNIT}") or fs.cat(f"/usr/lib/systemd/system/{AGENT_UNIT}")
                or "")
        udev = any("qemu-guest-agent" in n for n in fs.names("/lib/udev/rules.d"))
        if enabled:
            start = "enabled"
        elif udev and unit and "WantedBy" not in unit:
            start = "static-udev"
        else:
            start = "not started"
        machine_id = (fs.cat("/etc/machine-id") or "").strip()
        keys = tuple(n for n in fs.names("/etc/ssh") if n.startswith("ssh_host_"))
        cloud = fs.names("/var/lib/cloud") if fs.exists("/var/lib/cloud") else ()
        state = tuple(n for n in cloud if n in ("instance", "instances", "data", "sem"))
        logs = tuple(n for n in fs.names("/var/log") if n.startswith("cloud-init"))
        lists = tuple(n for n in fs.names("/var/lib/apt/lists") if n not in ("partial", "lock"))
        network = tuple(
            [f"/etc/systemd/network/{n}" for n in fs.names("/etc/systemd/network")
             if n.startswith("10-cloud-init")]
            + [path for path in ("/etc/netplan/50-cloud-init.yaml",
                                 "/etc/network/interfaces.d/50-cloud-init",
                                 "/etc/network/interfaces.d/50-cloud-init.cfg") if fs.exists(path)])
        early = fs.cat(EARLY_AGENT_DROP_IN) or ""
        datasource = next((line.strip() for line in (fs.cat(DATASOURCE_FILE) or "").splitlines()
                           if line.startswith("datasource_list:")), "")
        present = [t for t in APT_TIMERS if fs.exists(f"/lib/systemd/system/{t}")
                   or fs.exists(f"/usr/lib/systemd/system/{t}")]
        trimmed = tuple(t for t in present if "Persistent=false" in
                        (fs.cat(f"/etc/systemd/system/{t}.d/10-phoenix.conf") or ""))
        return BakedImageFacts(
            agent_installed, start, machine_id, keys, state, logs, lists, network,
            agent_early=bool(re.search(r"^DefaultDependencies=no$", early, re.M)),
            datasource_list=datasource, apt_timers_without_catch_up=trimmed,
            apt_timers_with_catch_up=tuple(t for t in present if t not in trimmed))
