"""The rebuild guard: read the engine's own preview and refuse a plan that would replace or
delete a VM, or anything holding a VM's data, that the user did not name.

It rests on the real engine, not on a model of it: the input is `pulumi preview --json`, a
`PreviewDigest` (pulumi pkg/display/json.go:31-77 at v3.254.0: `steps[]` of `PreviewStep` with
`op`, `urn`, `oldState`, `newState`, `diffReasons`, `replaceReasons`, `detailedDiff`), filled
per step by pkg/backend/display/json.go `getPreviewMetadataStep` (`replaceReasons` are the
engine's `Keys`, `oldState`/`newState` are `apitype.ResourceV3` with `inputs`). Step ops are
the engine's (pkg/resource/deploy/step.go `OpSame` ... `OpImportReplacement`).

What counts (issue 18; contract C1 of the parallel tasks):
- every `VmLegacy` (`vm-<vmid>-vm`, templates `template-<vmid>-vm` too) and every resource whose
  name starts `vm-<vmid>-data` (what holds a VM's data);
- replaced in any form (`replace`, `create-replacement`, `delete-replaced`,
  `import-replacement`) unless named with `--rebuild VMID`, or the VM opted in to rebuilds and
  its only replace reason is `description` (the rebuild digest);
- deleted (`delete`) unless named with `--delete VMID`;
- a VM that would be created or re-created with neither a `clone` nor a disk `fileId` is refused
  even when named: it would boot a blank disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phoenix.cloudinit.render import DIGEST_LABEL, LEGACY_DIGEST_LABEL

VM_TYPE = "proxmoxve:index/vmLegacy:VmLegacy"
REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "import-replacement"})
DELETE_OPS = frozenset({"delete"})
_VMID_NAME = re.compile(r"^(?:vm|template)-(\d+)-")
_DATA_NAME = re.compile(r"^vm-(\d+)-data")
# What the engine shows for a value it does not know yet in a preview (sdk/go/common/resource
# plugin.UnknownStringValue): a source that is being made in the same `up` (a new image file).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class PreviewUnreadable(Exception):
    """The preview's JSON is not a PreviewDigest."""


@dataclass
class ResourcePlan:
    """Every step of one URN, merged (a delete-first replacement is three steps)."""

    urn: str
    ops: set[str] = field(default_factory=set)
    replace_reasons: list[str] = field(default_factory=list)
    old_inputs: dict[str, Any] | None = None
    new_inputs: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def type(self) -> str:
        return self.urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1] if self.urn.count("::") >= 2 else ""

    @property
    def vmid(self) -> int | None:
        match = _VMID_NAME.match(self.name)
        if match:
            return int(match.group(1))
        for inputs in (self.old_inputs, self.new_inputs):
            if inputs and isinstance(inputs.get("vmId"), int):
                return int(inputs["vmId"])
        return None

    @property
    def holds_data(self) -> bool:
        """A data holder or its records (contract C1): never started, blank on purpose."""
        return bool(_DATA_NAME.match(self.name))

    @property
    def holds_vm(self) -> bool:
        return self.type == VM_TYPE or self.holds_data

    @property
    def replaced(self) -> bool:
        return bool(self.ops & REPLACE_OPS)

    @property
    def deleted(self) -> bool:
        return bool(self.ops & DELETE_OPS) and not self.replaced


@dataclass(frozen=True)
class Refusal:
    vmid: int | None
    name: str
    what: str  # "replace (delete-first)", "delete", "a rebuild without a source"
    reasons: tuple[str, ...]
    fix: str

    def line(self) -> str:
        vm = f"VM {self.vmid}" if self.vmid is not None else "a resource"
        because = f", because of: {', '.join(self.reasons)}" if self.reasons else ""
        return f"{vm} ({self.name}): {self.what}{because}; {self.fix}"


