"""Two-run plans for data disks (docs/data.md, docs/lifecycle.md): the holder `vm-<vmid>-data` is
never replaced or deleted with its VM, and the VM refers to the same volumes before and after a
rebuild. The engine's decisions come from the registrations (tests/test_lifecycle_plan.py)."""

from __future__ import annotations

import pytest
from pulumi_harness import run_program
from test_lifecycle_plan import VM, _named, _vm_actions, assert_invariants, runs

from phoenix.config import build_config

DISKS = [{"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"},
         {"name": "backups", "size_gb": 500, "mount": "/srv/backups", "storage": "tank", "filesystem": "xfs"}]


@pytest.fixture
def key(pulumi_private_key):
    return pulumi_private_key


@pytest.fixture
def data_doc(doc):
    doc["vms"][0]["data_disks"] = [dict(d) for d in DISKS]
    return doc


def _data_disks(reg) -> list[dict]:
    return [d for d in reg.inputs["disks"] if d.get("serial", "").startswith("phx-")]


def test_the_holder_and_what_the_vm_attaches(data_doc, key):
    run = run_program(build_config(data_doc), key)
    holder = run.named("vm-8001-data")
    assert holder.type == VM and holder.inputs["vmId"] == 108001 and holder.inputs["nodeName"] == "pve"
    assert holder.inputs["started"] is False and holder.inputs["onBoot"] is False
    assert [(d["interface"], d["datastoreId"], d["size"]) for d in holder.inputs["disks"]] == \
        [("scsi0", "local-zfs", 100), ("scsi1", "tank", 500)]
    # C1: retained on delete, top level (no component parent), never tied to the VM
    assert holder.retain_on_delete and not holder.parent.endswith("vm-8001")
    assert "Vm$" not in holder.urn and holder.replace_with == [] and holder.deleted_with == ""
    assert holder.ignore_changes == ["nodeName"] and not holder.protect
    vm = run.named("vm-8001-vm")
    attached = _data_disks(vm)
    assert [(d["interface"], d["datastoreId"], d["pathInDatastore"], d["serial"], d["size"]) for d in attached] == [
        ("scsi1", "local-zfs", "vm-108001-disk-0", "phx-docker", 100),
        ("scsi2", "tank", "vm-108001-disk-1", "phx-backups", 500)]
    assert all(d["backup"] is False for d in attached)
    assert holder.urn in vm.dependencies
    assert "disks[1].size" in vm.ignore_changes and "disks[2].size" in vm.ignore_changes
    # the VM without data disks has no holder
    assert not [r for r in run.registrations if r.name == "vm-8002-data"]


def test_attached_disks_read_back_as_sent(data_doc, key):
    """The rules of tests/test_lifecycle_no_perpetual_diff.py for the attached disks: scsi, so
    ssd and iothread are sent and read back; discard "on"; fileFormat only what bpg read from
    the holder (not a literal of ours); the size is ignored (only the holder resizes)."""
    run = run_program(build_config(data_doc), key)
    holder = run.named("vm-8001-data")
    assert all("fileFormat" not in d for d in holder.inputs["disks"])
    for disk in _data_disks(run.named("vm-8001-vm")):
        assert disk["interface"].startswith("scsi") and disk["ssd"] is True and disk["iothread"] is True
        assert disk["discard"] == "on" and disk.get("fileFormat") is None


def test_nothing_holding_data_is_tied_to_a_vm(data_doc, key):
    run = run_program(build_config(data_doc), key)
    data = [r for r in run.registrations if r.name.startswith("vm-8001-data")]
    assert data, "the holder is registered"
    data_urns = {r.urn for r in data}
    for reg in data:
        assert reg.retain_on_delete and not reg.replace_with and not reg.deleted_with, reg.name
    for reg in run.registrations:  # and nothing follows the holder either
        assert not set(reg.replace_with) & data_urns and reg.deleted_with not in data_urns, reg.name


def test_second_run_changes_nothing(data_doc, key):
    _, _, result = runs(data_doc, lambda d: None, key)
    assert set(result.values()) == {"same"}, {u: a for u, a in result.items() if a != "same"}


def test_opted_in_rebuild_replaces_the_vm_and_nothing_that_holds_its_data(data_doc, key):
    data_doc["vms"][0]["recreate_on_cloud_init_change"] = True
    v1, v2, result = runs(data_doc, lambda d: d["vms"][0]["packages"].append("jq"), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "replace", "vm-8001-data": "same", "vm-8002-vm": "same"}
    # the rebuilt VM refers to the very volumes the old one did
    assert _data_disks(v2.named("vm-8001-vm")) == _data_disks(v1.named("vm-8001-vm"))
    assert result[_named(v2, "vm-8001-ready")] == "replace"  # waits again, features run again
    assert_invariants(v1, v2, result, opted_in={"vm-8001-vm"})


def test_a_replace_of_the_vm_does_not_cascade_to_the_holder(data_doc, key):
    """`pulumi up --replace <VM URN>` (or any rebuild): replaceWith cascades only to resources
    that name the VM; the holder names nothing and nothing of the VM's names it."""
    run = run_program(build_config(data_doc), key)
    vm_urn = _named(run, "vm-8001-vm")
    cascaded = {r.name for r in run.registrations if vm_urn in r.replace_with}
    assert cascaded == {"vm-8001-ready", "vm-8001-converge", "vm-8001-feature-docker"}


def test_remove_the_vm_retains_the_holder(data_doc, key):
    v1, v2, result = runs(data_doc, lambda d: d["vms"].pop(0), key)
    holder = v1.named("vm-8001-data")
    assert result[holder.urn] == "delete" and holder.retain_on_delete  # dropped from the state only


def test_grow_a_data_disk_updates_the_holder_only(data_doc, key):
    v1, v2, result = runs(data_doc, lambda d: d["vms"][0]["data_disks"][0].update(size_gb=200), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "same", "vm-8001-data": "update", "vm-8002-vm": "same"}
    assert v2.named("vm-8001-data").inputs["disks"][0]["size"] == 200
    assert result[_named(v2, "vm-8001-user-data")] == "same"  # the size is not in the seed
    assert_invariants(v1, v2, result)


def test_add_a_data_disk_is_an_update_of_both(data_doc, key):
    v1, v2, result = runs(data_doc, lambda d: d["vms"][0]["data_disks"].append(
        {"name": "logs", "size_gb": 5, "mount": "/srv/logs"}), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "update", "vm-8001-data": "update", "vm-8002-vm": "same"}
    assert _data_disks(v2.named("vm-8001-vm"))[:2] == _data_disks(v1.named("vm-8001-vm"))
    assert result[_named(v2, "vm-8001-user-data")] == "replace"  # the boot script's arguments
    assert_invariants(v1, v2, result)


def test_node_change_migrates_the_vm_and_leaves_the_holder(data_doc, key):
    v1, v2, result = runs(data_doc, lambda d: d["vms"][0].update(node="pve2"), key)
    assert _vm_actions(v2, result) == {"vm-8001-vm": "update", "vm-8001-data": "same", "vm-8002-vm": "same"}
    assert_invariants(v1, v2, result)


def test_new_template_or_image_keeps_the_data(data_doc, key):
    v1, v2, result = runs(data_doc, lambda d: d["vms"][0].update(clone_from=9100), key)
    assert result[_named(v2, "vm-8001-data")] == "same"
    assert _data_disks(v2.named("vm-8001-vm")) == _data_disks(v1.named("vm-8001-vm"))
