"""What a VM's first boot needs before its guest agent can answer, in words for a timeout.

When the agent never answers, nothing inside the guest can be read, so the timeout message can
only say what this VM's first boot depended on and what most likely broke it. This module
derives that from the same config the seed is rendered from (`render.render_user_data`).
"""

from __future__ import annotations

from phoenix.config.model import VmConfig


def first_boot_hint(vm: VmConfig) -> str:
    """The likely causes of a guest agent that never answered, for this VM's config."""
    label = f"VM {vm.vmid} ({vm.name})"
    if vm.guest_agent.preinstalled:
        return (
            f"{label} expects its template to have qemu-guest-agent (guest_agent.preinstalled): "
            "first boot installs nothing for it; the agent should start on its own when the "
            "virtio port appears. Likely causes: the template has no agent after all (set "
            "guest_agent.preinstalled to false so cloud-init installs it), the agent is disabled "
            "or masked in the template, the VM's agent option is off, or the guest did not boot "
            "(see its console)."
        )
    net = vm.network_config
    route = (f"gateway {net.gateway}" if net.gateway
             else f"no gateway (it reaches only {net.ip.network})")
    dns = f"DNS {', '.join(net.dns)}" if net.dns else "no DNS server"
    link = f"bridge {net.bridge}" + (f" VLAN {net.vlan}" if net.vlan is not None else "")
    return (
        f"{label} installs qemu-guest-agent from its package mirror at first boot (cloud-init "
        f"bootcmd: apt-get update + install, before its own packages), so the agent needs a "
        f"network path to that mirror. Check {label}'s network_config: address {net.ip} on "
        f"{link}, {route}, {dns}: is the gateway right for that bridge/VLAN, does it route to the mirror, "
        f"does the DNS server resolve it (and is an HTTP proxy needed)? The guest's console "
        f"shows 'phoenix: guest agent:' lines with apt's own error. Other causes: the template "
        f"has no cloud-init or no NoCloud/ConfigDrive seed, or the VM's agent option is off. "
        f"A template with the agent preinstalled (guest_agent.preinstalled: true) does not "
        f"depend on the network for this."
    )
