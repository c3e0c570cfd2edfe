"""clone_mode: the config rules and the provider's clone arguments (mock engine)."""

from __future__ import annotations

import copy

import pytest
from pulumi_harness import run_program

from phoenix.config import ConfigError, build_config
from phoenix.config.clone_rules import DEFAULT_CLONE_MODE
from phoenix.config.sample import sample_document

VM = "proxmoxve:index/vmLegacy:VmLegacy"


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(doc)
    return [str(p) for p in info.value.problems]


def clones_doc(count: int, **defaults) -> dict:
    doc = sample_document(count * 2)
    doc["vms"] = [vm for vm in doc["vms"] if "clone_from" in vm]
    doc["defaults"].update(defaults)
    return doc


def test_default_is_full_and_defaults_or_vm_set_it():
    assert DEFAULT_CLONE_MODE == "full"
    assert {vm.clone_mode for vm in build_config(clones_doc(2)).vms} == {"full"}
    doc = clones_doc(2, clone_mode="linked")
    doc["vms"][1]["clone_mode"] = "full"
    assert [vm.clone_mode for vm in build_config(doc).vms] == ["linked", "full"]


def test_unknown_clone_mode_is_a_schema_error():
    doc = clones_doc(1)
    doc["vms"][0]["clone_mode"] = "thin"
    (message,) = problems(doc)
    assert message == ('vms[0] (vmid 10000, gen-10000): clone_mode: must be one of "linked", "full", '
                       'not the string "thin"')


def test_clone_mode_on_an_image_vm_is_an_error_but_a_default_is_ignored():
    doc = sample_document(2)  # vms[1] uses an image
    doc["defaults"]["clone_mode"] = "linked"
    assert build_config(copy.deepcopy(doc)).vm(10001).image == "debian-12"
    doc["vms"][1]["clone_mode"] = "linked"
    (message,) = problems(doc)
    assert message.startswith("vms[1] (vmid 10001, gen-10001): clone_mode: applies to clones (clone_from) only")


def test_linked_clones_of_one_template_need_one_storage_every_problem_at_once():
    doc = clones_doc(4, clone_mode="linked")
    doc["vms"][1]["storage"] = "local-lvm"
    doc["vms"][3]["storage"] = "ceph"
    doc["vms"][2]["network_config"] = {"ip": "10.64.0.300/16"}  # an unrelated problem, reported too
    found = problems(doc)
    assert len(found) == 3, found
    assert found[1].startswith("vms[1] (vmid 10002, gen-10002): storage: linked clones of template 9000 on "
                               "node pve must all use the template's storage, but vms[0] (vmid 10000, "
                               "gen-10000) uses 'local-zfs' and this VM 'local-lvm'")
    assert "'ceph'" in found[2] and "network_config.ip" in found[0]


def test_storage_rule_is_per_template_node_and_mode():
    doc = clones_doc(4, clone_mode="linked")
    doc["vms"][1].update(storage="local-lvm", clone_from=9001)   # another template
    doc["vms"][2].update(storage="local-lvm", node="pve2")       # another node
    doc["vms"][3].update(storage="local-lvm", clone_mode="full")  # a full clone goes anywhere
    assert len(build_config(doc).vms) == 4


def test_clone_args_follow_clone_mode(pulumi_private_key):
    doc = clones_doc(2, clone_mode="linked")
    doc["vms"][1]["clone_mode"] = "full"
    run = run_program(build_config(doc), pulumi_private_key)
    linked, full = (run.named(f"vm-{vmid}-vm").inputs for vmid in (10000, 10002))
    # PVE rejects a target storage for a linked clone (qemu-server clone_vm)
    assert linked["clone"] == {"vmId": 9000, "full": False, "nodeName": "pve", "retries": 3}
    assert full["clone"] == {"vmId": 9000, "full": True, "datastoreId": "local-zfs", "nodeName": "pve",
                             "retries": 3}
    # the disk names the template's storage, so the provider does not move (= fully copy) it
    assert linked["disks"][0]["datastoreId"] == "local-zfs"
