"""cloud-init: what a VM's first boot receives, rendered from the templates in cloud_init/."""

from phoenix.cloudinit.bake import render_bake_meta_data, render_bake_user_data
from phoenix.cloudinit.first_boot import first_boot_hint
from phoenix.cloudinit.render import (
    GUEST_AGENT_PACKAGE,
    RenderError,
    Seed,
    instance_id,
    render_meta_data,
    render_network_config,
    render_seed,
    render_user_data,
    to_yaml,
)

__all__ = [
    "GUEST_AGENT_PACKAGE",
    "RenderError",
    "Seed",
    "first_boot_hint",
    "instance_id",
    "render_bake_meta_data",
    "render_bake_user_data",
    "render_meta_data",
    "render_network_config",
    "render_seed",
    "render_user_data",
    "to_yaml",
]
