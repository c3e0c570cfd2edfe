"""`python -m phoenix data`: the holders of data disks on the cluster, and the one way this
project deletes data (docs/data.md).

`pulumi destroy`, removing a VM from the file and every rebuild leave a VM's data on PVE (the
holder is `retain_on_delete`). Deleting it is a separate command that asks for the holder's vmid
twice (`data delete VMID --confirm HOLDER_VMID`) and refuses while anything could still need the
data: the VM is still in the config with data disks, the holder is not one this program made
(name `<VM name>-data`, tag `phoenix-data`), it is running, or any VM still attaches one of its
volumes. Credentials as for `doctor` (the stack config, or PROXMOX_VE_* in the environment).
"""

from __future__ import annotations

import argparse
import re
import time

from phoenix.cli_support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, load_stack_and_config, vmid_argument
from phoenix.config import Config
from phoenix.config.data_disks import HOLDER_TAG
from phoenix.config.model import DATA_VMID_OFFSET
from phoenix.doctor.api import ApiError, ApiUnusable, ClusterApi
from phoenix.doctor.cli import DEFAULT_STACK, _credentials
from phoenix.readiness.transport import TransportConfigError

DRIVE_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate|unused)\d+$")
TASK_TIMEOUT_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"the Pulumi stack (default {DEFAULT_STACK})")
    parser.add_argument("--file", help="the VM config file (default: the stack's vmConfigFile)")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="every data holder on the cluster, its volumes and who attaches them")
    delete = sub.add_parser("delete", help="delete a VM's data for good (its holder VM and volumes)")
    delete.add_argument("vmid", type=vmid_argument, help="the vmid of the VM whose data to delete")
    delete.add_argument("--confirm", type=vmid_argument, required=True, metavar="HOLDER_VMID",
                        help="the holder's vmid, typed again (vmid + 100000 unless data_vmid was set)")


def holder_volumes(config: dict) -> list[str]:
    """The volumes a VM config refers to (drives and unused disks), as storage:volume ids."""
    volumes = []
    for key, value in config.items():
        if DRIVE_KEY.match(key):
            volid = str(value).split(",", 1)[0]
            if ":" in volid and "cloudinit" not in volid and "media=cdrom" not in str(value):
                volumes.append(volid)
    return sorted(volumes)


def _users_of(api: ClusterApi, resources: list[dict], volumes: list[str], holder: int) -> list[str]:
    """Every other VM whose config refers to one of `volumes`."""
    users = []
    for res in resources:
        if res.get("type") != "qemu" or int(res.get("vmid", 0)) == holder:
            continue
        config = api.get(f"nodes/{res['node']}/qemu/{res['vmid']}/config") or {}
        shared = sorted(set(holder_volumes(config)) & set(volumes))
        if shared:
            users.append(f"VM {res['vmid']} ({res.get('name', '')}) attaches {', '.join(shared)}")
    return users


def cmd_list(api: ClusterApi, config: Config) -> int:
    resources = api.get("cluster/resources", type="vm") or []
    wanted = {vm.data_vmid: vm for vm in config.vms if vm.data_disks}
    rows = [("HOLDER", "NODE", "STATUS", "VM", "IN CONFIG", "VOLUMES")]
    for res in sorted(resources, key=lambda r: int(r.get("vmid", 0))):
        tags = set(re.split(r"[;, ]+", str(res.get("tags", ""))))
        if HOLDER_TAG not in tags:
            continue
        vmid = int(res["vmid"])
        cfg = api.get(f"nodes/{res['node']}/qemu/{vmid}/config") or {}
        vm = wanted.get(vmid)
        rows.append((str(vmid), str(res.get("node")), str(res.get("status")),
                     str(res.get("name", "")).removesuffix("-data"),
                     f"yes (VM {vm.vmid})" if vm else "no (retained)", " ".join(holder_volumes(cfg)) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_delete(api: ClusterApi, config: Config, vmid: int, confirm: int) -> int:
    in_config = next((vm for vm in config.vms if vm.vmid == vmid), None)
    holder_vmid = in_config.data_vmid if in_config and in_config.data_vmid else vmid + DATA_VMID_OFFSET
    if confirm != holder_vmid:
        return fail(f"--confirm {confirm} is not the holder of VM {vmid}'s data ({holder_vmid}): nothing deleted",
                    EXIT_USAGE)
    if in_config is not None and in_config.data_disks:
        return fail(f"VM {vmid} is still in {config.path} with data_disks: remove it (or its data_disks) "
                    "and `pulumi up` first; nothing deleted", EXIT_FAILED)
    resources = api.get("cluster/resources", type="vm") or []
    holder = next((r for r in resources if int(r.get("vmid", 0)) == holder_vmid), None)
    if holder is None:
        return fail(f"there is no VM {holder_vmid} on the cluster: nothing to delete", EXIT_FAILED)
    tags = set(re.split(r"[;, ]+", str(holder.get("tags", ""))))
    if HOLDER_TAG not in tags or holder.get("type") != "qemu":
        return fail(f"VM {holder_vmid} ({holder.get('name', '')}) is not a data holder made by Phoenix "
                    f"(no {HOLDER_TAG!r} tag): nothing deleted", EXIT_FAILED)
    if holder.get("status") != "stopped":
        return fail(f"holder {holder_vmid} is {holder.get('status')}: a holder never runs; stop it and "
                    "check what started it; nothing deleted", EXIT_FAILED)
    node = holder["node"]
    volumes = holder_volumes(api.get(f"nodes/{node}/qemu/{holder_vmid}/config") or {})
    users = _users_of(api, resources, volumes, holder_vmid)
    if users:
        return fail(f"holder {holder_vmid}'s data is still attached: {'; '.join(users)}; detach it first "
                    "(remove the VM or its data_disks and `pulumi up`); nothing deleted", EXIT_FAILED)
    # purge: also from backup jobs, replication, HA; destroy-unreferenced-disks: volumes named for
    # the holder that its config no longer lists (a data disk removed from the file).
    upid = api.delete(f"nodes/{node}/qemu/{holder_vmid}", purge=1, **{"destroy-unreferenced-disks": 1})
    status = _wait_task(api, node, str(upid))
    if status != "OK":
        return fail(f"deleting holder {holder_vmid} on {node} failed: {status}", EXIT_FAILED)
    print(f"deleted holder {holder_vmid} on {node} and its volumes: {' '.join(volumes) or '(none)'}")
    return EXIT_OK


def _wait_task(api: ClusterApi, node: str, upid: str) -> str:
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while time.monotonic() < deadline:
        task = api.get(f"nodes/{node}/tasks/{upid}/status") or {}
        if task.get("status") == "stopped":
            return str(task.get("exitstatus", "unknown"))
        time.sleep(0.5)
    return f"still running after {TASK_TIMEOUT_S:.0f} s (task {upid}; see the node's task log)"


def run(args: argparse.Namespace) -> int:
    loaded = load_stack_and_config(args.stack, args.file)
    if isinstance(loaded, int):
        return loaded
    values, config = loaded
    try:
        api = ClusterApi(_credentials(values))
        if args.data_command == "list":
            return cmd_list(api, config)
        return cmd_delete(api, config, args.vmid, args.confirm)
    except TransportConfigError as exc:
        return fail(exc, EXIT_USAGE)
    except (ApiUnusable, ApiError) as exc:
        return fail(exc, EXIT_FAILED)
