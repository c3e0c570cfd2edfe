"""Templates under Pulumi's mock engine: the resources, their order (image -> template VM ->
bake -> clones), and that editing or removing a template never replaces a VM cloned from it."""

from __future__ import annotations

import copy

import pytest
import yaml
from pulumi_harness import run_program

from phoenix.cloudinit import render_bake_user_data
from phoenix.config import build_config
from phoenix.resources.templates import IGNORED_TEMPLATE_VM_CHANGES, definition_digest

VM = "proxmoxve:index/vmLegacy:VmLegacy"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
DOWNLOAD = "proxmoxve:download/file:File"
BAKE = "pulumi-python:dynamic/phoenix:TemplateBake"
TEMPLATE = {"vmid": 9100, "name": "ubuntu-2404-agent", "node": "pve", "image": "ubuntu-24.04",
            "storage": "local-zfs", "packages": ["qemu-guest-agent", "htop"], "disk_gb": 8}


def template_doc(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc["templates"] = [dict(TEMPLATE)]
    doc["vms"][0]["clone_from"] = "ubuntu-2404-agent"  # 8001 clones the file's template
    doc["vms"].append({"vmid": 8003, "name": "phoenix-app-02", "clone_from": "ubuntu-2404-agent",
                       "network_config": {"ip": "10.0.0.103/24"}})
    return doc


@pytest.fixture
def run(doc, pulumi_private_key):
    return run_program(build_config(template_doc(doc)), pulumi_private_key)


def test_template_resources_and_arguments(run, doc):
    vm = run.named("template-9100-vm")
    assert vm.type == VM and vm.parent == run.named("template-9100").urn
    inputs = vm.inputs
    assert inputs["vmId"] == 9100 and inputs["nodeName"] == "pve" and inputs["name"] == "ubuntu-2404-agent"
    (disk,) = inputs["disks"]
    assert disk["interface"] == "scsi0" and disk["datastoreId"] == "local-zfs" and disk["size"] == 8
    assert inputs["scsiHardware"] == "virtio-scsi-single"
    assert inputs["serialDevices"] == [{"device": "socket"}]
    assert inputs["agent"]["enabled"] is True and inputs["agent"]["waitForIp"]["disabled"] is True
    assert inputs["started"] is False and inputs["template"] is False
    init = inputs["initialization"]
    assert init["userDataFileId"] == "local:snippets/phoenix-template-9100-bake-user-data.yaml"
    assert init["metaDataFileId"] == "local:snippets/phoenix-template-9100-bake-meta-data.yaml"
    assert init["ipConfigs"] == [{"ipv4": {"address": "dhcp"}}]
    assert sorted(vm.ignore_changes) == sorted(IGNORED_TEMPLATE_VM_CHANGES)
    assert "template" in vm.ignore_changes and "started" in vm.ignore_changes
    # the bake seed is the project's render, uploaded as a snippet
    seed = run.named("template-9100-bake-user-data")
    assert seed.type == SNIPPET
    assert seed.inputs["sourceRaw"]["data"] == render_bake_user_data(
        build_config(template_doc_for_tests(doc)).templates[0])
    assert yaml.safe_load(seed.inputs["sourceRaw"]["data"])["packages"][0] == "qemu-guest-agent"


def template_doc_for_tests(doc: dict) -> dict:
    return template_doc(doc)


def test_order_image_template_vm_bake_clones(run):
    download = run.named("image-ubuntu-24.04-pve-local")
    assert download.type == DOWNLOAD
    vm = run.named("template-9100-vm")
    bake = run.named("template-9100-bake")
    assert bake.type == BAKE
    snippets = [run.named(f"template-9100-bake-{p}") for p in ("user-data", "meta-data")]
    assert download.urn in vm.dependencies and download.urn in vm.property_dependencies["disks"]
    assert {s.urn for s in snippets} <= set(vm.dependencies)
    assert vm.urn in bake.dependencies and bake.property_dependencies["vm_resource_id"] == [vm.urn]
    assert bake.replace_with == [vm.urn]  # a replaced template VM (same vmid, same id) is baked again
    first, second = run.named("vm-8001-vm"), run.named("vm-8003-vm")
    # every clone of the template waits for its bake (full clones also keep their lanes)
    assert bake.urn in first.dependencies and bake.urn in second.dependencies
    assert first.inputs["clone"]["vmId"] == 9100 and first.inputs["clone"]["nodeName"] == "pve"
    # the VM from the image does not wait for any template
    assert bake.urn not in run.named("vm-8002-vm").dependencies
    # the image is downloaded once for the node, used by the template and VM 8002
    assert len(run.of_type(DOWNLOAD)) == 1


def test_bake_inputs_carry_the_definition_not_secrets(run, doc):
    bake = run.named("template-9100-bake")
    config = build_config(template_doc(doc))
    template = config.templates[0]
    assert bake.inputs["definition"] == definition_digest(template, config.images["ubuntu-24.04"])
    assert bake.inputs["vmid"] == 9100 and bake.inputs["node"] == "pve"
    assert bake.inputs["timeout_s"] == 1800
    assert "api_token" not in bake.inputs


def test_clones_of_a_file_template_ignore_clone_changes(run):
    for name in ("vm-8001-vm", "vm-8003-vm"):
        assert run.named(name).ignore_changes == ["clone", "disks[0].fileId"]
    # inherited: no agent in the clone's seed
    ready_seed = yaml.safe_load(run.named("vm-8001-user-data").inputs["sourceRaw"]["data"])
    assert "qemu-guest-agent" not in ready_seed.get("packages", [])


def test_a_new_template_version_does_not_touch_existing_clones(doc, pulumi_private_key):
    """v2 beside v1; VM 8001 moves to v2 in the config: its registration differs only in the
    ignored `clone` input, so the engine neither updates nor replaces it."""
    before = run_program(build_config(template_doc(doc)), pulumi_private_key)
    edited = template_doc(doc)
    edited["templates"].append({**TEMPLATE, "vmid": 9110, "name": "ubuntu-2404-agent-v2",
                                "packages": ["qemu-guest-agent", "htop", "curl"]})
    edited["vms"][0]["clone_from"] = "ubuntu-2404-agent-v2"
    after = run_program(build_config(edited), pulumi_private_key)
    old, new = before.named("vm-8001-vm"), after.named("vm-8001-vm")
    changed = {k for k in set(old.inputs) | set(new.inputs) if old.inputs.get(k) != new.inputs.get(k)}
    assert changed == {"clone"}, changed
    assert new.ignore_changes == ["clone", "disks[0].fileId"] and not new.replace_on_changes
    # v1 is still there, unchanged; v2 is new beside it
    assert before.named("template-9100-vm").inputs == after.named("template-9100-vm").inputs
    assert before.named("template-9100-bake").inputs == after.named("template-9100-bake").inputs
    assert after.named("template-9110-bake").inputs["definition"] != after.named(
        "template-9100-bake").inputs["definition"]


def test_editing_a_template_in_place_changes_only_what_is_ignored_or_refused(doc, pulumi_private_key):
    before = run_program(build_config(template_doc(doc)), pulumi_private_key)
    edited = template_doc(doc)
    edited["templates"][0]["packages"] = ["qemu-guest-agent", "nginx"]
    edited["templates"][0]["disk_gb"] = 16
    after = run_program(build_config(edited), pulumi_private_key)
    old, new = before.named("template-9100-vm"), after.named("template-9100-vm")
    changed = {k for k in set(old.inputs) | set(new.inputs) if old.inputs.get(k) != new.inputs.get(k)}
    assert changed <= set(IGNORED_TEMPLATE_VM_CHANGES), changed
    # the bake sees the new definition: its diff refuses it (tests/test_template_bake_pve.py)
    assert before.named("template-9100-bake").inputs["definition"] != after.named(
        "template-9100-bake").inputs["definition"]
    # the clones do not change at all
    for name in ("vm-8001-vm", "vm-8003-vm"):
        assert before.named(name).inputs == after.named(name).inputs


def test_removing_a_template_that_vms_still_clone_is_a_config_error(doc):
    from phoenix.config import ConfigError

    edited = template_doc(doc)
    edited["templates"] = []
    with pytest.raises(ConfigError) as info:
        build_config(edited)
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 2 and all("'ubuntu-2404-agent' is not a template" in m for m in messages)


def test_one_template_per_node_and_cross_node_clone(doc, pulumi_private_key):
    edited = template_doc(doc)
    edited["templates"][0]["node"] = ["pve", "pve2"]
    edited["vms"][2]["node"] = "pve2"
    edited["vms"].append({"vmid": 8004, "name": "far-01", "node": "pve3",
                          "clone_from": "ubuntu-2404-agent", "network_config": {"ip": "10.0.0.104/24"}})
    run = run_program(build_config(edited), pulumi_private_key)
    assert run.named("template-9101-vm").inputs["nodeName"] == "pve2"
    assert run.named("image-ubuntu-24.04-pve2-local").inputs["nodeName"] == "pve2"
    on_pve2 = run.named("vm-8003-vm")
    assert on_pve2.inputs["clone"]["vmId"] == 9101 and on_pve2.inputs["clone"]["nodeName"] == "pve2"
    assert run.named("template-9101-bake").urn in on_pve2.dependencies
    far = run.named("vm-8004-vm")
    # no copy on pve3: a full clone from pve's copy onto pve3
    assert far.inputs["nodeName"] == "pve3"
    assert far.inputs["clone"] == {**far.inputs["clone"], "vmId": 9100, "nodeName": "pve", "full": True}
    assert run.named("template-9100-bake").urn in far.dependencies
    assert run.outputs["templates"] == {"ubuntu-2404-agent": {"vmids": {"pve": 9100, "pve2": 9101}}}


def test_second_run_registers_the_same(doc, pulumi_private_key):
    config = build_config(template_doc(doc))
    first = run_program(config, pulumi_private_key)
    second = run_program(config, pulumi_private_key)

    def shape(run):
        return sorted((r.type, r.name, repr(sorted(r.inputs.items())), sorted(r.dependencies))
                      for r in run.registrations if "template" in r.name or r.type == BAKE)
    assert shape(first) == shape(second)


def test_an_upgrade_that_changes_the_bake_seed_keeps_baked_templates(doc, pulumi_private_key,
                                                                     monkeypatch):
    """A Phoenix upgrade changed the sealing step (this release's first-boot trims): the
    template's definition is the same, so its VM and bake register the same inputs; only the
    bake snippet's text differs (bpg re-uploads that file, delete-first). The clones are untouched."""
    import phoenix.cloudinit.bake as bake

    current = bake.seal_script()
    older = current.split('say "trimming first boot"')[0] + current.split("systemctl daemon-reload\n")[1]
    assert older != current and "sealing" in older
    monkeypatch.setattr(bake, "seal_script", lambda: older)
    before = run_program(build_config(template_doc(doc)), pulumi_private_key)
    monkeypatch.setattr(bake, "seal_script", lambda: current)
    after = run_program(build_config(template_doc(doc)), pulumi_private_key)
    for name in ("template-9100-vm", "template-9100-bake", "vm-8001-vm", "vm-8003-vm"):
        assert before.named(name).inputs == after.named(name).inputs, name
    snippet = "template-9100-bake-user-data"
    assert before.named(snippet).inputs != after.named(snippet).inputs
    assert after.named(snippet).delete_before_replace
