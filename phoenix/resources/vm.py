"""One VM of the config as a Pulumi component: its cloud-init snippets and its VmLegacy.

Data safety (cloud-init only runs on a VM's first boot):
- The snippets have fixed file names (`phoenix-<vmid>-user-data.yaml`, ...) and the VM refers to
  them by those names as plain strings, with an ordering-only dependency. Editing the config's
  cloud-init parts therefore replaces the *snippet* (delete-before-replace, same name) but leaves
  the VM's inputs unchanged: the running VM and its disk are untouched, and the new seed applies
  when the VM is next recreated. (Passing `snippet.id` instead would make the VM's
  `user_data_file_id` unknown during the update, and that field forces replacement upstream:
  bpg/terraform-provider-proxmox #1636, #2901.)
- Opt-in per VM: `recreate_on_cloud_init_change: true` puts the seed's sha256 in the VM's
  description and marks that field replace-on-change, so a changed seed rebuilds the VM.
- `protect: true` maps to Pulumi's protect (no delete, no replace until it is unset).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.cloudinit import Seed
from phoenix.config.model import VmConfig
from phoenix.features.provider import Feature, FeatureArgs
from phoenix.readiness.provider import GuestAgentReady, GuestAgentReadyArgs

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
        text += f"\ncloud-init sha256:{seed_digest} (recreate_on_cloud_init_change: true)"
    return text


def vm_options(vm: VmConfig, parent: pulumi.Resource, provider: pulumi.ProviderResource,
               depends_on: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent,
        provider=provider,
        depends_on=list(depends_on),
        protect=vm.protect,
        replace_on_changes=["description"] if vm.recreate_on_cloud_init_change else None,
        # A cloud image that changes upstream must not rebuild VMs created from the old one;
        # nor does a new version of a template of the file (bpg's clone.* are ForceNew,
        # proxmoxtf/resource/vm/vm.go mkClone): VMs move to it with `pulumi up --replace`.
        ignore_changes=(["disks[0].fileId"] if vm.image
                        else ["clone"] if vm.template is not None else None),
    )


@dataclass(frozen=True)
class VmInputs:
    """What the component needs besides the VM's config."""

    provider: pulumi.ProviderResource
    seed: Seed
    image_file_id: pulumi.Input[str] | None = None
    image_resource: pulumi.Resource | None = None
    clone_after: pulumi.Resource | None = None  # serialises clones of one template
    ssh_private_key: pulumi.Input[str] | None = None  # secret: how features reach the VM


class PhoenixVm(pulumi.ComponentResource):
    vmid: pulumi.Output[int]
    ip: pulumi.Output[str]
    vm: proxmoxve.VmLegacy
    snippets: dict[str, proxmoxve.FileLegacy]
    ready: GuestAgentReady
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
            ssd=True,
            file_id=inputs.image_file_id,
        )
        depends_on: list[pulumi.Resource] = list(self.snippets.values())
        if inputs.image_resource is not None:
            depends_on.append(inputs.image_resource)
        if inputs.clone_after is not None:
            depends_on.append(inputs.clone_after)

        self.vm = proxmoxve.VmLegacy(
            f"{name}-vm",
            node_name=vm.node,
            vm_id=vm.vmid,
            name=vm.name,
            description=description(vm, inputs.seed.digest),
            tags=sorted({MANAGED_TAG, *vm.tags}),
            clone=proxmoxve.VmLegacyCloneArgs(
                vm_id=vm.clone_from, full=True, datastore_id=vm.storage,
                # the source node: the template's copy may be on another node (a full clone)
                node_name=vm.clone_node or vm.node, retries=3
            ) if vm.clone_from is not None else None,
            cpu=proxmoxve.VmLegacyCpuArgs(cores=vm.cores, sockets=1, type=vm.cpu_type),
            memory=proxmoxve.VmLegacyMemoryArgs(dedicated=vm.memory_mb),
            scsi_hardware="virtio-scsi-single",
            disks=[disk],
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
            opts=vm_options(vm, self, inputs.provider, depends_on),
        )

        # Waiting is its own resource: bounded by guest_agent.timeout_s, names the stage that
        # failed; credentials come from the stack config inside the provider (not in state).
        self.ready = GuestAgentReady(
            f"{name}-ready",
            GuestAgentReadyArgs(vmid=vm.vmid, node=vm.node, timeout_s=vm.guest_agent.timeout_s,
                                vm_resource_id=self.vm.id),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vm]),
        )

        # Features run over SSH once the VM is ready, pinning the host keys read through the
        # agent (no trust on first use); a replaced VM (new id) re-runs them.
        self.features = {
            feature.name: Feature(
                f"{name}-feature-{feature.name}",
                FeatureArgs(
                    host=str(net.ip.ip),
                    username=vm.user.name,
                    private_key=inputs.ssh_private_key,
                    host_keys=self.ready.ssh_host_keys,
                    feature=feature.name,
                    params=dict(feature.params),
                    triggers=[self.vm.id],
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready]),
            )
            for feature in vm.features
        }

        self.vmid = pulumi.Output.from_input(vm.vmid)
        self.ip = pulumi.Output.from_input(str(net.ip.ip))
        self.register_outputs({"vmid": self.vmid, "ip": self.ip, "vmId": self.vm.id,
                               "cloudInitStatus": self.ready.cloud_init_status})
