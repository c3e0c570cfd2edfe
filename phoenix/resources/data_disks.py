"""Data that outlives its VM (docs/data.md): a holder VM per VM with `data_disks`, whose
volumes the VM attaches.

Why a holder: PVE frees, when a VM is destroyed, only the volumes that VM *owns* (qemu-server
src/PVE/QemuServer.pm `destroy_vm`, line 1884: `return if !$path || !$owner || ($owner != $vmid)`;
the owner is the vmid in the volume's name, vm-<owner>-disk-N). A volume allocated for the
holder (vmid `data_vmid`, never started) and attached to the VM by its path therefore survives
every destroy of the VM: a rebuild (delete-first), `--replace`, a new template or image. This is
bpg's documented "data VM" pattern (docs/resources/virtual_environment_vm.md, "Example:
Attached disks"; `disk.path_in_datastore`).

The contract with the rest of the stack (C1): the holder's resource name is `vm-<vmid>-data`;
it is a top-level resource (no parent, so no component's lifecycle reaches it), never
`replace_with`/`deleted_with` the VM, and `retain_on_delete=True`: removing the VM from the
file or `pulumi destroy` drops it from the state and leaves it, and its volumes, on PVE.
"""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.config.data_disks import HOLDER_TAG
from phoenix.config.model import DataDiskConfig, VmConfig
from phoenix.data.layout import DataDiskLayout


def holder_resource_name(vm: VmConfig) -> str:
    return f"vm-{vm.vmid}-data"


def holder_interface(index: int) -> str:
    """The holder's disks are scsi0, scsi1, ... in the order of `data_disks`."""
    return f"scsi{index}"


def vm_interfaces(vm: VmConfig) -> list[str]:
    """Where the VM attaches its data disks: scsi1, scsi2, ... skipping its own boot disk's
    interface. The guest never sees these names (it finds each disk by its serial)."""
    free = [f"scsi{n}" for n in range(1, 31) if f"scsi{n}" != vm.disk_interface]
    return free[:len(vm.data_disks)]


def holder_description(vm: VmConfig) -> str:
    return (f"Phoenix Hypervisor: holds the data disks of VM {vm.vmid} ({vm.name}). Never start it. "
            "Its disks survive every rebuild and `pulumi destroy` of that VM; delete them on purpose "
            "only (docs/data.md).")


def data_holder(vm: VmConfig, provider: pulumi.ProviderResource) -> proxmoxve.VmLegacy | None:
    """The never-started VM that owns the data disks' volumes (None without data disks).

    Options, each for a reason:
    - `retain_on_delete`: a removed VM or `pulumi destroy` leaves the volumes (docs/data.md says
      how to delete them on purpose, and how to attach them again with `pulumi import`);
    - `ignore_changes=["nodeName"]`: a node change of the VM must not move the holder. qemu-server
      refuses to migrate a VM with a local disk owned by another vmid (src/PVE/QemuMigrate.pm line
      483: "owned by other VM (owner = VM $owner)"), and checks shared storages before that
      (line 441: `return if $scfg->{shared}`): on shared storage the VM moves and the holder need
      not; on local storage PVE refuses the VM's migration and nothing moves. Moving the holder
      first would move its volumes out from under the running VM.
    - no `protect`: a protected resource blocks `pulumi destroy` of the whole stack; retention
      already keeps the data.
    - size: bpg grows a holder disk through PVE's resize (a smaller size is refused by bpg,
      proxmoxtf/resource/vm/disk/disk.go:84 "requested size ... is lower than current size",
      and by qemu-server, src/PVE/API2/Qemu.pm:6048 "shrinking disks is not supported").
    """
    if not vm.data_disks:
        return None
    # A shrink, a removed or reordered disk, another data_vmid: this resource's check fails at
    # preview, naming the VM and the field; the holder waits for it, so nothing is touched
    # (phoenix/data/layout.py).
    layout = DataDiskLayout(f"{holder_resource_name(vm)}-layout", vm,
                            opts=pulumi.ResourceOptions(retain_on_delete=True))
    return proxmoxve.VmLegacy(
        holder_resource_name(vm),
        node_name=vm.node,
        vm_id=vm.data_vmid,
        name=f"{vm.name}-data",
        description=holder_description(vm),
        tags=sorted({"phoenix", HOLDER_TAG}),
        started=False,
        on_boot=False,
        scsi_hardware="virtio-scsi-single",
        operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
        disks=[_holder_disk(i, disk) for i, disk in enumerate(vm.data_disks)],
        # delete_before_replace like every VM with a fixed vmid (vm.py vm_options). A replacement
        # is never planned by this program (the `up` guard refuses one unless named), and with
        # retain_on_delete its "delete" step only drops the state: the holder and its volumes
        # stay on PVE whatever the create then does.
        opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=True, delete_before_replace=True,
                                    ignore_changes=["nodeName"], depends_on=[layout]),
    )


def _holder_disk(index: int, disk: DataDiskConfig) -> proxmoxve.VmLegacyDiskArgs:
    # file_format is not sent: bpg reads back what PVE reports (Optional+Computed,
    # proxmoxtf/resource/vm/disk/schema.go:110-116; tests/test_lifecycle_no_perpetual_diff.py)
    return proxmoxve.VmLegacyDiskArgs(interface=holder_interface(index), datastore_id=disk.storage,
                                      size=disk.size_gb, discard="on")


def _read_back(holder: proxmoxve.VmLegacy, index: int, attribute: str) -> pulumi.Output[str | None]:
    """What bpg read back for the holder's disk at scsi<index>: `path_in_datastore` (e.g.
    vm-108001-disk-0; the VM refers to exactly this volume, before and after a rebuild) and
    `file_format` (PVE's answer, as bpg's "Attached disks" example passes it on)."""
    interface = holder_interface(index)
    return holder.disks.apply(lambda disks: next((getattr(d, attribute) for d in disks or []
                                                  if d.interface == interface), None))


def attached_disks(vm: VmConfig, holder: proxmoxve.VmLegacy) -> list[proxmoxve.VmLegacyDiskArgs]:
    """The VM's disks that are the holder's volumes. `serial` is how the guest finds each one
    (/dev/disk/by-id; cloud_init/mount-data-disks.sh). `backup=False`: the holder's volumes are
    backed up with the holder, not once more with every VM that attaches them."""
    return [
        proxmoxve.VmLegacyDiskArgs(
            interface=interface,
            datastore_id=disk.storage,
            path_in_datastore=_read_back(holder, i, "path_in_datastore"),
            file_format=_read_back(holder, i, "file_format"),
            size=disk.size_gb,
            serial=disk.serial,
            discard="on",
            iothread=True,
            ssd=True,
            backup=False,
        )
        for i, (interface, disk) in enumerate(zip(vm_interfaces(vm), vm.data_disks, strict=True))
    ]


def attached_size_paths(vm: VmConfig) -> list[str]:
    """ignore_changes for the sizes of the attached disks: only the holder resizes a volume.
    qemu-server's resize of the same volume through the VM would find it already grown and
    return without recording the size (src/PVE/API2/Qemu.pm:6050 `return if $size == $newsize`),
    a diff forever; bpg's docs say not to resize the holder's disks through the user VM. The
    guest sees the grown disk at its next cold start, and the boot script grows the filesystem."""
    return [f"disks[{1 + i}].size" for i in range(len(vm.data_disks))]
