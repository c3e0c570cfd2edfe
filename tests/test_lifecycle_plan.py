"""Two runs of the program under Pulumi's mock engine (config v1, then v2): what would `up` do?

Each registration carries what the engine decides with: the inputs, `ignoreChanges`,
`replaceOnChanges`, `deleteBeforeReplace`, `replaceWith`, `deletedWith`. The engine's rules are
applied as its source does (tests/engine_model.py, each rule citing its line: ignoreChanges
`Reset`, replaceOnChanges, the replaceWith cascade, deletedWith by CLI version, delete order).
What the *provider* would answer is taken from two places:
- for bpg's resources, the table below of the inputs that force a new resource, checked at
  bpg/terraform-provider-proxmox v0.111.1 (b22fe919, 2026-07-03; file and line beside each).
  Which bpg pulumi-proxmoxve 8.6.0 wraps: its provider/go.mod. The stored snapshot of
  muhlba91/pulumi-proxmoxve ends at tag v8.3.0 (2026-07-05), whose provider/go.mod:8 requires
  `github.com/bpg/terraform-provider-proxmox v0.111.1`, as does its newest commit (2026-07-24);
  the 8.6.0 tag is not in the snapshot and the SDK wheel does not name the bpg version, so
  8.6.0 wraps v0.111.1 *or later*: a line here may have moved in a later bpg;
- for our dynamic resources, their own `diff` (called directly: the mock engine never runs it).
`plan()` answers per URN: create / delete / replace / update / same. The assertions are the
lifecycle promises (assert_invariants): no VM is replaced unless its config opted in or it was
named; every VM replacement is delete-first; every VM that would be (re)created has a source;
no VM refers to a snippet or image file the new program no longer manages; no two resources
claim one PVE object (vmid, file name).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

import pytest
from engine_model import (
    Decision,
    cascade_replace_with,
    decide_custom,
    delete_order,
    provider_deletes,
    values_at,
)
from pulumi_harness import ProgramRun, Registration, run_program

from phoenix.config import build_config
from phoenix.features.provider import FeatureProvider, _safe_expected_marker
from phoenix.readiness.provider import GuestAgentReadyProvider

VM = "proxmoxve:index/vmLegacy:VmLegacy"
DATA_HOLDER = re.compile(r"^vm-\d+-data")  # contract C1: what holds a VM's data
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
        "initialization.vendorDataFileId": "proxmoxtf/resource/vm/vm.go:1007",
        "initialization.networkDataFileId": "proxmoxtf/resource/vm/vm.go:1015",
        "initialization.metaDataFileId": "proxmoxtf/resource/vm/vm.go:1023",
        "initialization.type": "proxmoxtf/resource/vm/vm.go:1031",
        "amdSev": "proxmoxtf/resource/vm/vm.go:458",
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


SUPPORTED_CLI = (3, 254, 0)  # phoenix/pulumi_version.py MIN_PULUMI_CLI


def _no_force(path: str, inputs: dict[str, Any]) -> bool:
    # node_name forces a new VM unless migrate = true (vm.go:1781-1789)
    return path == "nodeName" and inputs.get("migrate") is True


def decide_detail(old: Registration, new: Registration) -> Decision:
    """One resource in both runs (before the replaceWith cascade)."""
    if new.type in DYNAMIC:
        olds = dict(old.inputs)  # the old outputs echo the inputs, plus what create recorded:
        if new.type == FEATURE:
            olds["marker"] = _safe_expected_marker(old.inputs)
        news = dict(new.inputs)
        diff = DYNAMIC[new.type]().diff("id", olds, news)
        if diff.replaces:
            return Decision("replace", list(diff.replaces), news)
        return Decision("update" if diff.changes else "same", [], news)
    return decide_custom(old.inputs, new.inputs, ignore_changes=new.ignore_changes,
                         replace_on_changes=new.replace_on_changes,
                         force_new=FORCE_NEW.get(new.type, {}), no_force=_no_force)


def decide(old: Registration, new: Registration) -> str:
    """"replace", "update" or "same" for one resource in both runs (before replaceWith)."""
    return decide_detail(old, new).action


def plan_details(v1: ProgramRun, v2: ProgramRun, *, cli: tuple[int, int, int] = SUPPORTED_CLI) -> dict[str, Decision]:
    old = {r.urn: r for r in v1.registrations if r.type not in ("pulumi:pulumi:Stack",)}
    new = {r.urn: r for r in v2.registrations if r.type not in ("pulumi:pulumi:Stack",)}
    result = {urn: Decision("delete") for urn in old.keys() - new.keys()}
    result.update({urn: Decision("create", [], dict(new[urn].inputs)) for urn in new.keys() - old.keys()})
    for urn in old.keys() & new.keys():
        result[urn] = decide_detail(old[urn], new[urn])
    cascade_replace_with(result, {u: r.replace_with for u, r in new.items()},
                         {u: r.deleted_with for u, r in new.items()}, cli=cli)
    return result


def plan(v1: ProgramRun, v2: ProgramRun, *, cli: tuple[int, int, int] = SUPPORTED_CLI) -> dict[str, str]:
    """URN -> create / delete / replace / update / same, with replaceWith cascaded."""
    return {urn: d.action for urn, d in plan_details(v1, v2, cli=cli).items()}


def deletes_that_run(v1: ProgramRun, v2: ProgramRun, *, cli: tuple[int, int, int] = SUPPORTED_CLI) -> set[str]:
    """Names of the resources whose provider Delete runs in the v1 -> v2 `up`."""
    details = plan_details(v1, v2, cli=cli)
    old = {r.urn: r for r in v1.registrations}
    urns = provider_deletes(details, {u: r.deleted_with for u, r in old.items()},
                            {u: r.retain_on_delete for u, r in old.items()}, cli=cli)
    return {old[u].name for u in urns}


def runs(doc: dict, edit, key: str, *, key2: str | None = None) -> tuple[ProgramRun, ProgramRun, dict[str, str]]:
    v1 = run_program(build_config(doc), key)
    doc2 = copy.deepcopy(doc)
    edit(doc2)
    v2 = run_program(build_config(doc2), key2 or key)
    return v1, v2, plan(v1, v2)


def _named(run: ProgramRun, name: str) -> str:
    return run.named(name).urn


def _vm_actions(run: ProgramRun, result: dict[str, str]) -> dict[str, str]:
    return {r.name: result[r.urn] for r in run.of_type(VM)}


def assert_invariants(v1: ProgramRun, v2: ProgramRun, result: dict[str, str], opted_in: set[str] = frozenset()):
    details = plan_details(v1, v2) if set(result) == {r.urn for r in v1.registrations + v2.registrations
                                                          if r.type != "pulumi:pulumi:Stack"} else {}
    managed_snippets = {f"{r.inputs['datastoreId']}:snippets/{r.inputs['sourceRaw']['fileName']}"
                        for r in v2.of_type(SNIPPET)}
    # image files: those the new program manages, and old ones kept on the node (retainOnDelete)
    images = {f"{r.name}-id" for r in v2.of_type(DOWNLOAD)} | {
        f"{r.name}-id" for r in v1.of_type(DOWNLOAD) if r.retain_on_delete}
    for reg in v2.of_type(VM):
        assert reg.delete_before_replace, f"{reg.name}: a VM replacement must be delete-first"
        if result.get(reg.urn) == "replace":
            assert reg.name in opted_in, f"{reg.name} would be rebuilt without opting in"
        inputs = details[reg.urn].inputs if reg.urn in details else reg.inputs
        if DATA_HOLDER.match(reg.name):
            continue  # a data holder is blank on purpose and never started (data_disks.py)
        # what the provider gets after ignoreChanges: a VM is never (re)made without a source
        assert values_at(inputs, "clone.vmId") or any(values_at(inputs, "disks[].fileId")), \
            f"{reg.name}: would be made with neither a clone nor an image"
        for path in ("initialization.userDataFileId", "initialization.networkDataFileId",
                     "initialization.metaDataFileId"):
            assert set(values_at(inputs, path)) <= managed_snippets, f"{reg.name}: {path} is not managed"
        assert set(values_at(inputs, "disks[].fileId")) <= images, f"{reg.name}: its image file is gone"
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


# ---- the engine model's own rules (tests/engine_model.py)


def test_reset_removes_an_ignored_path_the_old_inputs_lack():
    """PropertyPath.Reset: old lacks the key -> deleted from new (properties_path.go ~:509)."""
    from engine_model import reset_ignored

    old = {"disks": [{"interface": "scsi0", "fileId": "local:iso/u.img"}]}
    new = {"clone": {"vmId": 9000}, "disks": [{"interface": "scsi0"}]}
    assert reset_ignored(old, new, ["clone"]) == {"disks": [{"interface": "scsi0"}]}  # blank!
    assert reset_ignored(old, new, ["clone", "disks[0].fileId"]) == old  # both: the old source


def runs_rebuilding(doc: dict, edit, key: str, monkeypatch,
                    rebuild: str) -> tuple[ProgramRun, ProgramRun, dict[str, str]]:
    """v1 plain; v2 as `python -m phoenix up --rebuild ...` runs the program (PHOENIX_REBUILD)."""
    v1 = run_program(build_config(doc), key)
    doc2 = copy.deepcopy(doc)
    edit(doc2)
    monkeypatch.setenv("PHOENIX_REBUILD", rebuild)
    v2 = run_program(build_config(doc2), key)
    monkeypatch.delenv("PHOENIX_REBUILD")
    return v1, v2, plan(v1, v2)


def _to_image(d):
    d["vms"][0].pop("clone_from")
    d["vms"][0]["image"] = d["vms"][1]["image"]


def _to_clone(d):
    d["vms"][1].pop("image")
    d["vms"][1]["clone_from"] = 9000


@pytest.mark.parametrize(("edit", "vm"), [(_to_image, "vm-8001-vm"), (_to_clone, "vm-8002-vm")])
def test_switching_image_and_clone_keeps_the_old_source_until_rebuilt(doc, key, edit, vm):
    """Case 1: both source paths are ignored whatever the VM's source, so Reset keeps the old
    one exactly: nothing to apply (python -m phoenix up warns: test_up_guard.py)."""
    v1, v2, result = runs(doc, edit, key)
    details = plan_details(v1, v2)
    assert result[v2.named(vm).urn] == "same"
    assert details[v2.named(vm).urn].inputs["clone" if "8001" in vm else "disks"] == \
        v1.named(vm).inputs["clone" if "8001" in vm else "disks"]
    assert_invariants(v1, v2, result)


@pytest.mark.parametrize(("edit", "vm", "source"), [(_to_image, "vm-8001-vm", "disks[].fileId"),
                                                    (_to_clone, "vm-8002-vm", "clone.vmId")])
def test_rebuild_on_purpose_uses_the_new_source(doc, key, monkeypatch, edit, vm, source):
    """Cases 1 and 4: `up --rebuild VMID` registers the VM with its current source."""
    vmid = vm.split("-")[1]
    v1, v2, result = runs_rebuilding(doc, edit, key, monkeypatch, vmid)
    detail = plan_details(v1, v2)[v2.named(vm).urn]
    assert detail.action == "replace" and values_at(detail.inputs, source)
    assert result[v2.named(f"vm-{vmid}-ready").urn] == "replace"
    assert_invariants(v1, v2, result, opted_in={vm})


def test_template_roll_forward_rebuilds_onto_the_new_template(doc, key, monkeypatch):
    """Case 4: point clone_from at the new template version and rebuild the VM by name: the
    new VM is cloned from the new template (not the one in the state)."""
    v1, v2, result = runs_rebuilding(doc, lambda d: d["vms"][0].update(clone_from=9100), key, monkeypatch, "8001")
    detail = plan_details(v1, v2)[v2.named("vm-8001-vm").urn]
    assert detail.action == "replace" and "clone" in detail.reasons
    assert detail.inputs["clone"]["vmId"] == 9100
    assert result[v2.named("vm-8002-vm").urn] == "same"  # only the named VM
    # without the name: nothing to apply (the state's template is kept, and `up` warns)
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(clone_from=9100), key)
    assert result[v2.named("vm-8001-vm").urn] == "same"
    assert_invariants(v1, v2, result)


def test_an_opted_in_vm_rebuilds_from_its_current_source_and_a_source_change_is_a_named_reason(doc, key):
    """An opted-in VM's rebuild (seed digest) starts from the source the config names now, never
    from one recorded long ago; a source change shows as reason `clone`, which the guard only
    lets through when named (test_up_guard.py)."""
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1, v2, result = runs(doc, lambda d: d["vms"][0].update(clone_from=9100), key)
    detail = plan_details(v1, v2)[v2.named("vm-8001-vm").urn]
    assert detail.action == "replace" and detail.reasons == ["clone"]


def test_rotating_the_stacks_ssh_key_rebuilds_no_vm(doc, key):
    """Case 2: the stack's public key is not in the rebuild digest (SeedSource.digest). The
    user-data snippet changes (the key is in it), the VM does not."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1, v2, result = runs(doc, lambda d: None, key, key2=other)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8002-vm": "same"}
    assert result[v2.named("vm-8001-user-data").urn] == "replace"
    assert_invariants(v1, v2, result)


