"""One VM of the config as a Pulumi component: its cloud-init snippets and its VmLegacy.

Data safety (cloud-init's per-instance modules only run at a VM's first boot; docs/lifecycle.md):
- The snippets have fixed file names (`phoenix-<vmid>-user-data.yaml`, ...) and the VM refers to
  them by those names as plain strings, with an ordering-only dependency. Editing the config's
  cloud-init parts therefore replaces the *snippet* (delete-before-replace, same name: bpg's file
  resource has no in-place update) but leaves the VM's inputs unchanged: the running VM and its
  disk are untouched. PVE regenerates the cloud-init drive at every VM start, so every-boot
  modules see the new seed at the next cold start; all of it applies when the VM is rebuilt.
  (Passing `snippet.id` instead would make the VM's
  `user_data_file_id` unknown during the update, and that field forces replacement upstream:
  bpg/terraform-provider-proxmox #1636, #2901.)
- Edits reach the running VM by the VM's `edits` policy (docs/edits.md): "in-place" (default)
  adds a `converge` step (`vm-<vmid>-converge`, a built-in Feature run after readiness) that
  installs added packages and sets the admin keys and the timezone over SSH; "seed-only" only
  replaces the snippet; "rebuild" (old spelling `recreate_on_cloud_init_change: true`) puts the
  seed source's sha256 in the VM's description and marks that field replace-on-change, so a
  changed seed rebuilds the VM.
- `protect: true` maps to Pulumi's protect (no delete, no replace until it is unset).
- A VM replacement is always delete-first (fixed vmid); readiness and features follow the VM
  (`follows_vm`); a node change migrates (`migrate=True`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.cloudinit import Seed
from phoenix.cloudinit.first_boot import first_boot_hint
from phoenix.cloudinit.render import DIGEST_LABEL
from phoenix.config.model import VmConfig
from phoenix.features.provider import Feature, FeatureArgs
from phoenix.readiness.provider import GuestAgentReady, GuestAgentReadyArgs
from phoenix.resources.converge import converge_args
from phoenix.resources.data_disks import attached_disks, attached_size_paths

COMPONENT_TYPE = "phoenix:index:Vm"
MANAGED_TAG = "phoenix"
SNIPPET_PARTS = ("user-data", "network-config", "meta-data")


def snippet_file_name(vm: VmConfig, part: str) -> str:
    return f"phoenix-{vm.vmid}-{part}.yaml"


def snippet_file_id(vm: VmConfig, part: str) -> str:
    """The volume id PVE gives the snippet (what FileLegacy's id will be)."""
    return f"{vm.snippet_storage}:snippets/{snippet_file_name(vm, part)}"


def description(vm: VmConfig, seed_digest: str | None) -> str:
    text = "Managed by Phoenix Hypervisor (phoenix_vm_configs.json); edit the config, not this VM."
    if vm.recreate_on_cloud_init_change and seed_digest:
        text += f"\n{DIGEST_LABEL}{seed_digest} (recreate_on_cloud_init_change: true)"
    return text


# The inputs that name what a VM is made from. bpg forces a new VM when either changes
# (`disk.file_id`: proxmoxtf/resource/vm/disk/schema.go:136-140, `ForceNew: true`; every `clone.*`
# field: proxmoxtf/resource/vm/vm.go:605-633).
SOURCE_PATHS = ["clone", "disks[0].fileId"]


def vm_ignore_changes(vm: VmConfig, *, rebuilding: bool = False, keeping: bool = False) -> list[str] | None:
    """Ignore the VM's source (both paths, whatever the VM's source is now), so that a new image
    version, another template or an image<->clone switch never rebuilds a VM that exists: there
    is nothing to apply until the VM is rebuilt on purpose.

    Both paths, always: the engine resets each ignored path to the *old* inputs, and removes it
    from the new inputs when the old inputs lack it (pulumi pkg/resource/deploy/step_generator.go
    `processIgnoreChanges`, :2731 at v3.207.0, :2964 at v3.254.0, :3028 at v3.259.0 ->
    sdk/go/common/resource/properties_path.go `PropertyPath.reset`, the leaf case ~:509 at
    v3.254.0: "if old doesn't have this key ... delete this from new"). Ignoring only today's
    source kind would, after an image->clone switch, drop `clone` and keep no `fileId`: a VM
    with neither, a blank disk. Ignoring both keeps the old source exactly.

    Not ignored (the current source is used) when the VM is being rebuilt on purpose
    (`PHOENIX_REBUILD`, set by `python -m phoenix up --rebuild VMID`), or when it opted in to
    rebuilds (`recreate_on_cloud_init_change` / edits "rebuild"): a rebuild then always starts
    from the template or image the config names now, which this program manages or the config
    checks, never from one recorded long ago that may be gone (issue 18, cases 1 and 4). For an
    opted-in VM a changed source therefore shows as a replacement because of `clone`/`disks`,
    which `python -m phoenix up` refuses unless the VM is named (phoenix.up.guard).
    `keeping` (PHOENIX_KEEP, `up --keep VMID`): this `up` keeps the VM as it is, whatever it
    opted in to."""
    # Attached data volumes are resized by their holder only (phoenix.resources.data_disks).
    attached = attached_size_paths(vm)
    if keeping:
        return list(SOURCE_PATHS) + attached
    if rebuilding or vm.recreate_on_cloud_init_change:
        return attached or None
    return list(SOURCE_PATHS) + attached


def vm_options(vm: VmConfig, parent: pulumi.Resource, provider: pulumi.ProviderResource,
               depends_on: Sequence[pulumi.Resource], *, rebuilding: bool = False,
               keeping: bool = False) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent,
        provider=provider,
        depends_on=list(depends_on),
        protect=vm.protect,
        # `keeping`: the description (the rebuild digest) is updated in place this once
        replace_on_changes=["description"] if vm.recreate_on_cloud_init_change and not keeping else None,
        # The vmid is fixed, and bpg's resource id *is* the vmid: a create-before-delete
        # replacement would "create" the VM that already exists (bpg's clone/create retries a 5xx
        # and takes "already exists" on a retry as success: proxmox/nodes/vms/vms.go,
        # proxmox/retry/retry.go) and then delete it. Every VM replacement is delete-first.
        delete_before_replace=True,
        ignore_changes=vm_ignore_changes(vm, rebuilding=rebuilding, keeping=keeping),
    )