def merge_steps(digest: Mapping[str, Any]) -> dict[str, ResourcePlan]:
    """The digest's steps by URN."""
    steps = digest.get("steps") if isinstance(digest, Mapping) else None
    if steps is None:
        steps = []
    if not isinstance(steps, list):
        raise PreviewUnreadable("`steps` is not a list")
    plans: dict[str, ResourcePlan] = {}
    for step in steps:
        if not isinstance(step, Mapping) or not isinstance(step.get("urn"), str) \
                or not isinstance(step.get("op"), str):
            raise PreviewUnreadable(f"a step without `op`/`urn`: {str(step)[:120]}")
        plan = plans.setdefault(step["urn"], ResourcePlan(step["urn"]))
        plan.ops.add(step["op"])
        for reason in step.get("replaceReasons") or []:
            if reason not in plan.replace_reasons:
                plan.replace_reasons.append(str(reason))
        for key, attr in (("oldState", "old_inputs"), ("newState", "new_inputs")):
            state = step.get(key)
            if isinstance(state, Mapping) and isinstance(state.get("inputs"), Mapping):
                setattr(plan, attr, dict(state["inputs"]))
    return plans


def digest_redefined(plan: ResourcePlan) -> bool:
    """The old description carries the digest of the old definition (it held the stack's key)."""
    old = str((plan.old_inputs or {}).get("description") or "")
    new = str((plan.new_inputs or {}).get("description") or "")
    return LEGACY_DIGEST_LABEL in old and DIGEST_LABEL not in old and DIGEST_LABEL in new


def changes_boot_disk_interface(plan: ResourcePlan) -> bool:
    old = (plan.old_inputs or {}).get("disks") or []
    new = (plan.new_inputs or {}).get("disks") or []
    if old and new and isinstance(old[0], Mapping) and isinstance(new[0], Mapping):
        return old[0].get("interface") != new[0].get("interface")
    return False


def has_source(inputs: Mapping[str, Any] | None) -> bool:
    """A clone block with a vmId, or a disk made from a file (a known id, or one being made)."""
    if not inputs:
        return True  # nothing known to judge by: not this check's business
    clone = inputs.get("clone")
    if isinstance(clone, Mapping) and clone.get("vmId") not in (None, ""):
        return True
    disks = inputs.get("disks")
    return isinstance(disks, list) and any(
        isinstance(d, Mapping) and d.get("fileId") not in (None, "") for d in disks)


