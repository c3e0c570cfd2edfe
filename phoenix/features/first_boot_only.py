"""Config fields that only a VM's first boot applies: what the converge step warns about.

The converge step (`edits: "in-place"`) brings packages, keys and timezone to a running VM; the
fields here cannot follow (cloud-init applies them once per instance, or they only describe the
first boot). Their values travel in the step's `first_boot` parameter (JSON, not used by the
script, not part of the run marker), so an edit of one updates the step, whose provider then
warns naming the VM, the field and how to rebuild, and records the value without connecting.
`network_config.ip` and `user.name` are not here: readiness already warns about them and keeps
the as-built values (phoenix.readiness.provider).
"""

from __future__ import annotations

import json

from phoenix.config.model import VmConfig

_VM_KEY = "vm"  # how messages name the VM; not a field


def first_boot_only(vm: VmConfig) -> str:
    """The VM's first-boot-only values as stable JSON text."""
    net = vm.network_config
    values = {
        _VM_KEY: f"VM {vm.vmid} ({vm.name})",
        "network_config.gateway": str(net.gateway) if net.gateway else None,
        "network_config.dns": list(net.dns),
        "network_config.search_domain": net.search_domain,
        "network_config.mac_address": net.mac_address.lower(),
        "user.shell": vm.user.shell,
        "package_update": vm.package_update,
        "package_upgrade": vm.package_upgrade,
        "guest_agent.preinstalled": vm.guest_agent.preinstalled,
    }
    return json.dumps(values, sort_keys=True)


def _parse(text: object) -> dict:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def first_boot_warnings(old: object, new: object) -> list[str]:
    """One warning per first-boot-only field whose value changed between two `first_boot`
    parameters (empty when either is missing: nothing to compare)."""
    before, after = _parse(old), _parse(new)
    if not before or not after:
        return []
    vm = after.get(_VM_KEY) or before.get(_VM_KEY) or "a VM"
    return [
        f"{vm}: {field} changed to {json.dumps(after.get(field))} but only the VM's first boot "
        "applies it; the running VM keeps its value until it is rebuilt: set \"edits\": "
        "\"rebuild\" (old spelling recreate_on_cloud_init_change: true), or "
        "`pulumi up --replace <the VM's URN>` (docs/edits.md)"
        for field in sorted(set(before) | set(after))
        if field != _VM_KEY and before.get(field) != after.get(field)
    ]
