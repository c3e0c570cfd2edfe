"""A smaller `size_gb` is an error at preview naming the VM and the field: the `DataDiskSizes`
resource's check, driven in the real dynamic-provider plugin process (tests/plugin_process.py)
with the inputs the program registered, `__provider` blob included."""

from __future__ import annotations

import copy

import pytest
from plugin_process import UNKNOWN, running_plugin
from pulumi_harness import run_program

from phoenix.config import build_config

SIZES = "pulumi-python:dynamic/phoenix:DataDiskSizes"
DISKS = [{"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"},
         {"name": "backups", "size_gb": 500, "mount": "/srv/backups"}]


@pytest.fixture(scope="module")
def plugin():
    yield from running_plugin()


def _registered(doc, key, **sizes) -> dict:
    doc = copy.deepcopy(doc)
    doc["vms"][0]["data_disks"] = [dict(d, size_gb=sizes.get(d["name"], d["size_gb"])) for d in DISKS]
    run = run_program(build_config(doc), key)
    (reg,) = run.of_type(SIZES)
    holder = run.named("vm-8001-data")
    assert reg.name == "vm-8001-data-sizes" and reg.retain_on_delete and not reg.replace_with
    assert reg.urn in holder.dependencies  # the holder waits for the check
    return reg.provider_inputs()


def test_shrink_is_refused_at_check_naming_the_vm_and_the_field(plugin, doc, pulumi_private_key):
    v1 = _registered(doc, pulumi_private_key)
    checked = plugin.check({}, v1)
    assert checked.failures == []
    id_, outs = plugin.create(checked.inputs)
    assert plugin.diff(id_, outs, plugin.check(outs, v1).inputs).changes == "DIFF_NONE"

    smaller = _registered(doc, pulumi_private_key, backups=400)
    failures = plugin.check(outs, smaller).failures
    assert failures == [("sizes", "vms[0] (vmid 8001, phoenix-docker-01): data_disks[1].size_gb: 400 is "
                         "smaller than 500 GiB, the size of data disk 'backups' now: a data disk can only "
                         "grow (set it back to 500 or more; to start over with a smaller disk, see docs/data.md)")]


def test_grow_add_and_unknown_pass_and_update_records(plugin, doc, pulumi_private_key):
    v1 = _registered(doc, pulumi_private_key)
    id_, outs = plugin.create(plugin.check({}, v1).inputs)
    bigger = _registered(doc, pulumi_private_key, docker=200)
    checked = plugin.check(outs, bigger)
    assert checked.failures == []
    assert plugin.diff(id_, outs, checked.inputs).changes == "DIFF_SOME"
    outs = plugin.update(id_, outs, checked.inputs)
    assert outs["sizes"]["docker"] == 200
    # now 150 is a shrink against what was applied (200), not against the first 100
    assert plugin.check(outs, _registered(doc, pulumi_private_key, docker=150)).failures
    assert plugin.check(outs, {**bigger, "sizes": UNKNOWN}).failures == []
    plugin.delete(id_, outs)  # records only: nothing to undo
