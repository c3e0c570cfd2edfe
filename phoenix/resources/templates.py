"""Templates of the config as Pulumi resources, one set per copy (node, vmid):

    image (download.File, shared with VMs on that node)
      -> bake seed snippets (FileLegacy: user-data, meta-data)
      -> template VM (VmLegacy from the imported disk: cloud-init drive, serial console,
         virtio-scsi, agent on, stopped)
      -> TemplateBake (start once, seal, power off, convert; all or nothing)
      -> clones (their first clone depends on the bake: see phoenix.resources.stack)

A template is immutable. The template VM ignores changes to what its definition decides (and to
`template`/`started`, which the bake changes behind bpg's back); TemplateBake refuses a changed
definition under the same vmid with a message that says how to add a new version instead. So a
template that clones pin is never replaced or rebuilt by a config edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.cloudinit import render_bake_meta_data, render_bake_user_data
from phoenix.config.model import Config, ImageConfig, TemplateConfig
from phoenix.config.templates import TEMPLATE_BOOT_DISK
from phoenix.resources.images import image_download
from phoenix.templatebake.provider import TemplateBake, TemplateBakeArgs

COMPONENT_TYPE = "phoenix:index:Template"
TEMPLATE_TAGS = ["phoenix", "phoenix-template"]
# Inputs of the template VM that its definition decides, plus the two the bake changes
# (`template` after conversion, `started`): never updated or replaced in place.
IGNORED_TEMPLATE_VM_CHANGES = ["disks", "initialization", "cpu", "memory", "networkDevices",
                               "template", "started", "name"]


def definition_digest(template: TemplateConfig, image: ImageConfig) -> str:
    """What the template's bytes are made of (not how or where it is baked)."""
    data = {"image": {"url": image.url, "checksum": image.checksum,
                      "checksum_algorithm": image.checksum_algorithm},
            "packages": list(template.packages), "disk_gb": template.disk_gb,
            "storage": template.storage}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def recipe_digest(template: TemplateConfig) -> str:
    """The definition without the image's version (url, checksum): what the user changes when
    they change *this template*. A new image version alone keeps the template as baked."""
    data = {"packages": list(template.packages), "disk_gb": template.disk_gb,
            "storage": template.storage, "image": template.image}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def bake_snippet_file_name(vmid: int, part: str) -> str:
    return f"phoenix-template-{vmid}-bake-{part}.yaml"


def resource_name(vmid: int) -> str:
    return f"template-{vmid}"


@dataclass
class TemplateCopy:
    node: str
    vmid: int
    vm: proxmoxve.VmLegacy
    bake: TemplateBake
    snippets: dict[str, proxmoxve.FileLegacy] = field(default_factory=dict)


class PhoenixTemplate(pulumi.ComponentResource):
    """One copy of a template on one node."""

    vm: proxmoxve.VmLegacy
    bake: TemplateBake

    def __init__(self, template: TemplateConfig, node: str, vmid: int, image: ImageConfig,
                 download: proxmoxve.download.File, provider: pulumi.ProviderResource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        name = resource_name(vmid)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        contents = {"user-data": render_bake_user_data(template),
                    "meta-data": render_bake_meta_data(template, node)}
        self.snippets = {
            part: proxmoxve.FileLegacy(
                f"{name}-bake-{part}",
                content_type="snippets",
                datastore_id=template.snippet_storage,
                node_name=node,
                source_raw=proxmoxve.FileLegacySourceRawArgs(
                    data=text, file_name=bake_snippet_file_name(vmid, part)),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                    delete_before_replace=True)),
            )
            for part, text in contents.items()
        }
        snippet_id = {part: f"{template.snippet_storage}:snippets/{bake_snippet_file_name(vmid, part)}"
                      for part in contents}
        self.vm = proxmoxve.VmLegacy(
            f"{name}-vm",
            node_name=node,
            vm_id=vmid,
            name=template.name,
            description=(f"Phoenix Hypervisor template {template.name!r} (vmid {vmid}), baked "
                         f"from image {image.name!r}. Immutable: a new definition gets a new vmid."),
            tags=TEMPLATE_TAGS,
            cpu=proxmoxve.VmLegacyCpuArgs(cores=template.cores, sockets=1, type="x86-64-v2-AES"),
            memory=proxmoxve.VmLegacyMemoryArgs(dedicated=template.memory_mb),
            scsi_hardware="virtio-scsi-single",
            disks=[proxmoxve.VmLegacyDiskArgs(
                interface=TEMPLATE_BOOT_DISK, datastore_id=template.storage, size=template.disk_gb,
                file_id=download.id, discard="on", iothread=True, ssd=True,
            )],
            network_devices=[proxmoxve.VmLegacyNetworkDeviceArgs(
                bridge=template.bridge, model="virtio", vlan_id=template.vlan)],
            initialization=proxmoxve.VmLegacyInitializationArgs(
                datastore_id=template.storage,
                user_data_file_id=snippet_id["user-data"],
                meta_data_file_id=snippet_id["meta-data"],
                # the bake boot reaches the package mirror over DHCP on `bridge`
                ip_configs=[proxmoxve.VmLegacyInitializationIpConfigArgs(
                    ipv4=proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address="dhcp"))],
            ),
            agent=proxmoxve.VmLegacyAgentArgs(
                enabled=True, trim=True, type="virtio", timeout="1m",
                wait_for_ip=proxmoxve.VmLegacyAgentWaitForIpArgs(disabled=True)),
            serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
            operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
            # Created stopped: TemplateBake starts it once, after its pre-bake snapshot.
            started=False,
            on_boot=False,
            template=False,
            stop_on_destroy=True,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                depends_on=[download, *self.snippets.values()],
                ignore_changes=IGNORED_TEMPLATE_VM_CHANGES,
                # bpg's id is the vmid: a replacement must delete first (see vm.py's notes).
                delete_before_replace=True,
            )),
        )
        self.bake = TemplateBake(
            f"{name}-bake",
            TemplateBakeArgs(vmid=vmid, node=node, template_name=template.name,
                             definition=definition_digest(template, image),
                             recipe=recipe_digest(template),
                             timeout_s=template.bake_timeout_s, vm_resource_id=self.vm.id),
            # bpg's id is the vmid, so a replaced template VM keeps its id: replace_with makes
            # the bake run again on the new VM (an engine without the option ignores it).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vm], replace_with=[self.vm]),
        )
        self.register_outputs({"vmid": vmid, "node": node, "isTemplate": self.bake.is_template})


def build_templates(config: Config, provider: pulumi.ProviderResource,
                    downloads: dict[tuple[str, str], proxmoxve.download.File]
                    ) -> dict[int, PhoenixTemplate]:
    """Every copy of every template, keyed by the copy's vmid. Adds the downloads it needs."""
    out: dict[int, PhoenixTemplate] = {}
    for template in config.templates:
        image = config.images[template.image]
        for node, vmid in template.copies:
            if (image.name, node) not in downloads:
                downloads[(image.name, node)] = image_download(image, node, provider)
            out[vmid] = PhoenixTemplate(template, node, vmid, image,
                                        downloads[(image.name, node)], provider)
    return out
