"""The `templates` section: templates the stack bakes itself, and how VMs refer to them.

Decisions (docs/templates.md explains them to users):
- Versions: a template's vmid names one immutable version. A changed definition is a new entry
  with a new vmid beside the old one; VMs move to it when their `clone_from` says so and they
  are recreated (`pulumi up --replace`). The bake resource refuses a changed definition under
  an existing vmid (phoenix.templatebake.provider), so nothing is rebuilt behind a clone's back.
- Nodes: `"node": ["pve1", "pve2"]` bakes one copy per node, the k-th with vmid `vmid + k`. A VM
  clones the copy on its own node. A VM on a node without a copy clones across nodes from the
  first copy (bpg `clone.node_name`): a full clone, or a linked clone only when the template's
  storage is shared (`shared_storage: true`); a linked clone from local storage is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from phoenix.config import rules
from phoenix.config.model import ImageConfig, TemplateConfig

GUEST_AGENT_PACKAGE = "qemu-guest-agent"

TEMPLATE_DEFAULTS: dict[str, Any] = {
    "storage": "local-lvm",
    "snippet_storage": "local",
    "packages": [GUEST_AGENT_PACKAGE],
    "disk_gb": 8,
    "cores": 2,
    "memory_mb": 2048,
    "bridge": "vmbr0",
    "shared_storage": False,
    "bake_timeout_s": 1800,
}

AddProblem = Callable[[str, str, str], None]


class Reporter(Protocol):
    problems: list[Any]

    def add(self, where: str, field: str, message: str) -> None: ...


def template_label(index: int, raw: Any) -> str:
    if not isinstance(raw, dict):
        return f"templates[{index}]"
    bits = [f"vmid {raw['vmid']}" if isinstance(raw.get("vmid"), int) else None,
            raw["name"] if isinstance(raw.get("name"), str) else None]
    inner = ", ".join(b for b in bits if b)
    return f"templates[{index}] ({inner})" if inner else f"templates[{index}]"


def nodes_of(raw: dict[str, Any]) -> tuple[str, ...]:
    node = raw.get("node")
    return (node,) if isinstance(node, str) else tuple(n for n in node or () if isinstance(n, str))


def build_templates(raw_list: list[Any], images: dict[str, ImageConfig], report: Reporter,
                    skip: set[int]) -> list[TemplateConfig]:
    """Check every entry (schema-valid ones; `skip` holds the indexes the schema rejected)."""
    add = report.add
    out: list[TemplateConfig] = []
    names: dict[str, str] = {}
    vmids: dict[int, str] = {}
    for index, raw in enumerate(raw_list):
        if index in skip or not isinstance(raw, dict):
            continue
        where = template_label(index, raw)
        before = len(report.problems)
        entry = {**TEMPLATE_DEFAULTS, **raw}
        nodes = nodes_of(entry)
        for field, value in [("name", entry["name"])] + [
                (f"node[{k}]" if isinstance(entry["node"], list) else "node", n) for k, n in enumerate(nodes)]:
            message = rules.hostname_problem(value)
            if message:
                add(where, field, message)
        image = images.get(entry["image"])
        if image is None:
            known = ", ".join(sorted(images)) or "none defined"
            add(where, "image", f"{entry['image']!r} is not in images (known: {known})")
        elif image.node and any(n != image.node for n in nodes):
            add(where, "image", f"image {image.name!r} is only available on node {image.node!r}, "
                f"but the template is made on {', '.join(nodes)}")
        for k, package in enumerate(entry["packages"]):
            message = rules.package_problem(package)
            if message:
                add(where, f"packages[{k}]", message)
        if entry["name"].lower() in names:
            add(where, "name", f"{entry['name']!r} is already used by {names[entry['name'].lower()]}")
        names.setdefault(entry["name"].lower(), where)
        for node, vmid in ((n, entry["vmid"] + k) for k, n in enumerate(nodes)):
            if vmid in vmids:
                add(where, "vmid", f"{vmid} (the copy on node {node}) is already used by {vmids[vmid]}")
            vmids.setdefault(vmid, f"{where}, copy on {node}")
        if len(report.problems) > before:
            continue
        packages = list(dict.fromkeys([GUEST_AGENT_PACKAGE, *entry["packages"]]))
        out.append(TemplateConfig(
            index=index, vmid=entry["vmid"], name=entry["name"], nodes=nodes, image=entry["image"],
            storage=entry["storage"], packages=tuple(packages), disk_gb=entry["disk_gb"],
            cores=entry["cores"], memory_mb=entry["memory_mb"], bridge=entry["bridge"],
            vlan=entry.get("vlan"), snippet_storage=entry["snippet_storage"],
            shared_storage=entry["shared_storage"], bake_timeout_s=entry["bake_timeout_s"],
        ))
    return out


def find_template(templates: list[TemplateConfig], ref: Any) -> TemplateConfig | None:
    """The template `clone_from` refers to: by name, or by the vmid of any of its copies."""
    for template in templates:
        if isinstance(ref, str) and ref == template.name:
            return template
        if isinstance(ref, int) and not isinstance(ref, bool) and template.node_of(ref) is not None:
            return template
    return None


# The boot disk of every template this file makes (phoenix/resources/templates.py builds it).
TEMPLATE_BOOT_DISK = "scsi0"


def resolve_clone_source(where: str, vm: dict[str, Any], raw_vm: dict[str, Any],
                         templates: list[TemplateConfig], add: AddProblem,
                         raw_templates: list[Any] = ()) -> dict[str, Any]:
    """The VM's merged fields with clone_from resolved to a vmid; adds `_template`/`_clone_node`.

    Problems are reported through `add`; the returned dict is then not used.
    """
    ref = vm.get("clone_from")
    if ref is None:
        return vm
    template = find_template(templates, ref)
    if template is None:
        if any(isinstance(t, dict) and ref == t.get("name") for t in raw_templates):
            return vm  # a template with problems of its own: those are reported already
        if isinstance(ref, str):
            known = ", ".join(sorted(t.name for t in templates)) or "none defined"
            add(where, "clone_from", f"{ref!r} is not a template of this file (templates: {known}); "
                "give a template's name, or the vmid of a template made outside this file")
        return vm
    node = vm.get("node")
    if isinstance(ref, int) and template.node_of(ref) is not None:
        source_vmid, source_node = ref, template.node_of(ref)  # an explicit copy
    elif isinstance(node, str) and template.vmid_on(node) is not None:
        source_vmid, source_node = template.vmid_on(node), node
    else:
        source_node, source_vmid = template.copies[0]
    resolved = {**vm, "clone_from": source_vmid, "_template": template.name,
                "_clone_node": source_node if source_node != node else None}
    if source_node != node:
        problem = cross_node_clone_problem(template, str(node), vm.get("clone_mode"))
        if problem:
            add(where, "clone_from", problem)
    if vm.get("clone_mode") == "linked" and vm.get("storage") != template.storage:
        # The template's storage is known here: a linked clone's disk stays on it.
        add(where, "storage", f"a linked clone of template {template.name!r} keeps its disk on the "
            f"template's storage {template.storage!r}, not {vm.get('storage')!r}: set storage to "
            f"{template.storage!r}, or clone_mode: \"full\"")
    interface = vm.get("disk_interface", TEMPLATE_BOOT_DISK)
    if isinstance(interface, str) and interface != TEMPLATE_BOOT_DISK:
        # bpg's clone update attaches a *new, blank* disk when the VM's interface is not the
        # template's boot disk (proxmoxtf/resource/vm/vm.go, the clone path of create), applies
        # disk_gb to it, and its read keeps only interfaces in state: no diff ever shows it.
        add(where, "disk_interface", f"a clone of template {template.name!r} boots from its "
            f"{TEMPLATE_BOOT_DISK} disk; {interface!r} would get a second, blank disk: remove "
            f"disk_interface or set it to {TEMPLATE_BOOT_DISK!r}")
    ga = raw_vm.get("guest_agent")
    if not (isinstance(ga, dict) and "preinstalled" in ga):
        # The template has the agent baked in: the VM need not say so again.
        resolved["guest_agent"] = {**(vm.get("guest_agent") or {}), "preinstalled": True}
    return resolved


def cross_node_clone_problem(template: TemplateConfig, vm_node: str, clone_mode: Any) -> str | None:
    """A linked clone shares the template's base volume: the target node must reach it."""
    if clone_mode == "linked" and not template.shared_storage:
        return (f"a linked clone of template {template.name!r} (on {', '.join(template.nodes)}) "
                f"on node {vm_node!r} needs its storage {template.storage!r} on both nodes: add "
                f"{vm_node!r} to the template's node list, set shared_storage: true if "
                f"{template.storage!r} is shared, or use a full clone")
    return None
