"""Cloud images: one download.File per (image, node, datastore) that some VM uses."""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.config.model import Config, ImageConfig


def image_downloads(config: Config,
                    provider: pulumi.ProviderResource) -> dict[tuple[str, str], proxmoxve.download.File]:
    """Keyed by (image name, node). Content type `iso` with a `.img` name: the form every PVE
    8.x accepts as a disk `file_id` (the `import` content type needs PVE >= 8.4)."""
    downloads: dict[tuple[str, str], proxmoxve.download.File] = {}
    for vm in config.vms:
        if vm.image is None or (vm.image, vm.node) in downloads:
            continue
        downloads[(vm.image, vm.node)] = image_download(config.images[vm.image], vm.node, provider)
    return downloads


def image_download(image: ImageConfig, node: str,
                   provider: pulumi.ProviderResource) -> proxmoxve.download.File:
    """The image on one node (VMs and templates on that node share it)."""
    return proxmoxve.download.File(
        f"image-{image.name}-{node}-{image.storage}",
        content_type="iso",
        datastore_id=image.storage,
        node_name=node,
        url=image.url,
        file_name=image.file_name,
        checksum=image.checksum,
        checksum_algorithm=image.checksum_algorithm,
        # Re-downloading when upstream's Content-Length changes would replace the file and,
        # through it, every VM's disk: keep what was verified once.
        overwrite=False,
        upload_timeout=1800,
        opts=pulumi.ResourceOptions(provider=provider),
    )
