"""The rules of `data_disks` (docs/data.md): what a data disk may be called, where it may be
mounted, and which vmid holds it. Each check returns (field, message) pairs, so the loader
reports them with every other problem of the file, before anything is created."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from phoenix.config.model import DATA_VMID_OFFSET, DataDiskConfig

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$")
# Characters a mount point may have: it goes into /etc/fstab (whitespace separates fields there)
# and is passed to the guest's script as an argument, never pasted into code.
_MOUNT = re.compile(r"^/[A-Za-z0-9._/@+-]+$")
FILESYSTEMS = ("ext4", "xfs")
MAX_VMID = 999999999
# The tag of every data holder VM (with its name, <VM name>-data, how doctor and `phoenix data`
# recognise the holders this program made).
HOLDER_TAG = "phoenix-data"

# Mounting over these hides what the system needs to boot or to be managed: the whole subtree is
# off limits (a data disk at /usr/local would be mounted after /usr's programs ran, and /etc, /boot
# are read before bootcmd).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                "/run", "/sbin", "/sys", "/usr", "/var/lib/dpkg", "/var/lib/apt", "/var/lib/cloud",
                "/var/lib/systemd", "/var/log")
# These exact directories hold the system's own state or the user's login (SSH keys): a disk may
# be mounted below them (/var/lib/docker, /home/app/data), not on them.
SYSTEM_DIRS = ("/", "/home", "/root", "/tmp", "/var", "/var/lib", "/var/cache", "/var/tmp", "/opt", "/srv",
               "/mnt", "/media")


def mount_problem(mount: str) -> str | None:
    if not mount.startswith("/"):
        return f"{mount!r} is not an absolute path (e.g. /srv/data)"
    if mount in SYSTEM_DIRS:
        return (f"{mount!r} would hide the system's own files: mount below it "
                "(e.g. /var/lib/docker, /srv/data)")
    if not _MOUNT.match(mount):
        return f"{mount!r} may contain only letters, digits and . _ / @ + - (no spaces)"
    parts = mount.split("/")
    if ".." in parts or "." in parts or "" in parts[1:]:
        return f"{mount!r} is not a plain path: no '.', '..', '//' or trailing '/'"
    if mount in SYSTEM_DIRS:
        return (f"{mount!r} would hide the system's own files: mount below it "
                "(e.g. /var/lib/docker, /srv/data)")
    for tree in SYSTEM_TREES:
        if mount == tree or mount.startswith(tree + "/"):
            return f"{mount!r} is inside {tree}, which the system needs before data disks are mounted"
    return None


def parse_data_disks(raw: Any, vm_storage: str) -> tuple[tuple[DataDiskConfig, ...], list[tuple[str, str]]]:
    """`data_disks` of one VM (already of the schema's types) -> disks and (field, message) problems."""
    disks: list[DataDiskConfig] = []
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, list):
        return (), problems
    names: dict[str, int] = {}
    mounts: dict[str, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        field = f"data_disks[{i}]"
        before = len(problems)
        name, size, mount = item.get("name"), item.get("size_gb"), item.get("mount")
        filesystem = item.get("filesystem", "ext4")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append((f"{field}.name", f"{name!r} is not a data disk name: 1-16 of a-z, 0-9 "
                             "and '-', not starting or ending with '-' (the disk's serial is phx-<name>)"))
        elif name in names:
            problems.append((f"{field}.name", f"{name!r} is already the name of data_disks[{names[name]}]"))
        else:
            names[name] = i
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            problems.append((f"{field}.size_gb", f"{size!r} is not a size: a whole number of GiB, at least 1"))
        elif size > 131072:
            problems.append((f"{field}.size_gb", f"{size} GiB is more than 128 TiB"))
        if isinstance(mount, str):
            message = mount_problem(mount)
            if message:
                problems.append((f"{field}.mount", message))
            elif mount in mounts:
                problems.append((f"{field}.mount", f"{mount!r} is already the mount of data_disks[{mounts[mount]}]"))
            else:
                for other, j in mounts.items():
                    if mount.startswith(other + "/") or other.startswith(mount + "/"):
                        problems.append((f"{field}.mount", f"{mount!r} and data_disks[{j}].mount {other!r} "
                                         "are nested: give each disk its own directory"))
                mounts[mount] = i
        if filesystem not in FILESYSTEMS:
            problems.append((f"{field}.filesystem", f"{filesystem!r} is not one of {', '.join(FILESYSTEMS)}"))
        if len(problems) == before:
            disks.append(DataDiskConfig(name=name, size_gb=size, mount=mount,
                                        storage=item.get("storage", vm_storage), filesystem=filesystem))
    if len(raw) > 29:
        problems.append(("data_disks", f"{len(raw)} data disks: at most 29 (scsi1..scsi30 of the VM)"))
    return tuple(disks), problems


def holder_vmid(vm: dict[str, Any]) -> int | None:
    """The holder vmid of a merged VM entry, or None (no data disks, or no usable vmid)."""
    if not vm.get("data_disks") or not isinstance(vm.get("vmid"), int):
        return None
    override = vm.get("data_vmid")
    return override if isinstance(override, int) else vm["vmid"] + DATA_VMID_OFFSET


def holder_vmid_problems(vms: Iterable[tuple[int, dict[str, Any], str]],
                         template_vmids: dict[int, str]) -> list[tuple[str, str, str]]:
    """(where, field, message) for every holder vmid that collides with a VM, a template (of the
    file, or named in clone_from), another holder, or is out of PVE's range."""
    vms = list(vms)
    taken: dict[int, str] = dict(template_vmids)
    for _, vm, label in vms:
        if isinstance(vm.get("vmid"), int):
            taken.setdefault(vm["vmid"], label)
        if isinstance(vm.get("clone_from"), int):
            taken.setdefault(vm["clone_from"], f"the template {vm['clone_from']} that {label} clones")
    problems = []
    holders: dict[int, str] = {}
    for _, vm, label in vms:
        hv = holder_vmid(vm)
        if hv is None:
            continue
        field = "data_vmid" if isinstance(vm.get("data_vmid"), int) else "vmid"
        how = "data_vmid" if field == "data_vmid" else f"vmid + {DATA_VMID_OFFSET}"
        if hv > MAX_VMID:
            problems.append((label, field, f"the holder of the data disks would get vmid {hv} ({how}), "
                             f"above PVE's {MAX_VMID}: set data_vmid"))
        elif hv in taken:
            problems.append((label, field, f"the holder of the data disks gets vmid {hv} ({how}), "
                             f"which is already used by {taken[hv]}: set data_vmid to a free vmid"))
        elif hv in holders:
            problems.append((label, field, f"the holder of the data disks gets vmid {hv} ({how}), "
                             f"which already holds the data disks of {holders[hv]}"))
        else:
            holders[hv] = label
    return problems