def check(digest: Mapping[str, Any], *, rebuild: Iterable[int] = (), delete: Iterable[int] = (),
          opted_in: Iterable[int] = ()) -> list[Refusal]:
    """Every step of the preview the user did not ask for, one Refusal each (empty: apply)."""
    rebuild, delete, opted_in = set(rebuild), set(delete), set(opted_in)
    refusals = []
    plans = merge_steps(digest)
    deleted_vms = {p.vmid for p in plans.values() if p.type == VM_TYPE and p.deleted}
    for plan in plans.values():
        if not plan.holds_vm:
            continue
        vmid = plan.vmid
        creates = plan.replaced or "create" in plan.ops
        if plan.type == VM_TYPE and creates and not plan.holds_data and not has_source(plan.new_inputs):
            refusals.append(Refusal(vmid, plan.name, "would be made with neither a clone nor an image "
                                    "(a blank disk)", tuple(plan.replace_reasons),
                                    "give it `clone_from` or `image` in the config; nothing was deleted"))
            continue
        source = (plan.new_inputs or {}).get("clone") if plan.type == VM_TYPE and creates else None
        if isinstance(source, Mapping) and source.get("vmId") in deleted_vms:
            refusals.append(Refusal(vmid, plan.name, f"would be cloned from VM {source['vmId']}, which this "
                                    "up deletes", tuple(plan.replace_reasons),
                                    "keep the template until no VM is made from it; nothing was deleted"))
            continue
        if plan.replaced:
            only_digest = plan.replace_reasons == ["description"]
            if vmid in rebuild:
                continue
            if vmid in opted_in and only_digest and digest_redefined(plan):
                refusals.append(Refusal(vmid, plan.name, "would be replaced because the rebuild digest's "
                                        "definition changed with this Phoenix version (the stack's SSH key "
                                        "left it), not because of an edit", ("description",),
                                        f"to keep it: scripts/up.sh --keep {vmid} (updates the "
                                        f"digest in place); to rebuild it: scripts/up.sh --rebuild {vmid}"))
                continue
            if vmid in opted_in and only_digest:
                continue
            fix = (f"to rebuild it: scripts/up.sh --rebuild {vmid}" if vmid is not None
                   else "undo the edit that replaces it")
            if vmid in opted_in:  # its source is not ignored: a new source asks for a rebuild
                fix += f" (or, to leave it as it is this time: --keep {vmid})"
            refusals.append(Refusal(vmid, plan.name, "would be replaced (deleted, then made again)",
                                    tuple(plan.replace_reasons), fix))
        elif plan.type == VM_TYPE and "update" in plan.ops and changes_boot_disk_interface(plan):
            # bpg cannot move the boot disk to another interface in place ("cannot delete boot
            # disk"): the update would fail, and every later `up` with it (issue 18 case 9).
            refusals.append(Refusal(vmid, plan.name, "would move its boot disk to another interface in "
                                    "place, which the provider cannot do", ("disks[0].interface",),
                                    f"put disk_interface back, or rebuild it: scripts/up.sh "
                                    f"--rebuild {vmid}"))
        elif plan.deleted and vmid not in delete:
            kept = " (its data disks stay on PVE: `phoenix data delete` removes them)" \
                if plan.holds_data else ""
            refusals.append(Refusal(vmid, plan.name, f"would be deleted{kept}", (),
                                    f"to delete it: scripts/up.sh --delete {vmid}"
                                    if vmid is not None else "put it back in the config"))
    return refusals


def named_but_untouched(digest: Mapping[str, Any], rebuild: Iterable[int]) -> list[int]:
    """vmids named with --rebuild whose VM the preview does not replace."""
    replaced = {p.vmid for p in merge_steps(digest).values() if p.type == VM_TYPE and p.replaced}
    return sorted(set(rebuild) - replaced)


def recorded_source(inputs: Mapping[str, Any] | None) -> str | None:
    """"clone 9000" / "image debian-12-1a2b3c4d.img" from a VM's inputs in the state."""
    if not inputs:
        return None
    clone = inputs.get("clone")
    if isinstance(clone, Mapping) and clone.get("vmId") is not None:
        return f"clone {clone['vmId']}"
    for disk in inputs.get("disks") or []:
        if isinstance(disk, Mapping) and isinstance(disk.get("fileId"), str) and disk["fileId"]:
            return f"image {disk['fileId'].rsplit('/', 1)[-1]}"
    return None


def source_changes(digest: Mapping[str, Any], wanted: Mapping[int, str]) -> list[str]:
    """VMs that stay as they are although the config names another source (a new template or
    image version, an image<->clone switch): the source is ignored until the VM is rebuilt."""
    notes = []
    for plan in merge_steps(digest).values():
        if plan.type != VM_TYPE or plan.replaced or plan.vmid not in wanted:
            continue
        was = recorded_source(plan.old_inputs)
        if was is not None and was != wanted[plan.vmid]:
            notes.append(f"VM {plan.vmid} ({plan.name}) was made from {was}, the config now names "
                         f"{wanted[plan.vmid]}: nothing to apply until it is rebuilt "
                         f"(scripts/up.sh --rebuild {plan.vmid})")
    return notes


def replaced_vmids(digest: Mapping[str, Any]) -> list[int]:
    """Every VM the (checked) plan replaces: PHOENIX_REPLACING for the features' delete."""
    return sorted({p.vmid for p in merge_steps(digest).values()
                   if p.type == VM_TYPE and p.replaced and p.vmid is not None})