def test_feature_deletes_during_a_rebuild_depend_on_the_cli(doc, key):
    """Case 6: up to v3.259.0 the dependents of a VM replaced delete-first are deleted first
    and their provider Delete runs (the VM is not yet in the `deletes` map: step_generator.go
    :2081-2146 at v3.259.0); after #23818 it is skipped (isDeletedWith). Phoenix's answer for the
    supported CLIs: the Feature provider skips its delete script for a VM being rebuilt
    (PHOENIX_REPLACING, set by `python -m phoenix up`: test_ssh_features.py)."""
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1, v2, _ = runs(doc, lambda d: d["vms"][0]["packages"].append("jq"), key)
    assert "vm-8001-feature-docker" in deletes_that_run(v1, v2, cli=(3, 259, 0))
    assert "vm-8001-feature-docker" not in deletes_that_run(v1, v2, cli=(3, 260, 0))
    # a removed VM: its features' deletes never run, on any supported CLI
    v1, v2, _ = runs(doc, lambda d: d["vms"].pop(0), key)
    assert "vm-8001-feature-docker" not in deletes_that_run(v1, v2, cli=(3, 254, 0))


def test_keep_updates_an_opted_in_vms_digest_in_place(doc, key, monkeypatch):
    """`up --keep VMID` (PHOENIX_KEEP): no replace_on_changes, sources ignored, this once."""
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1 = run_program(build_config(doc), key)
    doc2 = copy.deepcopy(doc)
    doc2["vms"][0]["packages"].append("jq")
    monkeypatch.setenv("PHOENIX_KEEP", "8001")
    v2 = run_program(build_config(doc2), key)
    result = plan(v1, v2)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "update", "vm-8002-vm": "same"}
    assert_invariants(v1, v2, result)


