"""The one explicit proxmoxve provider every resource uses."""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.resources.settings import StackSettings


def make_provider(settings: StackSettings) -> proxmoxve.Provider:
    """API token for the API; SSH (same key as features/ZFS) for snippet uploads, which the PVE
    API cannot do."""
    ssh = proxmoxve.ProviderSshArgs(
        username=settings.ssh_username,
        private_key=settings.ssh_private_key,
        nodes=[
            proxmoxve.ProviderSshNodeArgs(name=node.name, address=node.address, port=node.port)
            for node in settings.nodes.values()
        ] or None,
    )
    return proxmoxve.Provider(
        "proxmoxve",
        endpoint=settings.endpoint,
        api_token=settings.api_token,
        insecure=settings.insecure,
        ssh=ssh,
        opts=pulumi.ResourceOptions(additional_secret_outputs=["ssh"]),
    )
