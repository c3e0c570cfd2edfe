"""The bake seed: what a template's single bake boot receives (cloud_init/bake-user-data.yaml.j2).

The same seed is used on Proxmox (the template VM's cloud-init drive) and locally
(`python -m phoenix template bake`), so what is proven locally is what the node runs.
"""

from __future__ import annotations

from phoenix.cloudinit.render import GUEST_AGENT_PACKAGE, TEMPLATE_DIR, _render
from phoenix.config.model import TemplateConfig

BAKE_USER_DATA_KEYS = frozenset({
    "hostname", "preserve_hostname", "users", "disable_root", "ssh_pwauth", "package_update",
    "package_upgrade", "packages", "write_files", "runcmd",
})
BAKE_META_KEYS = frozenset({"instance-id", "local-hostname"})
SEAL_PATH = "/usr/local/sbin/phoenix-bake-seal"
SEAL_UNIT = "phoenix-bake-seal"
# Where the sealing step says how far it got; `failed: ...` when it stopped (the VM stays up).
STATUS_FILE = "/run/phoenix-bake.status"


def seal_script() -> str:
    return (TEMPLATE_DIR / "bake-seal.sh").read_text()


def bake_packages(template: TemplateConfig) -> list[str]:
    return list(dict.fromkeys([GUEST_AGENT_PACKAGE, *template.packages]))


def render_bake_user_data(template: TemplateConfig) -> str:
    packages = bake_packages(template)
    seal_argv = ["systemd-run", "--no-block", f"--unit={SEAL_UNIT}",
                 "--property=After=cloud-final.service", SEAL_PATH, *packages]
    return _render("bake-user-data.yaml.j2", BAKE_USER_DATA_KEYS, tpl=template,
                   packages=packages, seal_path=SEAL_PATH, seal_script=seal_script(),
                   seal_argv=seal_argv, status_file=STATUS_FILE)


def bake_instance_id(template: TemplateConfig, node: str) -> str:
    return f"iid-phoenix-bake-{template.vmid_on(node) or template.vmid}"


def render_bake_meta_data(template: TemplateConfig, node: str) -> str:
    return _render("bake-meta-data.yaml.j2", BAKE_META_KEYS, tpl=template,
                   instance_id=bake_instance_id(template, node))
