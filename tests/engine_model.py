"""The engine's rules for a two-run plan (config v1 -> v2 under Pulumi's mock engine), each
applied as the engine source does it, with the line it rests on. Versions read: pulumi
v3.207.0, v3.254.0, v3.259.0 (the supported range starts at phoenix/pulumi_version.py's
minimum) and master after #23818 (5cd93859e8, merged 2026-08-21, in no release up to v3.259.0).

What the *provider* answers comes from the caller: a table of ForceNew inputs for bpg's
resources, the dynamic providers' own `diff` for ours (test_lifecycle_plan.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """"disks[0].fileId" -> ["disks", 0, "fileId"] (sdk/go/common/resource/properties_path.go
    ParsePropertyPath, the simple forms the program uses)."""
    return [int(i) if i else name for name, i in _PATH_PART.findall(path)]


def reset_ignored(old: Mapping[str, Any], new: Mapping[str, Any], ignore_changes: list[str]) -> dict[str, Any]:
    """The new inputs after `ignoreChanges`: pkg/resource/deploy/step_generator.go
    `processIgnoreChanges` (:2731 v3.207.0, :2964 v3.254.0, :3028 v3.259.0) calls
    `PropertyPath.Reset(oldInputs, newInputs)` per path; its leaf case
    (sdk/go/common/resource/properties_path.go `reset`, ~:505-525 at v3.254.0) copies the old
    value, and **deletes the key from new when old lacks it**. A path that cannot be walked
    (an added/removed element) is left alone with an info message ("cannot ignore changes")."""
    result = copy.deepcopy(dict(new))
    for path in ignore_changes:
        parts = parse_path(path)
        old_node: Any = old
        new_node: Any = result
        ok = True
        for part in parts[:-1]:
            if isinstance(part, int):
                if not (isinstance(old_node, list) and isinstance(new_node, list)
                        and part < len(old_node) and part < len(new_node)):
                    ok = False
                    break
            elif not (isinstance(old_node, dict) and isinstance(new_node, dict)
                      and part in old_node and part in new_node):
                ok = False
                break
            old_node, new_node = old_node[part], new_node[part]
        leaf = parts[-1]
        if not ok or not isinstance(new_node, dict) or isinstance(leaf, int):
            continue
        if isinstance(old_node, dict) and leaf in old_node:
            new_node[leaf] = copy.deepcopy(old_node[leaf])
        else:
            new_node.pop(leaf, None)
    return result


def values_at(inputs: Mapping[str, Any], path: str) -> list[Any]:
    """Values at a table path ("a.b", "a[].b": any list element)."""
    values: list[Any] = [inputs]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part[:-2] if many else part
        nxt: list[Any] = []
        for v in values:
            if isinstance(v, dict) and key in v:
                nxt.extend(v[key] if many and isinstance(v[key], list) else [v[key]])
        values = nxt
    return values


@dataclass
class Decision:
    action: str  # create / delete / replace / update / same
    reasons: list[str] = field(default_factory=list)
    inputs: dict[str, Any] | None = None  # what the engine sends the provider (after ignore)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in set(old) | set(new) if k != "__provider" and old.get(k) != new.get(k)}


def decide_custom(old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any], *, ignore_changes: list[str],
                  replace_on_changes: list[str], force_new: Mapping[str, str],
                  no_force: Callable[[str, Mapping[str, Any]], bool] = lambda p, i: False) -> Decision:
    """One resource of a bridged provider: ignore (above), then the provider's diff (ForceNew
    table), then `replaceOnChanges`: step_generator.go `diff` turns a change of a listed key into
    a replacement whatever the provider said (step_generator.go `applyReplaceOnChanges`, :3037,
    called at :1922 at v3.254.0; :2804/:1747 at v3.207.0)."""
    news = reset_ignored(old_inputs, new_inputs, ignore_changes)
    reasons = [path for path in force_new
               if not no_force(path, news) and values_at(old_inputs, path) != values_at(news, path)]
    changed = changed_keys(old_inputs, news)
    reasons += [k for k in replace_on_changes if k in changed and k not in reasons]
    if reasons:
        return Decision("replace", reasons, news)
    return Decision("update" if changed else "same", [], news)


def cascade_replace_with(decisions: dict[str, Decision], replace_with: Mapping[str, list[str]],
                         deleted_with: Mapping[str, str], *, cli: tuple[int, int, int]) -> None:
    """`replaceWith`: a resource is replaced when a resource in its list is (step_generator.go
    :2893-2902 at v3.259.0, reason "replaceWith"), transitively. After #23818 (not in any
    release <= v3.259.0) also when its `deletedWith` target is (reason "deletedWith")."""
    changed = True
    while changed:
        changed = False
        for urn, decision in decisions.items():
            if decision.action in ("replace", "create", "delete"):
                continue
            targets = list(replace_with.get(urn, []))
            if cli > (3, 259, 0) and deleted_with.get(urn):
                targets.append(deleted_with[urn])
            hit = [t for t in targets if decisions.get(t) and decisions[t].action == "replace"]
            if hit:
                decision.action = "replace"
                decision.reasons.append("replaceWith" if set(hit) & set(replace_with.get(urn, []))
                                        else "deletedWith")
                changed = True


def provider_deletes(decisions: Mapping[str, Decision], deleted_with: Mapping[str, str],
                     retain_on_delete: Mapping[str, bool], *, cli: tuple[int, int, int]) -> set[str]:
    """URNs whose provider Delete really runs. step.go DeleteStep.Apply (:640-670 at v3.259.0)
    skips it for RetainOnDelete, and when `isDeletedWith(old.DeletedWith, otherDeletions)`
    (:603): the target is marked in the step generator's `deletes` map. A removed target is
    always marked (GenerateDeletes, step_generator.go :2461). A target replaced delete-first is
    marked only after #23818 (`sg.deletes[old.URN] = true` before its DeleteReplacementStep);
    up to v3.259.0 it is not (step_generator.go :2140-2146), so the dependents' deletes,
    scheduled first in reverse dependency order (:2081-2129), run against the old resource."""
    gone = {u for u, d in decisions.items() if d.action == "delete"}
    if cli > (3, 259, 0):
        gone |= {u for u, d in decisions.items() if d.action == "replace"}
    return {u for u, d in decisions.items() if d.action in ("delete", "replace")
            and not retain_on_delete.get(u) and deleted_with.get(u) not in gone}


def delete_order(deleted: list[str], dependencies: Mapping[str, list[str]]) -> list[list[str]]:
    """The engine's schedule for deletes: antichains in *reverse* dependency order, so a
    resource is deleted only after everything that depends on it (step_generator.go
    `ScheduleDeletes`, :2681-2727 at v3.254.0: antichains built in dependency order, then
    `slices.Reverse`). `dependencies`: URN -> URNs it depends on."""
    todo = set(deleted)
    levels: list[list[str]] = []
    while todo:
        # resources none of whose remaining dependencies is still to be placed
        level = sorted(u for u in todo if not (set(dependencies.get(u, [])) & (todo - {u})))
        if not level:  # a cycle cannot be in a valid state; keep the rest together
            level = sorted(todo)
        levels.append(level)
        todo -= set(level)
    return list(reversed(levels))
