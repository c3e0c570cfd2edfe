"""The NoCloud seed: an ISO 9660 volume labelled ``cidata`` holding the three cloud-init files.

This is what Proxmox's cloud-init drive is as well (a ``cidata`` ISO), so the guest sees the same
datasource locally as on the hypervisor.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class SeedError(RuntimeError):
    pass


def make_seed_iso(
    target: Path, *, user_data: str, meta_data: str, network_config: str | None = None
) -> Path:
    """Write a NoCloud seed ISO at ``target`` and return its path."""
    tool = shutil.which("genisoimage") or shutil.which("mkisofs")
    if tool is None:
        raise SeedError("genisoimage not found: install the Debian package 'genisoimage'")
    with tempfile.TemporaryDirectory(prefix="phoenix-seed-") as staging:
        files = {"user-data": user_data, "meta-data": meta_data}
        if network_config is not None:
            files["network-config"] = network_config
        for name, text in files.items():
            (Path(staging) / name).write_text(text)
        argv = [tool, "-quiet", "-output", str(target), "-volid", "cidata", "-joliet", "-rock",
                *sorted(files)]
        done = subprocess.run(argv, cwd=staging, check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SeedError(f"{Path(tool).name} failed (rc {done.returncode}): {done.stderr.strip()}")
    return target


# The Stage 1 user-data of the original plan (VM Creation Optimization and Mitigation Plan),
# verbatim: what the real-boot tests and the boot benchmark compare the rendered seeds against.
SEED_USER_DATA = """\
#cloud-config
package_update: true
packages:
  - qemu-guest-agent
growpart:
  mode: auto
  devices: ['/']
runcmd:
  - [ resize2fs, /dev/sda1 ] # Note: This will be corrected to a safe version
  - [ systemctl, enable, --now, qemu-guest-agent ]
"""
