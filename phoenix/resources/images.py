"""Cloud images: one download.File per (image, node, datastore) that some VM uses.

Each image *version* (url + checksum) gets its own file name on the datastore,
`<name>-<8 hex of sha256(url, checksum)>.img`. In bpg `url` and `checksum` force a new
download.File (fwprovider/nodes/resource_download_file.go, `RequiresReplace` plan modifiers);
the engine creates the new one before deleting the old, and with one fixed file name the create
failed with "already exists". With a name per version the two never collide.

VMs made from an older version are not rebuilt by a new one (`disks[0].fileId` is in their
ignore_changes, see vm.py). The files of older versions are kept on the node
(`retain_on_delete`): a bare `pulumi up --replace` rebuilds a VM made from one from it (the
engine keeps the ignored file id from the state; `phoenix up --rebuild` uses the current one). Remove an
old version by hand (`pvesm free local:iso/NAME`) once no VM needs rebuilding from it.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.config.model import Config, ImageConfig


def versioned_file_name(image: ImageConfig) -> str:
    """`debian-12.img` -> `debian-12-1a2b3c4d.img`: a new url or checksum, a new file."""
    digest = hashlib.sha256(f"{image.url}\n{image.checksum_algorithm or ''}:{image.checksum or ''}"
                            .encode()).hexdigest()[:8]
    path = PurePosixPath(image.file_name)
    return f"{path.stem}-{digest}{path.suffix}"


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
        file_name=versioned_file_name(image),
        checksum=image.checksum,
        checksum_algorithm=image.checksum_algorithm,
        # Re-downloading when upstream's Content-Length changes would replace the file and,
        # through it, every VM's disk: keep what was verified once.
        overwrite=False,
        upload_timeout=1800,
        opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=True),
    )