def follows_vm(vm: proxmoxve.VmLegacy, *, depends_on: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    """Options for a resource that lives inside the VM (readiness, features): replaced whenever
    the VM is replaced (its id, the vmid, does not change then, so no input would show it), and
    not deleted on its own when the VM is deleted as well (there is nothing left to undo, and a
    VM being deleted need not be reachable). Pulumi CLI >= 3.207.0 (replaceWith)."""
    return pulumi.ResourceOptions(depends_on=list(depends_on), replace_with=[vm], deleted_with=vm)


def clone_args(vm: VmConfig) -> proxmoxve.VmLegacyCloneArgs | None:
    """`clone_mode` as the provider's clone block. A linked clone gets no target storage: PVE
    refuses one (qemu-server `clone_vm`: "parameter 'storage' not allowed for linked clones"),
    and its disk stays on the template's storage (phoenix.config.clone_rules). `retries` covers
    errors of the clone *request* only (bpg `proxmox/retry/retry.go`; docs/fleet.md)."""
    if vm.clone_from is None:
        return None
    full = vm.clone_mode == "full"
    return proxmoxve.VmLegacyCloneArgs(vm_id=vm.clone_from, full=full,
                                       datastore_id=vm.storage if full else None,
                                       # the source node: a template of the file may
                                       # have its copy on another node (config.templates)
                                       node_name=vm.clone_node or vm.node, retries=3)


@dataclass(frozen=True)
class VmInputs:
    """What the component needs besides the VM's config."""

    provider: pulumi.ProviderResource
    seed: Seed
    image_file_id: pulumi.Input[str] | None = None
    image_resource: pulumi.Resource | None = None
    clone_after: pulumi.Resource | None = None  # a full clone's lane predecessor (clone_lanes)
    template_resource: pulumi.Resource | None = None  # the bake of a template of the file
    ssh_private_key: pulumi.Input[str] | None = None  # secret: how features reach the VM
    rebuilding: bool = False  # named in PHOENIX_REBUILD: registered with its current source
    keeping: bool = False  # named in PHOENIX_KEEP: no replacement this `up`, whatever changed
    data_holder: proxmoxve.VmLegacy | None = None  # owns the data disks' volumes (data_disks.py)
    ssh_public_key: str = ""  # its public line: the converge step never removes it


class PhoenixVm(pulumi.ComponentResource):
    vmid: pulumi.Output[int]
    ip: pulumi.Output[str]
    vm: proxmoxve.VmLegacy
    snippets: dict[str, proxmoxve.FileLegacy]
    ready: GuestAgentReady
    converge: Feature | None
    features: dict[str, Feature]

    def __init__(self, name: str, vm: VmConfig, inputs: VmInputs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=inputs.provider)

        contents = {
            "user-data": inputs.seed.user_data,
            "network-config": inputs.seed.network_config,
            "meta-data": inputs.seed.meta_data,
        }
        self.snippets = {
            part: proxmoxve.FileLegacy(
                f"{name}-{part}",
                content_type="snippets",
                datastore_id=vm.snippet_storage,
                node_name=vm.node,
                source_raw=proxmoxve.FileLegacySourceRawArgs(
                    data=contents[part], file_name=snippet_file_name(vm, part)
                ),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)),
            )
            for part in SNIPPET_PARTS
        }

        net = vm.network_config
        disk = proxmoxve.VmLegacyDiskArgs(
            interface=vm.disk_interface,
            datastore_id=vm.storage,
            size=vm.disk_gb,
            discard="on",
            iothread=vm.disk_interface.startswith(("scsi", "virtio")),
            # bpg sends `ssd` only for non-virtio disks and reads it back `false` otherwise
            # (proxmoxtf/resource/vm/disk/disk.go): True on virtio would be a diff forever.
            ssd=not vm.disk_interface.startswith("virtio"),
            file_id=inputs.image_file_id,
        )
        depends_on: list[pulumi.Resource] = list(self.snippets.values())
        if inputs.image_resource is not None:
            depends_on.append(inputs.image_resource)
        if inputs.clone_after is not None:
            depends_on.append(inputs.clone_after)
        if inputs.template_resource is not None:
            depends_on.append(inputs.template_resource)
        if inputs.data_holder is not None:
            depends_on.append(inputs.data_holder)

        self.vm = proxmoxve.VmLegacy(
            f"{name}-vm",
            node_name=vm.node,
            # A node change migrates the VM instead of re-creating it (bpg forces a new VM on a
            # node_name change unless `migrate`: proxmoxtf/resource/vm/vm.go, CustomizeDiff
            # `customdiff.ForceNewIf(mkNodeName, ...)`). A VM that HA moved is moved back to
            # the config's node by the next `up` after a refresh (bpg's read follows it).
            migrate=True,
            vm_id=vm.vmid,
            name=vm.name,
            description=description(vm, inputs.seed.source_digest),
            tags=sorted({MANAGED_TAG, *vm.tags}),
            clone=clone_args(vm),
            cpu=proxmoxve.VmLegacyCpuArgs(cores=vm.cores, sockets=1, type=vm.cpu_type),
            memory=proxmoxve.VmLegacyMemoryArgs(dedicated=vm.memory_mb),
            scsi_hardware="virtio-scsi-single",
            # The data disks are the holder's volumes, attached by path: destroying this VM
            # (a rebuild) frees none of them (phoenix/resources/data_disks.py).
            disks=[disk, *(attached_disks(vm, inputs.data_holder) if inputs.data_holder else [])],
            network_devices=[proxmoxve.VmLegacyNetworkDeviceArgs(
                bridge=net.bridge, model="virtio", vlan_id=net.vlan, mac_address=net.mac_address.upper(),
            )],
            initialization=proxmoxve.VmLegacyInitializationArgs(
                datastore_id=vm.storage,
                user_data_file_id=snippet_file_id(vm, "user-data"),
                network_data_file_id=snippet_file_id(vm, "network-config"),
                meta_data_file_id=snippet_file_id(vm, "meta-data"),
            ),
            # The agent is enabled so PVE wires the virtio port, but the provider must not wait
            # for it: GuestAgentReady owns that wait (bounded, with reasons). Without
            # wait_for_ip.disabled the provider polls up to `timeout` (15 min by default) on
            # create and on every refresh, and only warns when it gives up.
            agent=proxmoxve.VmLegacyAgentArgs(
                enabled=True,
                trim=True,
                type="virtio",
                timeout="1m",
                wait_for_ip=proxmoxve.VmLegacyAgentWaitForIpArgs(disabled=True),
            ),
            serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
            operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
            started=True,
            on_boot=vm.on_boot,
            # An absent or hung agent must not turn `pulumi destroy` into a shutdown timeout.
            stop_on_destroy=True,
            opts=vm_options(vm, self, inputs.provider, depends_on, rebuilding=inputs.rebuilding,
                            keeping=inputs.keeping),
        )

        # Waiting is its own resource: bounded by guest_agent.timeout_s, names the stage that
        # failed; credentials come from the stack config inside the provider (not in state).
        # It records the VM's as-built address and user (see GuestAgentReady), which later
        # config edits do not change. It is replaced whenever the VM is (follows_vm).
        # (vm_resource_id is the vmid, stable across replacements: kept only so that existing
        # state shows no diff.)
        self.ready = GuestAgentReady(
            f"{name}-ready",
            GuestAgentReadyArgs(vmid=vm.vmid, node=vm.node, timeout_s=vm.guest_agent.timeout_s,
                                vm_resource_id=self.vm.id,
                                expected_ip=str(net.ip.ip), username=vm.user.name,
                                first_boot_hint=first_boot_hint(vm)),
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self),
                                              follows_vm(self.vm, depends_on=[self.vm])),
        )

        # Edits of packages, keys and timezone converge in place, after readiness, before the
        # features (which then never race it over authorized_keys, and find the packages).
        args = converge_args(vm, self.vm, self.ready, inputs.ssh_private_key,
                             inputs.ssh_public_key)
        # A built-in Feature: its provider already gives what the step needs — an update (never
        # a replace) only when an input changes, a pure diff, pinned host keys, refresh and
        # destroy never blocked by an unreachable VM (no delete script: no connection). It
        # follows the VM like the features: a rebuild runs it against the new VM.
        self.converge = None if args is None else Feature(
            f"{name}-converge", args,
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self),
                                              follows_vm(self.vm, depends_on=[self.ready])))
        after_converge: list[pulumi.Resource] = [self.ready]
        if self.converge is not None:
            after_converge.append(self.converge)

        # Features run over SSH once the VM is ready, at the address and as the user the VM
        # really has (readiness's as-built outputs), pinning the host keys read through the
        # agent (no trust on first use). A rebuilt VM re-runs them (follows_vm).
        self.features = {
            feature.name: Feature(
                f"{name}-feature-{feature.name}",
                FeatureArgs(
                    host=self.ready.ip,
                    username=self.ready.built_username,
                    private_key=inputs.ssh_private_key,
                    host_keys=self.ready.ssh_host_keys,
                    feature=feature.name,
                    params=dict(feature.params),
                    triggers=[self.vm.id],
                ),
                opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self),
                                                  follows_vm(self.vm, depends_on=after_converge)),
            )
            for feature in vm.features
        }

        self.vmid = pulumi.Output.from_input(vm.vmid)
        self.ip = self.ready.ip  # the address the VM has (as built), not the config's wish
        self.register_outputs({"vmid": self.vmid, "ip": self.ip, "vmId": self.vm.id,
                               "cloudInitStatus": self.ready.cloud_init_status})
