"""Render a VM's first-boot seed (user-data, network-config, meta-data) from cloud_init/*.j2.

Values from the config are emitted as data: the templates pass every value through the `yaml`
filter, a YAML-safe dump in flow style with double-quoted strings, so a name like
"x\\nruncmd: [reboot]" stays one string. The result is parsed back and its top-level keys are
checked against what the template may produce, as a second line of defence.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from phoenix.config.model import VmConfig
from phoenix.config.rules import ssh_public_key_problem

# The templates: installed with the package (a wheel maps the top-level cloud_init/ to
# phoenix/cloud_init_templates, see setup.py), else the source tree's (a checkout, -e installs).
_INSTALLED_TEMPLATES = Path(__file__).resolve().parents[1] / "cloud_init_templates"
TEMPLATE_DIR = (_INSTALLED_TEMPLATES if _INSTALLED_TEMPLATES.is_dir()
                else Path(__file__).resolve().parents[2] / "cloud_init")
GUEST_AGENT_PACKAGE = "qemu-guest-agent"
# Installs and starts the agent from cloud-init's bootcmd (see the script's header).
AGENT_INSTALL_SCRIPT = TEMPLATE_DIR / "install-guest-agent.sh"
# Formats a blank data disk once and mounts every data disk by UUID at every boot (docs/data.md).
DATA_DISKS_SCRIPT = TEMPLATE_DIR / "mount-data-disks.sh"

USER_DATA_KEYS = frozenset({
    "hostname", "fqdn", "preserve_hostname", "manage_etc_hosts", "timezone", "users", "disable_root",
    "ssh_pwauth", "growpart", "resize_rootfs", "package_update", "package_upgrade", "packages",
    "write_files", "runcmd", "ssh_genkeytypes", "bootcmd",
})
NETWORK_KEYS = frozenset({"version", "ethernets"})
# libyaml's loader when PyYAML has it (the wheels do): the parse-back check is the hot spot of
# rendering 1000 VMs, and the C loader is ~10x faster than the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
META_KEYS = frozenset({"instance-id", "local-hostname"})


class RenderError(Exception):
    """The rendered document is not what the template may produce (a bug, or an injection)."""


class _QuotedDumper(yaml.SafeDumper):
    pass


def _quoted_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


_QuotedDumper.add_representer(str, _quoted_str)


def to_yaml(value: Any) -> str:
    """One-line YAML for a value: strings double-quoted and escaped, lists/maps in flow style."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.dump(value, Dumper=_QuotedDumper, default_flow_style=True, width=float("inf"),
                     allow_unicode=False, sort_keys=False)
    text = text.removesuffix("\n...\n").rstrip("\n")
    if "\n" in text:  # cannot happen with width=inf and quoted strings; refuse rather than guess
        raise RenderError("a value did not render on one line")
    return text


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml"] = to_yaml
    return env


def _render(template: str, allowed_keys: frozenset[str], **context: Any) -> str:
    text = _environment().get_template(template).render(**context)
    try:
        doc = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise RenderError(f"{template} rendered invalid YAML: {exc}") from None
    if not isinstance(doc, dict) or not set(doc) <= allowed_keys:
        extra = sorted(set(doc) - allowed_keys) if isinstance(doc, dict) else type(doc).__name__
        raise RenderError(f"{template} rendered unexpected top-level keys: {extra}")
    return text


def render_user_data(vm: VmConfig, extra_keys: Iterable[str] = ()) -> str:
    """#cloud-config for the VM. `extra_keys` are more public key lines for the VM's user
    (the key Pulumi uses to run features, or a throwaway key for a local boot)."""
    extra = [k.strip() for k in extra_keys]
    for key in extra:
        problem = ssh_public_key_problem(key)
        if problem:
            raise ValueError(f"extra SSH key for {vm.label}: {problem}")
    keys = list(dict.fromkeys([*vm.user.ssh_authorized_keys, *extra]))
    # The agent is never in `packages`: cloud-init installs that whole list in one `apt-get
    # install`, so one bad name would keep the agent down too. Without a preinstalled agent the
    # bootcmd installs it first; with one there is no apt step for it at all (cloud-init 22.4
    # runs `apt-get update` whenever `packages` is non-empty, package_update or not).
    packages = list(dict.fromkeys(vm.packages))
    script = "" if vm.guest_agent.preinstalled else agent_install_script()
    fqdn = f"{vm.name}.{vm.network_config.search_domain}" if vm.network_config.search_domain else None
    return _render("user-data.yaml.j2", USER_DATA_KEYS, vm=vm, fqdn=fqdn, authorized_keys=keys,
                   packages=packages, agent_install_script=script,
                   data_disk_args=data_disk_args(vm),
                   data_disks_script=_project_script(DATA_DISKS_SCRIPT) if vm.data_disks else "")


