"""What a local first boot showed: timings, cloud-init's verdict, features, disk, addresses.

The report passes only when nothing failed; every failure is a sentence that says what was
expected and what was found, so the terminal output alone explains a red run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class FeatureOutcome:
    name: str
    ok: bool
    changed: bool | None = None  # None when the feature did not say
    detail: str = ""


@dataclass
class BootReport:
    vm: str  # the VM's label: index, vmid, name
    image: str
    accelerator: str
    ssh_port: int = 0
    seconds_to_agent: float | None = None
    seconds_to_ssh: float | None = None
    seconds_to_cloud_init_done: float | None = None
    cloud_init_status: str | None = None
    cloud_init_errors: list[str] = field(default_factory=list)
    features: list[FeatureOutcome] = field(default_factory=list)
    root_fs_bytes: int | None = None
    root_disk_bytes: int | None = None  # the virtual disk the guest was given
    addresses: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    dns_servers: list[str] = field(default_factory=list)
    # Where the boot's time went, as the guest's systemd tells it (`systemd-analyze time`, the
    # critical chains to the guest agent and to cloud-init's last stage): phoenix.localboot.run.
    boot_timing: str = ""
    failures: list[str] = field(default_factory=list)
    console_tail: str = ""  # the guest's last console lines, kept only when something failed

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def to_json(self) -> str:
        data = asdict(self)
        data["passed"] = self.passed
        return json.dumps(data, indent=2)

    def render_text(self) -> str:
        def seconds(value: float | None) -> str:
            return f"{value:.1f} s" if value is not None else "-"

        def size(value: int | None) -> str:
            return f"{value / 1024**3:.2f} GiB" if value is not None else "-"

        lines = [
            f"local boot of {self.vm}",
            f"  image              {self.image} ({self.accelerator})",
            f"  guest agent after  {seconds(self.seconds_to_agent)}",
            f"  SSH after          {seconds(self.seconds_to_ssh)}",
            f"  cloud-init done    {seconds(self.seconds_to_cloud_init_done)}",
            f"  cloud-init status  {self.cloud_init_status or '-'}",
        ]
        lines += [f"    error: {error}" for error in self.cloud_init_errors]
        lines.append(f"  root filesystem    {size(self.root_fs_bytes)} "
                     f"(disk {size(self.root_disk_bytes)})")
        lines.append(f"  addresses          {', '.join(self.addresses) or '-'}")
        lines.append(f"  routes             {'; '.join(self.routes) or '-'}")
        lines.append(f"  DNS servers        {', '.join(self.dns_servers) or '-'}")
        if self.features:
            lines.append("  features")
            for feature in self.features:
                state = "ok" if feature.ok else "FAILED"
                changed = {True: ", changed", False: ", unchanged", None: ""}[feature.changed]
                detail = f": {feature.detail}" if feature.detail else ""
                lines.append(f"    {feature.name:<16} {state}{changed}{detail}")
        if self.boot_timing:
            lines.append("  boot timing (the guest's systemd-analyze)")
            lines += [f"    {line}" for line in self.boot_timing.splitlines()]
        if self.failures:
            lines.append("FAILED:")
            lines += [f"  - {failure}" for failure in self.failures]
            if self.console_tail:
                lines.append("  last console lines:")
                lines += [f"    | {line}" for line in self.console_tail.splitlines()]
        else:
            lines.append("PASSED")
        return "\n".join(lines)
