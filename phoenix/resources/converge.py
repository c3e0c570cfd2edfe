"""A VM's in-place step (`"edits": "in-place"`, docs/edits.md): what it is given.

The step is a built-in `Feature` (`converge`, phoenix/features/converge.sh) that the VM's
component registers after readiness and before the features. Its inputs are the values the seed
gives cloud-init for the same fields, so a VM built from the current seed has nothing to change,
and an edit of one of them updates only this VM's step.
"""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from phoenix.config.model import VmConfig
from phoenix.features.catalog import CONVERGE
from phoenix.features.first_boot_only import first_boot_only
from phoenix.features.provider import FeatureArgs
from phoenix.readiness.provider import GuestAgentReady

CONVERGE_CONNECT_TIMEOUT_S = 120.0  # a stopped VM fails its own update within this


def converge_params(vm: VmConfig, login_key: str) -> dict[str, str]:
    """The step's parameters: the packages, the key lines as render_user_data lists them (the
    configured ones, then Phoenix's), Phoenix's own key (never removed), the timezone, and the
    first-boot-only values it warns about (phoenix.features.first_boot_only)."""
    keys = list(dict.fromkeys([*vm.user.ssh_authorized_keys, *([login_key] if login_key else [])]))
    return {
        "packages": " ".join(dict.fromkeys(vm.packages)),
        "keys": "\n".join(keys),
        "login_key": login_key,
        "timezone": vm.timezone or "",
        "first_boot": first_boot_only(vm),
    }


def converge_args(vm: VmConfig, machine: proxmoxve.VmLegacy, ready: GuestAgentReady,
                  private_key: pulumi.Input[str] | None, login_key: str) -> FeatureArgs | None:
    """The step's arguments, or None when the VM has none (`"seed-only"`, `"rebuild"`, or an
    admin user without sudo). It connects where the features do: the as-built address and user,
    host keys pinned from what readiness read through the guest agent."""
    if not vm.converges_in_place:
        return None
    return FeatureArgs(
        host=ready.ip,
        username=ready.built_username,
        private_key=private_key,
        host_keys=ready.ssh_host_keys,
        feature=CONVERGE,
        params=converge_params(vm, login_key),
        triggers=[machine.id],
        connect_timeout_s=CONVERGE_CONNECT_TIMEOUT_S,
    )
