"""Edits that would shrink, detach or swap data are errors at preview naming the VM and the field:
the `DataDiskLayout` resource's check, driven in the real dynamic-provider plugin process
(tests/plugin_process.py) with the inputs the program registered, `__provider` blob included."""

from __future__ import annotations

import copy

import pytest
from plugin_process import UNKNOWN, running_plugin
from pulumi_harness import run_program

from phoenix.config import build_config

LAYOUT = "pulumi-python:dynamic/phoenix:DataDiskLayout"
DISKS = [{"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"},
         {"name": "backups", "size_gb": 500, "mount": "/srv/backups"}]
VM = "vms[0] (vmid 8001, phoenix-docker-01)"
HOW = "see docs/data.md, 'Changing the data disks'"


@pytest.fixture(scope="module")
def plugin():
    yield from running_plugin()


def _registered(doc, key, disks=None, **vm_fields) -> dict:
    doc = copy.deepcopy(doc)
    doc["vms"][0]["data_disks"] = copy.deepcopy(DISKS if disks is None else disks)
    doc["vms"][0].update(vm_fields)
    run = run_program(build_config(doc), key)
    (reg,) = run.of_type(LAYOUT)
    holder = run.named("vm-8001-data")
    assert reg.name == "vm-8001-data-layout" and reg.retain_on_delete and not reg.replace_with
    assert not reg.deleted_with and reg.urn in holder.dependencies  # the holder waits for the check
    return reg.provider_inputs()


@pytest.fixture
def applied(plugin, doc, pulumi_private_key):
    """The layout as the first `up` recorded it: (id, outputs)."""
    checked = plugin.check({}, _registered(doc, pulumi_private_key))
    assert checked.failures == []
    return plugin.create(checked.inputs)


def _failures(plugin, outs, doc, key, disks=None, **vm_fields) -> list[tuple[str, str]]:
    return plugin.check(outs, _registered(doc, key, disks, **vm_fields)).failures


def test_no_edit_is_no_change(plugin, applied, doc, pulumi_private_key):
    id_, outs = applied
    news = _registered(doc, pulumi_private_key)
    assert plugin.check(outs, news).failures == []
    assert plugin.diff(id_, outs, plugin.check(outs, news).inputs).changes == "DIFF_NONE"


def test_shrink_is_refused_naming_the_vm_and_the_field(plugin, applied, doc, pulumi_private_key):
    _, outs = applied
    smaller = [DISKS[0], dict(DISKS[1], size_gb=400)]
    assert _failures(plugin, outs, doc, pulumi_private_key, smaller) == [(
        "sizes", f"{VM}: data_disks[1].size_gb: 400 is smaller than 500 GiB, the size of data disk 'backups' "
                 f"now: a data disk can only grow (set it back to 500 or more); {HOW}")]


def test_removed_or_reordered_disks_are_refused(plugin, applied, doc, pulumi_private_key):
    _, outs = applied
    (removed,) = _failures(plugin, outs, doc, pulumi_private_key, [DISKS[0]])
    assert removed[0] == "names" and removed[1].startswith(f"{VM}: data_disks: 'backups' no longer listed")
    (renamed,) = _failures(plugin, outs, doc, pulumi_private_key, [DISKS[0], dict(DISKS[1], name="bak")])
    assert "'backups' no longer listed" in renamed[1]
    (swapped,) = _failures(plugin, outs, doc, pulumi_private_key, [DISKS[1], DISKS[0]])
    assert swapped[1].startswith(f"{VM}: data_disks: the order changed (docker, backups -> backups, docker)")


def test_another_holder_vmid_is_refused(plugin, applied, doc, pulumi_private_key):
    _, outs = applied
    (moved,) = _failures(plugin, outs, doc, pulumi_private_key, data_vmid=7001)
    assert moved == ("holder_vmid", f"{VM}: data_vmid: the data disks are held by VM 108001; 7001 would be a new "
                                    "holder with new, empty disks (the data staying in 108001): set data_vmid back "
                                    f"to 108001; {HOW}")


def test_another_storage_for_an_existing_disk_is_refused(plugin, applied, doc, pulumi_private_key):
    _, outs = applied
    (moved,) = _failures(plugin, outs, doc, pulumi_private_key, [DISKS[0], dict(DISKS[1], storage="tank")])
    assert moved == ("storages", f"{VM}: data_disks[1].storage: data disk 'backups' is on local-zfs; moving it "
                                 "to tank would move the volume under the VM that attaches it: set it back to "
                                 f"local-zfs; {HOW}")


def test_grow_and_append_pass_and_update_records(plugin, applied, doc, pulumi_private_key):
    id_, outs = applied
    grown = [dict(DISKS[0], size_gb=200), DISKS[1], {"name": "logs", "size_gb": 5, "mount": "/srv/logs"}]
    checked = plugin.check(outs, _registered(doc, pulumi_private_key, grown))
    assert checked.failures == []
    assert plugin.diff(id_, outs, checked.inputs).changes == "DIFF_SOME"
    outs = plugin.update(id_, outs, checked.inputs)
    assert outs["sizes"]["docker"] == 200 and outs["names"] == ["docker", "backups", "logs"]
    # now 150 is a shrink against what was applied (200), not against the first 100
    assert _failures(plugin, outs, doc, pulumi_private_key, [dict(DISKS[0], size_gb=150), *grown[1:]])
    assert plugin.check(outs, {**checked.inputs, "sizes": UNKNOWN}).failures == []
    plugin.delete(id_, outs)  # a record only: nothing to undo
