"""The `templates` section: references from clone_from, nodes, and every problem at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from phoenix.config import ConfigError, build_config
from phoenix.config.model import TemplateConfig
from phoenix.config.templates import cross_node_clone_problem

TEMPLATE = {"vmid": 9100, "name": "ubuntu-2404-agent", "node": "pve", "image": "ubuntu-24.04",
            "storage": "local-zfs", "packages": ["qemu-guest-agent", "htop"], "disk_gb": 8}


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(doc)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def tdoc(doc):
    doc["templates"] = [dict(TEMPLATE)]
    doc["vms"][0]["clone_from"] = "ubuntu-2404-agent"
    return doc


def test_clone_from_by_name_resolves_to_the_template_vmid_and_inherits_the_agent(tdoc):
    config = build_config(tdoc)
    (template,) = config.templates
    assert template.copies == (("pve", 9100),)
    assert template.packages == ("qemu-guest-agent", "htop")
    vm = config.vm(8001)
    assert vm.clone_from == 9100 and vm.template == "ubuntu-2404-agent" and vm.clone_node is None
    assert vm.guest_agent.preinstalled is True
    # the other VM (from an image) is untouched
    assert config.vm(8002).template is None and config.vm(8002).guest_agent.preinstalled is False


def test_clone_from_by_vmid_finds_the_template_too(tdoc):
    tdoc["vms"][0]["clone_from"] = 9100
    vm = build_config(tdoc).vm(8001)
    assert vm.template == "ubuntu-2404-agent" and vm.guest_agent.preinstalled is True


def test_a_vm_that_says_preinstalled_false_keeps_it(tdoc):
    tdoc["vms"][0]["guest_agent"] = {"preinstalled": False}
    assert build_config(tdoc).vm(8001).guest_agent.preinstalled is False


def test_external_template_vmid_is_still_a_plain_clone(doc):
    vm = build_config(doc).vm(8001)  # clone_from 9000, not defined in the file
    assert vm.clone_from == 9000 and vm.template is None and vm.guest_agent.preinstalled is False


def test_agent_is_always_first_in_the_template_packages(tdoc):
    tdoc["templates"][0]["packages"] = ["htop"]
    assert build_config(tdoc).templates[0].packages == ("qemu-guest-agent", "htop")
    del tdoc["templates"][0]["packages"]
    assert build_config(tdoc).templates[0].packages == ("qemu-guest-agent",)


def test_one_copy_per_node_and_vms_clone_the_copy_on_their_node(tdoc):
    tdoc["templates"][0]["node"] = ["pve", "pve2"]
    tdoc["vms"][1] = {**tdoc["vms"][1], "node": "pve2", "clone_from": "ubuntu-2404-agent"}
    del tdoc["vms"][1]["image"]
    tdoc["vms"][1].pop("disk_interface", None)  # a clone boots from the template's scsi0
    tdoc["vms"].append({"vmid": 8003, "name": "far-01", "node": "pve3",
                        "clone_from": "ubuntu-2404-agent", "network_config": {"ip": "10.0.0.103/24"}})
    config = build_config(tdoc)
    assert config.templates[0].copies == (("pve", 9100), ("pve2", 9101))
    assert (config.vm(8001).clone_from, config.vm(8001).clone_node) == (9100, None)
    assert (config.vm(8002).clone_from, config.vm(8002).clone_node) == (9101, None)
    # no copy on pve3: a (full) clone across nodes from the first copy
    assert (config.vm(8003).clone_from, config.vm(8003).clone_node) == (9100, "pve")


def test_linked_clone_across_nodes_needs_shared_storage():
    template = TemplateConfig(index=0, vmid=9100, name="t", nodes=("pve",), image="i",
                              storage="local-zfs", packages=("qemu-guest-agent",))
    message = cross_node_clone_problem(template, "pve2", "linked")
    assert message and "local-zfs" in message and "pve2" in message
    assert cross_node_clone_problem(template, "pve2", "full") is None
    assert cross_node_clone_problem(template, "pve2", None) is None
    shared = TemplateConfig(**{**template.__dict__, "shared_storage": True})
    assert cross_node_clone_problem(shared, "pve2", "linked") is None


def test_every_template_problem_at_once(tdoc):
    tdoc["templates"] = [
        {**TEMPLATE, "node": ["pve", "pve2"]},                        # copies 9100, 9101
        {**TEMPLATE, "vmid": 9101, "name": "ubuntu-2404-agent",       # dup name, dup vmid
         "image": "nope", "packages": ["Bad Package"], "node": "-bad-"},
        {**TEMPLATE, "vmid": 8002, "name": "clash"},                   # a VM's vmid
        {"vmid": 9200, "name": "broken", "node": "pve", "image": "ubuntu-24.04", "disk_gb": "8"},
    ]
    tdoc["vms"][1]["clone_from"] = "no-such-template"
    del tdoc["vms"][1]["image"]
    found = problems(tdoc)
    expected = [
        ("templates[1] (vmid 9101, ubuntu-2404-agent): node:", "not a valid hostname"),
        ("templates[1] (vmid 9101, ubuntu-2404-agent): image:", "'nope' is not in images"),
        ("templates[1] (vmid 9101, ubuntu-2404-agent): packages[0]:", "is not a package name"),
        ("templates[1] (vmid 9101, ubuntu-2404-agent): name:", "already used by templates[0]"),
        ("templates[1] (vmid 9101, ubuntu-2404-agent): vmid:", "copy on node -bad-"),
        ("templates[3] (vmid 9200, broken): disk_gb:", ""),
        ("vms[1] (vmid 8002, phoenix-web-01): clone_from:", "'no-such-template' is not a template"),
        ("vms[1] (vmid 8002, phoenix-web-01): vmid:", "already used by templates[2]"),
    ]
    for where, text in expected:
        assert any(p.startswith(where) and text in p for p in found), (where, text, found)
    assert len(found) == len(expected), found


def test_template_image_restricted_to_another_node(tdoc):
    tdoc["images"]["ubuntu-24.04"]["node"] = "pve"
    tdoc["templates"][0]["node"] = ["pve", "pve2"]
    (problem,) = problems(tdoc)
    assert problem.startswith("templates[0] (vmid 9100, ubuntu-2404-agent): image:")
    assert "only available on node 'pve'" in problem


def test_validate_cli_reports_template_problems_without_traceback(tdoc, tmp_path):
    import json

    tdoc["templates"][0]["image"] = "missing"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tdoc))
    done = subprocess.run([sys.executable, "-m", "phoenix", "validate", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "templates[0] (vmid 9100, ubuntu-2404-agent): image:" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_linked_clone_of_a_file_template_on_another_storage_or_node(tdoc):
    tdoc["vms"][0].update({"clone_mode": "linked", "storage": "local-lvm"})
    (problem,) = problems(tdoc)
    assert problem.startswith("vms[0] (vmid 8001, phoenix-docker-01): storage:")
    assert "template's storage 'local-zfs'" in problem
    tdoc["vms"][0].update({"storage": "local-zfs", "node": "pve2"})
    (problem,) = problems(tdoc)
    assert problem.startswith("vms[0] (vmid 8001, phoenix-docker-01): clone_from:")
    assert "needs its storage 'local-zfs' on both nodes" in problem
    tdoc["templates"][0]["shared_storage"] = True
    vm = build_config(tdoc).vm(8001)
    assert (vm.clone_mode, vm.clone_from, vm.clone_node) == ("linked", 9100, "pve")


def test_a_clone_of_a_file_template_must_boot_from_the_templates_disk(tdoc):
    """Issue 18 case 8: another interface would get a second, blank disk (bpg's clone path)."""
    tdoc["vms"][0]["disk_interface"] = "virtio0"
    (problem,) = problems(tdoc)
    assert "vms[0] (vmid 8001" in problem and "disk_interface" in problem
    assert "would get a second, blank disk" in problem and "'scsi0'" in problem
