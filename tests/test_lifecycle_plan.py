"""Two runs of the program under Pulumi's mock engine (config v1, then v2): what would `up` do?

No engine is re-implemented. Each registration carries what the engine decides with: the inputs,
`ignoreChanges`, `replaceOnChanges`, `deleteBeforeReplace`, `replaceWith`, `deletedWith`. What
the *provider* would answer is taken from two places:
- for bpg's resources, the small table below of the inputs that force a new resource, each read
  in bpg/terraform-provider-proxmox (commit d6bd1ffe, July 2026; file and line beside it);
- for our dynamic resources, their own `diff` (called directly: the mock engine never runs it).
`plan()` answers per URN: create / delete / replace / update / same. The assertions are the
lifecycle promises: no VM is replaced unless its config opted in; every VM replacement is
delete-first; no two resources claim one PVE object (vmid, file name).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from pulumi_harness import ProgramRun, Registration, run_program

from phoenix.config import build_config
from phoenix.features.provider import FeatureProvider, _safe_expected_marker
from phoenix.readiness.provider import GuestAgentReadyProvider

VM = "proxmoxve:index/vmLegacy:VmLegacy"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
DOWNLOAD = "proxmoxve:download/file:File"
READY = "pulumi-python:dynamic/phoenix:GuestAgentReady"
FEATURE = "pulumi-python:dynamic/phoenix:Feature"

# Inputs (Pulumi names; "a.b" = nested, "a[].b" = in any list element) whose change makes bpg
# plan a new resource.
FORCE_NEW: dict[str, dict[str, str]] = {
    VM: {
        "vmId": "proxmoxtf/resource/vm/vm.go:1767 customdiff.ForceNewIf(mkVMID, ...)",
        # unless migrate = true: vm.go:1781-1789 ForceNewIf(mkNodeName, ... !d.Get(mkMigrate))
        "nodeName": "proxmoxtf/resource/vm/vm.go:1781",
        "clone": "proxmoxtf/resource/vm/vm.go:605-633 (retries, datastore_id, node_name, vm_id, full)",
        "disks[].fileId": "proxmoxtf/resource/vm/disk/schema.go:136-140",
        "initialization.userDataFileId": "proxmoxtf/resource/vm/vm.go:999",
        "initialization.networkDataFileId": "proxmoxtf/resource/vm/vm.go:1015",
        "initialization.metaDataFileId": "proxmoxtf/resource/vm/vm.go:1023",
    },
    SNIPPET: {  # every input of the file resource is ForceNew; its Update is a no-op
        "sourceRaw": "proxmoxtf/resource/file.go:190-216; fileUpdate file.go:1023",
        "nodeName": "proxmoxtf/resource/file.go:84-136",
        "datastoreId": "proxmoxtf/resource/file.go:84-136",
        "contentType": "proxmoxtf/resource/file.go:84-136",
    },
    DOWNLOAD: {
        "fileName": "fwprovider/nodes/resource_download_file.go:228-237 RequiresReplace",
        "datastoreId": "fwprovider/nodes/resource_download_file.go:241-245",
        "nodeName": "fwprovider/nodes/resource_download_file.go:248-252",
        "url": "fwprovider/nodes/resource_download_file.go:271-278",
        "checksum": "fwprovider/nodes/resource_download_file.go:281-286",
    },
}
DYNAMIC = {READY: GuestAgentReadyProvider, FEATURE: FeatureProvider}


def _get(inputs: dict[str, Any], path: str) -> list[Any]:
    """Values at a table path ("a.b", "a[].b") in the inputs."""
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


def _ignored(path: str, ignore_changes: list[str]) -> bool:
    """ignore_changes as the program registers them: "clone", "disks[0].fileId"."""
    flat = path.replace("[]", "[0]")
    return any(flat == i or flat.startswith(i + ".") or flat.startswith(i + "[") for i in ignore_changes)


def _changed_top_keys(old: Registration, new: Registration) -> set[str]:
    keys = set(old.inputs) | set(new.inputs)
    return {k for k in keys if k != "__provider" and old.inputs.get(k) != new.inputs.get(k)}


def decide(old: Registration, new: Registration) -> str:
    """"replace", "update" or "same" for one resource in both runs (before replaceWith)."""
    if new.type in DYNAMIC:
        olds = dict(old.inputs)  # the old outputs echo the inputs, plus what create recorded:
        if new.type == FEATURE:
            olds["marker"] = _safe_expected_marker(old.inputs)
        news = dict(new.inputs)
        diff = DYNAMIC[new.type]().diff("id", olds, news)
        if diff.replaces:
            return "replace"
        return "update" if diff.changes else "same"
    table = FORCE_NEW.get(new.type, {})
    changed = _changed_top_keys(old, new)
    for path in table:
        if _ignored(path, new.ignore_changes):
            continue
        if path == "nodeName" and new.inputs.get("migrate") is True:
            continue
        if _get(old.inputs, path) != _get(new.inputs, path):
            return "replace"
    if set(new.replace_on_changes) & changed:
        return "replace"
    # an ignored input keeps its old value: not a change at all
    for ignored in new.ignore_changes:
        top, _, rest = ignored.partition("[0].")
        if not rest:
            changed.discard(ignored)
        elif top in changed and _without(old.inputs.get(top), rest) == _without(new.inputs.get(top), rest):
            changed.discard(top)
    return "update" if changed else "same"


def _without(items: Any, key: str) -> Any:
    return [{k: v for k, v in item.items() if k != key} for item in items or []]


def plan(v1: ProgramRun, v2: ProgramRun) -> dict[str, str]:
    """URN -> create / delete / replace / update / same, with replaceWith cascaded."""
    old = {r.urn: r for r in v1.registrations if r.type not in ("pulumi:pulumi:Stack",)}
    new = {r.urn: r for r in v2.registrations if r.type not in ("pulumi:pulumi:Stack",)}
    result = {urn: "delete" for urn in old.keys() - new.keys()}
    result.update({urn: "create" for urn in new.keys() - old.keys()})
    for urn in old.keys() & new.keys():
        result[urn] = decide(old[urn], new[urn])
    replaced = {u for u, what in result.items() if what == "replace"}
    for urn in old.keys() & new.keys():
        if set(new[urn].replace_with) & replaced:
            result[urn] = "replace"
    return result


def runs(doc: dict, edit, key: str) -> tuple[ProgramRun, ProgramRun, dict[str, str]]:
    v1 = run_program(build_config(doc), key)
    doc2 = copy.deepcopy(doc)
    edit(doc2)
    v2 = run_program(build_config(doc2), key)
    return v1, v2, plan(v1, v2)


def _named(run: ProgramRun, name: str) -> str:
    return run.named(name).urn


def _vm_actions(run: ProgramRun, result: dict[str, str]) -> dict[str, str]:
    return {r.name: result[r.urn] for r in run.of_type(VM)}


def assert_invariants(v1: ProgramRun, v2: ProgramRun, result: dict[str, str], opted_in: set[str] = frozenset()):
    for reg in v2.of_type(VM):
        assert reg.delete_before_replace, f"{reg.name}: a VM replacement must be delete-first"
        if result.get(reg.urn) == "replace":
            assert reg.name in opted_in, f"{reg.name} would be rebuilt without opting in"
    for run in (v1, v2):
        vmids = Counter(r.inputs["vmId"] for r in run.of_type(VM))
        assert all(n == 1 for n in vmids.values()), vmids
        files = Counter((r.inputs["nodeName"], r.inputs["datastoreId"],
                         r.inputs.get("fileName") or r.inputs["sourceRaw"]["fileName"])
                        for r in run.of_type(SNIPPET) + run.of_type(DOWNLOAD))
        assert all(n == 1 for n in files.values()), files
    # a create-before-delete replacement of a file resource must not reuse the file name
    old_files = {r.urn: r for r in v1.of_type(DOWNLOAD) + v1.of_type(SNIPPET)}
    for reg in v2.of_type(DOWNLOAD) + v2.of_type(SNIPPET):
        if result.get(reg.urn) == "replace" and not reg.delete_before_replace:
            before = old_files[reg.urn]
            assert (before.inputs.get("fileName") != reg.inputs.get("fileName")), reg.name


@pytest.fixture
def key(pulumi_private_key):
    return pulumi_private_key


def test_second_run_without_edits_changes_nothing(doc, key):
    v1, v2, result = runs(doc, lambda d: None, key)
    assert set(result.values()) == {"same"}, {u: a for u, a in result.items() if a != "same"}
    assert_invariants(v1, v2, result)


def test_edit_packages_updates_only_that_vms_converge_step(doc, key):
    """edits: "in-place" (the default): the VM's converge step is updated (it runs over SSH),
    its snippet is replaced for the next rebuild; no VM is replaced, nothing else re-runs."""
    v1, v2, result = runs(doc, lambda d: d["vms"][0]["packages"].append("jq"), key)
    changed = {v2.by_urn(u).name: a for u, a in result.items() if a != "same"}
    assert changed == {"vm-8001-user-data": "replace", "vm-8001-converge": "update"}
    assert v2.named("vm-8001-user-data").delete_before_replace
    assert v2.named("vm-8001-converge").inputs["params"]["packages"].split()[-1] == "jq"
    assert result[_named(v2, "vm-8002-converge")] == "same"
    assert_invariants(v1, v2, result)


@pytest.mark.parametrize("field", ["keys", "timezone"])
def test_edit_keys_or_timezone_updates_only_the_converge_step(doc, key, field):
    new_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm new@admin"

    def edit(d):
        if field == "keys":
            d["vms"][1]["user"] = {**d["vms"][1].get("user", {}), "ssh_authorized_keys": [new_key]}
        else:
            d["vms"][1]["timezone"] = "Europe/Berlin"

    v1, v2, result = runs(doc, edit, key)
    changed = {v2.by_urn(u).name: a for u, a in result.items() if a != "same"}
    assert changed == {"vm-8002-user-data": "replace", "vm-8002-converge": "update"}
    params = v2.named("vm-8002-converge").inputs["params"]
    if field == "keys":  # exactly the list, plus the key Phoenix logs in with
        assert params["keys"].splitlines() == [new_key, params["login_key"]]
        assert params["login_key"].startswith("ssh-ed25519 ")
    else:
        assert params["timezone"] == "Europe/Berlin"
    assert_invariants(v1, v2, result)


def test_a_first_boot_only_edit_updates_the_converge_step_to_warn(doc, key):
    """network_config.gateway/dns etc. cannot converge: the step's update warns (docs/edits.md);
    still no VM replaced, no feature re-run."""
    v1, v2, result = runs(doc, lambda d: d["vms"][0]["network_config"].update(dns=["10.0.0.53"]), key)
    changed = {v2.by_urn(u).name: a for u, a in result.items() if a != "same"}
    assert changed == {"vm-8001-network-config": "replace", "vm-8001-converge": "update"}
    assert_invariants(v1, v2, result)


def test_converge_runs_after_readiness_and_before_the_features(doc, key):
    run = run_program(build_config(doc), key)
    converge, ready = run.named("vm-8001-converge"), run.named("vm-8001-ready")
    assert converge.inputs["feature"] == "converge"
    assert ready.urn in converge.dependencies
    assert converge.property_dependencies["host"] == [ready.urn]  # the as-built address
    assert converge.urn in run.named("vm-8001-feature-docker").dependencies
    vm = run.named("vm-8001-vm")
    assert converge.replace_with == [vm.urn] and converge.deleted_with == vm.urn


@pytest.mark.parametrize("policy", ["seed-only", "rebuild"])
def test_seed_only_and_rebuild_have_no_converge_step(doc, key, policy):
    doc["vms"][0]["edits"] = policy
    v1, v2, result = runs(doc, lambda d: d["vms"][0]["packages"].append("jq"), key)
    assert not [r for r in v2.registrations if r.name == "vm-8001-converge"]
    changed = {v2.by_urn(u).name for u, a in result.items() if a != "same"}
    if policy == "seed-only":  # today's behaviour: only the snippet changes
        assert changed == {"vm-8001-user-data"}
        assert_invariants(v1, v2, result)
    else:  # the old recreate_on_cloud_init_change: true
        assert _vm_actions(v2, result) == {"vm-8001-vm": "replace", "vm-8002-vm": "same"}
        assert_invariants(v1, v2, result, opted_in={"vm-8001-vm"})


def test_turning_in_place_off_deletes_only_the_converge_step(doc, key):
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(edits="seed-only"), key)
    changed = {(v1.by_urn(u) if a == "delete" else v2.by_urn(u)).name: a
               for u, a in result.items() if a != "same"}
    assert changed == {"vm-8001-converge": "delete"}  # no delete script: no SSH (ssh.md)
    assert_invariants(v1, v2, result)


def test_edit_ip_keeps_the_vm_and_features_use_the_as_built_address(doc, key):
    v1, v2, result = runs(doc, lambda d: d["vms"][0]["network_config"].update(ip="10.0.0.151/24"), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8002-vm": "same"}
    assert result[_named(v2, "vm-8001-network-config")] == "replace"
    assert result[_named(v2, "vm-8001-ready")] == "update"  # expected_ip changed: warns, keeps as-built
    feature = v2.named("vm-8001-feature-docker")
    ready = v2.named("vm-8001-ready")
    # the feature's address comes from readiness (the as-built ip), not from the config
    assert feature.property_dependencies["host"] == [ready.urn]
    assert feature.property_dependencies["username"] == [ready.urn]
    assert_invariants(v1, v2, result)


def test_remove_a_vm_in_the_middle_of_a_clone_chain(doc, key):
    base = doc["vms"][0]
    doc["vms"] = [dict(copy.deepcopy(base), vmid=8001 + i, name=f"clone-{i}",
                       network_config={"ip": f"10.0.0.{101 + i}/24"}) for i in range(3)]
    v1, v2, result = runs(doc, lambda d: d["vms"].pop(1), key)
    gone = {v1.by_urn(u).name for u, a in result.items() if a == "delete"}
    assert {n for n in gone if n.endswith("-vm")} == {"vm-8002-vm"}
    assert all(n.startswith("vm-8002") for n in gone), gone
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8003-vm": "same"}
    # deleting the VM skips its readiness/feature deletes (nothing left to undo, no SSH)
    for name in ("vm-8002-ready", "vm-8002-feature-docker"):
        assert v1.named(name).deleted_with == v1.named("vm-8002-vm").urn
    assert_invariants(v1, v2, result)


def test_change_an_image_url_gets_a_new_file_and_keeps_the_vms(doc, key):
    image = doc["vms"][1]["image"]
    v1, v2, result = runs(doc, lambda d: d["images"][image].update(url="https://example.test/new.img"), key)
    download = v2.of_type(DOWNLOAD)[0]
    assert result[download.urn] == "replace"
    assert download.inputs["fileName"] != v1.of_type(DOWNLOAD)[0].inputs["fileName"]
    assert download.retain_on_delete  # VMs made from the old file can still be rebuilt from it
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8002-vm": "same"}
    assert_invariants(v1, v2, result)


def test_rename_a_vm_is_an_update(doc, key):
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(name="phoenix-docker-renamed"), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "update", "vm-8002-vm": "same"}
    assert v2.named("vm-8001-vm").inputs["name"] == "phoenix-docker-renamed"
    assert_invariants(v1, v2, result)


def test_toggle_protect_changes_no_resource(doc, key):
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(protect=True), key)
    assert v2.named("vm-8001-vm").protect and not v1.named("vm-8001-vm").protect
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8002-vm": "same"}
    assert_invariants(v1, v2, result)


def test_move_a_vm_to_another_node_migrates_it(doc, key):
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(node="pve2"), key)
    vm = v2.named("vm-8001-vm")
    assert vm.inputs["nodeName"] == "pve2" and vm.inputs["migrate"] is True
    assert result[vm.urn] == "update"  # not a rebuild (clone.* is ignored: it only mattered at create)
    assert result[_named(v2, "vm-8001-ready")] == "update"
    for part in ("user-data", "network-config", "meta-data"):  # snippets move, delete-first
        assert result[_named(v2, f"vm-8001-{part}")] == "replace"
    assert_invariants(v1, v2, result)


def test_opt_in_to_rebuild_replaces_delete_first_with_readiness_and_features(doc, key):
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1, v2, result = runs(doc, lambda d: d["vms"][0]["packages"].append("jq"), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "replace", "vm-8002-vm": "same"}
    vm = v2.named("vm-8001-vm")
    assert vm.delete_before_replace and vm.replace_on_changes == ["description"]
    # the VM's id (= vmid) does not change on a replace: readiness and features are replaced
    # through replaceWith, not through an input
    assert result[_named(v2, "vm-8001-ready")] == "replace"
    assert result[_named(v2, "vm-8001-feature-docker")] == "replace"
    assert v2.named("vm-8001-ready").inputs["vm_resource_id"] == v1.named("vm-8001-ready").inputs["vm_resource_id"]
    assert_invariants(v1, v2, result, opted_in={"vm-8001-vm"})


def test_without_opt_in_the_invariant_catches_a_rebuild(doc, key):
    """The checker itself can fail: a VM whose vmid changes is a replacement nobody opted in to."""
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(vmid=8101), key)
    with pytest.raises(AssertionError):
        # the old VM disappears and a new one appears: compare the new VM against the old one
        assert_invariants(v1, v2, {v2.named("vm-8101-vm").urn: decide(v1.named("vm-8001-vm"),
                                                                       v2.named("vm-8101-vm"))})


def test_change_a_vms_size_is_an_update_in_place(doc, key):
    def bigger(d):
        d["vms"][0].update(cores=8, memory_mb=8192, disk_gb=128)

    v1, v2, result = runs(doc, bigger, key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "update", "vm-8002-vm": "same"}
    changed = {v2.by_urn(u).name for u, a in result.items() if a != "same"}
    assert changed == {"vm-8001-vm"}  # no snippet, readiness or feature touched
    assert_invariants(v1, v2, result)


def test_rotate_admin_keys_through_the_feature_updates_it_in_place(doc, key):
    old_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF old@admin"
    new_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm new@admin"
    doc["vms"][0]["features"] = ["docker", {"name": "authorized-keys", "params": {"keys": old_key}}]

    def rotate(d):
        d["vms"][0]["features"][1]["params"]["keys"] = new_key

    v1, v2, result = runs(doc, rotate, key)
    changed = {v2.by_urn(u).name: a for u, a in result.items() if a != "same"}
    assert changed == {"vm-8001-feature-authorized-keys": "update"}  # runs over SSH, no rebuild
    assert_invariants(v1, v2, result)


def test_migrating_to_the_edits_spelling_changes_nothing(doc, key):
    """`recreate_on_cloud_init_change: true` -> `"edits": "rebuild"`: the same registrations."""
    doc["vms"][0]["recreate_on_cloud_init_change"] = True

    def migrate(d):
        del d["vms"][0]["recreate_on_cloud_init_change"]
        d["vms"][0]["edits"] = "rebuild"

    v1, v2, result = runs(doc, migrate, key)
    assert set(result.values()) == {"same"}, {u: a for u, a in result.items() if a != "same"}
    assert v2.named("vm-8001-vm").replace_on_changes == ["description"]
