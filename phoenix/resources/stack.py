"""The whole stack: config (already valid) -> provider, images, per-VM components, ZFS."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version

import pulumi

from phoenix import dynamic_workers
from phoenix.cloudinit import render_seed
from phoenix.config.model import Config, VmConfig
from phoenix.config.zfs_rules import zfs_resource_name
from phoenix.resources import dependency_walk
from phoenix.resources.clone_lanes import CloneLanes, longest_lane
from phoenix.resources.data_disks import data_holder
from phoenix.resources.images import image_downloads
from phoenix.resources.provider import make_provider
from phoenix.resources.settings import PROJECT, StackSettings
from phoenix.resources.templates import PhoenixTemplate, build_templates
from phoenix.resources.vm import PhoenixVm, VmInputs
from phoenix.zfs.provider import ZfsProperty, ZfsPropertyArgs


def resource_name(vm: VmConfig) -> str:
    """Keyed by vmid, not name: renaming a VM in the config is an in-place update, not a rebuild."""
    return f"vm-{vm.vmid}"


@dataclass
class Stack:
    vms: dict[int, PhoenixVm] = field(default_factory=dict)
    data_holders: dict[int, pulumi.Resource] = field(default_factory=dict)  # by the VM's vmid
    zfs: list[ZfsProperty] = field(default_factory=list)
    templates: dict[int, PhoenixTemplate] = field(default_factory=dict)  # by the copy's vmid
    outputs: dict[str, pulumi.Input[object]] = field(default_factory=dict)


# The SDK's own recursive walk fails near the interpreter's recursion limit (~1000 deep).
LONG_CLONE_CHAIN = 300


def vm_outputs(vm: VmConfig, component: PhoenixVm) -> dict[str, pulumi.Input[object]]:
    """One VM's stack output. `ip` is the address the VM really has (as built: an edited
    network_config.ip only reaches the VM when it is rebuilt); `configuredIp` is the config's.
    The readiness facts come from the VM's GuestAgentReady."""
    ready = component.ready
    return {
        "vmid": vm.vmid,
        "name": vm.name,
        "node": vm.node,
        "ip": ready.ip,
        "configuredIp": str(vm.network_config.ip.ip),
        "user": ready.built_username,
        "ipv4Addresses": ready.ipv4_addresses,
        "cloudInitStatus": ready.cloud_init_status,
        "secondsToAgent": ready.seconds_to_agent,
        "secondsToCloudInit": ready.seconds_to_cloud_init,
    }


def _bake_of(stack: Stack, vmid: int | None) -> pulumi.Resource | None:
    template = stack.templates.get(vmid) if vmid is not None else None
    return template.bake if template is not None else None


def build_stack(config: Config, settings: StackSettings) -> Stack:
    # Full clones form K dependency chains per (node, storage): keep the SDK's cycle check linear.
    if not dependency_walk.install():
        length, key, n = longest_lane(config, settings.full_clones_per_storage)
        if length >= LONG_CLONE_CHAIN and key is not None:
            pulumi.log.warn(
                f"{n} full clones onto storage {key[1]} on node {key[0]} form dependency chains of "
                f"{length} VMs ({PROJECT}:fullClonesPerStorage = {settings.full_clones_per_storage}), "
                f"and this pulumi SDK ({version('pulumi')}) is not the one phoenix's linear dependency "
                "walk was checked against: the SDK's own walk is O(n^3) in a chain's length and fails "
                "with RecursionError near 1000. Use the pinned requirements.txt, raise "
                f"{PROJECT}:fullClonesPerStorage, or use clone_mode \"linked\" (no chain).")
    if len(config.vms) > dynamic_workers.SDK_WORKERS and not dynamic_workers.is_known_sdk_server():
        pulumi.log.warn(
            f"{len(config.vms)} VMs, and this pulumi SDK ({version('pulumi')}) is not the one whose "
            "dynamic-provider server phoenix checked: that server runs 4 calls at once, so readiness "
            f"waits and features go {dynamic_workers.SDK_WORKERS} at a time and a VM that never "
            "becomes ready holds up others until its deadline. Use the pinned requirements.txt.")
    provider = make_provider(settings)
    downloads = image_downloads(config, provider)

    stack = Stack()
    stack.templates = build_templates(config, provider, downloads)
    lanes: CloneLanes[pulumi.Resource] = CloneLanes(settings.full_clones_per_storage)
    for vm in config.vms:
        seed = render_seed(vm, [settings.ssh_public_key])
        image = downloads.get((vm.image, vm.node)) if vm.image else None
        # Top-level, not a child of the VM's component: nothing that happens to the VM reaches it.
        holder = data_holder(vm, provider)
        if holder is not None:
            stack.data_holders[vm.vmid] = holder
        component = PhoenixVm(
            resource_name(vm),
            vm,
            VmInputs(
                provider=provider,
                seed=seed,
                image_file_id=image.id if image is not None else None,
                image_resource=image,
                # Full clones copy the whole disk: K at a time per (node, storage); linked
                # clones and image imports are not held back (clone_lanes).
                clone_after=lanes.wait_for(vm),
                # A clone of a template of this file waits for its bake.
                template_resource=_bake_of(stack, vm.clone_from),
                ssh_private_key=settings.ssh_private_key,
                rebuilding=vm.vmid in settings.rebuild,
                keeping=vm.vmid in settings.keep,
                data_holder=holder,
                ssh_public_key=settings.ssh_public_key,
            ),
        )
        lanes.add(vm, component.vm)
        stack.vms[vm.vmid] = component

    for entry in config.zfs:
        node = settings.nodes[entry.node]  # checked by check_settings_for before anything ran
        for prop, value in entry.properties.items():
            stack.zfs.append(ZfsProperty(
                zfs_resource_name(entry.node, entry.dataset, prop),
                ZfsPropertyArgs(
                    host=node.address, port=node.port, username=node.user or settings.ssh_username,
                    private_key=settings.ssh_private_key, host_keys=list(node.host_keys),
                    dataset=entry.dataset, property=prop, value=value,
                ),
            ))

    if config.templates:
        stack.outputs["templates"] = {
            t.name: {"vmids": {node: vmid for node, vmid in t.copies}} for t in config.templates
        }
    stack.outputs["vms"] = {vm.name: vm_outputs(vm, stack.vms[vm.vmid]) for vm in config.vms}
    return stack