def data_disk_args(vm: VmConfig) -> list[str]:
    """The arguments of the data-disk script: SERIAL FILESYSTEM MOUNT per disk. They reach the
    guest as argv of a list-form bootcmd entry (cloud-init quotes each one: util.shellify), so a
    config value is never shell code; the config checker limits them further (config.data_disks)."""
    return [arg for disk in vm.data_disks for arg in (disk.serial, disk.filesystem, disk.mount)]


@functools.lru_cache(maxsize=4)
def _project_script(path: Path) -> str:
    text = path.read_text()
    if "\t" in text or "{{" in text or "{%" in text:  # it is pasted into a YAML block scalar
        raise RenderError(f"{path.name} must contain no tabs or Jinja markup")
    return text.rstrip("\n") + "\n"  # what the block scalar (`|`, clip) yields


def agent_install_script() -> str:
    """The bootcmd script that installs and starts the guest agent (static project text)."""
    return _project_script(AGENT_INSTALL_SCRIPT)


def render_network_config(vm: VmConfig) -> str:
    return _render("network-config.yaml.j2", NETWORK_KEYS, net=vm.network_config)


def instance_id(vm: VmConfig) -> str:
    """Stable per VM: cloud-init runs once per instance-id, so changing it would re-run it."""
    return f"iid-phoenix-{vm.vmid}"


def render_meta_data(vm: VmConfig) -> str:
    return _render("meta-data.yaml.j2", META_KEYS, vm=vm, instance_id=instance_id(vm))


@dataclass(frozen=True)
class Seed:
    """Everything a VM's first boot receives."""

    user_data: str
    network_config: str
    meta_data: str
    source_digest: str = ""  # SeedSource.digest: what the parts were rendered from

    @property
    def digest(self) -> str:
        """sha256 over all three parts: changes exactly when what first boot would get changes."""
        h = hashlib.sha256()
        for part in (self.user_data, self.network_config, self.meta_data):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()


# How the digest is labelled in an opted-in VM's description. The label changed when the stack's
# own key left the digest (issue 18 case 2), so `python -m phoenix up` can tell a digest that
# changed because of an edit from one that changed because its definition did (phoenix.up.guard).
DIGEST_LABEL = "cloud-init config sha256:"
LEGACY_DIGEST_LABEL = "cloud-init sha256:"


@dataclass(frozen=True)
class SeedSource:
    """What a VM's seed is rendered from: the config values, not the templates, and not the
    extra keys. `recreate_on_cloud_init_change` keys on this digest, so a user's edit rebuilds an
    opted-in VM while a Phoenix upgrade that renders the same values differently does not.
    The extra keys (the public half of the stack's `sshPrivateKey`) are left out: rotating the
    stack's key must not rebuild every opted-in VM (the new key reaches the VM through the
    `authorized-keys` feature or `python -m phoenix ssh rotate`, docs/lifecycle.md)."""

    vm: VmConfig
    extra_keys: tuple[str, ...]

    @property
    def digest(self) -> str:
        vm, net = self.vm, self.vm.network_config
        source = {
            "vmid": vm.vmid, "name": vm.name, "timezone": vm.timezone,
            "user": {"name": vm.user.name, "keys": list(vm.user.ssh_authorized_keys),
                     "sudo": vm.user.sudo, "shell": vm.user.shell},
            "packages": list(vm.packages), "package_update": vm.package_update,
            "package_upgrade": vm.package_upgrade,
            "agent_preinstalled": vm.guest_agent.preinstalled,
            "network": {"ip": str(net.ip), "gateway": str(net.gateway) if net.gateway else None,
                        "dns": list(net.dns), "search_domain": net.search_domain,
                        "mac_address": net.mac_address.lower(),
                        "interface_name": net.interface_name},
        }
        return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


def render_seed(vm: VmConfig, extra_keys: Iterable[str] = ()) -> Seed:
    extra = tuple(k.strip() for k in extra_keys)
    return Seed(render_user_data(vm, extra), render_network_config(vm), render_meta_data(vm),
                source_digest=SeedSource(vm, extra).digest)
