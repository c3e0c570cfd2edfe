"""The whole stack: config (already valid) -> provider, images, per-VM components, ZFS."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version

import pulumi

from phoenix.cloudinit import render_seed
from phoenix.config.model import Config, VmConfig
from phoenix.resources import dependency_walk
from phoenix.resources.images import image_downloads
from phoenix.resources.provider import make_provider
from phoenix.resources.settings import StackSettings
from phoenix.resources.templates import PhoenixTemplate, build_templates
from phoenix.resources.vm import PhoenixVm, VmInputs
from phoenix.zfs.provider import ZfsProperty, ZfsPropertyArgs


def resource_name(vm: VmConfig) -> str:
    """Keyed by vmid, not name: renaming a VM in the config is an in-place update, not a rebuild."""
    return f"vm-{vm.vmid}"


@dataclass
class Stack:
    vms: dict[int, PhoenixVm] = field(default_factory=dict)
    zfs: list[ZfsProperty] = field(default_factory=list)
    templates: dict[int, PhoenixTemplate] = field(default_factory=dict)  # by the copy's vmid
    outputs: dict[str, pulumi.Input[object]] = field(default_factory=dict)


# The SDK's own recursive walk fails near the interpreter's recursion limit (~1000 deep).
LONG_CLONE_CHAIN = 300


def longest_clone_chain(config: Config) -> tuple[int, tuple[str, int] | None]:
    """Most clones of one (node, template): the length of the longest dependency chain built."""
    counts = Counter((vm.node, vm.clone_from) for vm in config.vms if vm.clone_from is not None)
    if not counts:
        return 0, None
    key, n = counts.most_common(1)[0]
    return n, key


def _bake_of(stack: Stack, vmid: int | None) -> pulumi.Resource | None:
    template = stack.templates.get(vmid) if vmid is not None else None
    return template.bake if template is not None else None


def build_stack(config: Config, settings: StackSettings) -> Stack:
    # The clone chains below are long dependency chains: keep the SDK's cycle check linear.
    if not dependency_walk.install():
        n, key = longest_clone_chain(config)
        if n >= LONG_CLONE_CHAIN and key is not None:
            pulumi.log.warn(
                f"{n} clones of template {key[1]} on node {key[0]} form one dependency chain, and this "
                f"pulumi SDK ({version('pulumi')}) is not the one phoenix's linear dependency walk was "
                "checked against: the SDK's own walk is O(n^3) and fails with RecursionError near 1000. "
                "Use the pinned requirements.txt, or split the clones across templates.")
    provider = make_provider(settings)
    downloads = image_downloads(config, provider)

    stack = Stack()
    stack.templates = build_templates(config, provider, downloads)
    last_clone: dict[tuple[str, int], pulumi.Resource] = {}
    for vm in config.vms:
        seed = render_seed(vm, [settings.ssh_public_key])
        image = downloads.get((vm.image, vm.node)) if vm.image else None
        template_key = (vm.node, vm.clone_from) if vm.clone_from is not None else None
        component = PhoenixVm(
            resource_name(vm),
            vm,
            VmInputs(
                provider=provider,
                seed=seed,
                image_file_id=image.id if image is not None else None,
                image_resource=image,
                # PVE locks the template while it is cloned: clones of one template go one at a
                # time (plus clone.retries for any other transient lock).
                # The first clone of a template of this file waits for its bake.
                clone_after=(last_clone.get(template_key) or _bake_of(stack, vm.clone_from))
                if template_key else None,
                ssh_private_key=settings.ssh_private_key,
            ),
        )
        if template_key:
            last_clone[template_key] = component.vm
        stack.vms[vm.vmid] = component

    for entry in config.zfs:
        node = settings.nodes[entry.node]  # checked by check_settings_for before anything ran
        for prop, value in entry.properties.items():
            stack.zfs.append(ZfsProperty(
                f"zfs-{entry.node}-{entry.dataset.replace('/', '-')}-{prop}",
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
    stack.outputs["vms"] = {
        vm.name: {
            "vmid": vm.vmid,
            "name": vm.name,
            "node": vm.node,
            "ip": str(vm.network_config.ip.ip),
            "cloudInitStatus": stack.vms[vm.vmid].ready.cloud_init_status,
        }
        for vm in config.vms
    }
    return stack