def test_changing_snippet_storage_is_a_replacement_the_guard_must_be_asked_for(doc, key, monkeypatch):
    """Case 3: the VM's initialization.*_file_id are ForceNew (vm.go:999-1023). They are not
    ignored (the VM would point at snippets that were deleted; PVE reads them at every start),
    so the engine plans a replacement with those reasons, which `python -m phoenix up` refuses
    unless the VM is named (test_up_guard.py); named, the rebuilt VM uses the new snippets."""
    move = lambda d: d["vms"][0].update(snippet_storage="shared")  # noqa: E731
    v1, v2, result = runs(doc, move, key)
    detail = plan_details(v1, v2)[v2.named("vm-8001-vm").urn]
    assert detail.action == "replace"
    assert set(detail.reasons) == {"initialization.userDataFileId", "initialization.networkDataFileId",
                                   "initialization.metaDataFileId"}
    with pytest.raises(AssertionError, match="without opting in"):
        assert_invariants(v1, v2, result)
    v1, v2, result = runs_rebuilding(doc, move, key, monkeypatch, "8001")
    assert result[v2.named("vm-8001-vm").urn] == "replace"
    assert_invariants(v1, v2, result, opted_in={"vm-8001-vm"})  # refers only to managed snippets


def test_removing_a_vm_deletes_features_and_readiness_before_the_vm_and_the_vm_before_its_snippets(doc, key):
    """Delete order (ScheduleDeletes, reverse dependency order): nothing is deleted while a
    resource that depends on it still exists; the features' deletes are no-ops (deletedWith)."""
    v1, v2, result = runs(doc, lambda d: d["vms"].pop(0), key)
    gone = [u for u, a in result.items() if a == "delete"]
    deps = {r.urn: list(r.dependencies) for r in v1.registrations}
    order = [v1.by_urn(u).name for level in delete_order(gone, deps) for u in level]
    at = {name: i for i, name in enumerate(order)}
    assert at["vm-8001-feature-docker"] < at["vm-8001-ready"] < at["vm-8001-vm"] < at["vm-8001-user-data"]
    assert "vm-8001-feature-docker" not in deletes_that_run(v1, v2)


def test_migrating_to_the_edits_spelling_changes_nothing(doc, key):
    """`recreate_on_cloud_init_change: true` -> `"edits": "rebuild"`: the same registrations."""
    doc["vms"][0]["recreate_on_cloud_init_change"] = True

    def migrate(d):
        del d["vms"][0]["recreate_on_cloud_init_change"]
        d["vms"][0]["edits"] = "rebuild"

    v1, v2, result = runs(doc, migrate, key)
    assert set(result.values()) == {"same"}, {u: a for u, a in result.items() if a != "same"}
    assert v2.named("vm-8001-vm").replace_on_changes == ["description"]
