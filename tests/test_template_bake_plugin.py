"""TemplateBake through the real plugin process (`python -u -m pulumi.dynamic`), as the engine
drives it, with the inputs the program registers: create against fakepve -> read -> diff (empty,
also with the provider re-pickled) -> a changed definition refused -> vanished VM -> delete."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import pytest
from plugin_process import PluginCallError, running_plugin
from pulumi_harness import run_program, stack_config
from readiness_fixtures import add_token
from test_plugin_lifecycle import reencoded
from test_resources_templates import template_doc

from phoenix.cloudinit.bake import STATUS_FILE
from phoenix.config import build_config

ROOT = Path(__file__).resolve().parents[1]
BAKE = "pulumi-python:dynamic/phoenix:TemplateBake"


@pytest.fixture(scope="module")
def registered(pulumi_private_key, example_document) -> dict:
    doc = template_doc(copy.deepcopy(example_document))
    run = run_program(build_config(doc), pulumi_private_key)
    (bake,) = run.of_type(BAKE)
    return bake.provider_inputs()


@pytest.fixture
def pve_plugin(fakepve, fakepve_cafile, pulumi_private_key):
    config, _ = stack_config(pulumi_private_key, **{
        "proxmoxve:endpoint": fakepve.url, "proxmoxve:apiToken": add_token(fakepve),
        "proxmoxve:insecure": "false"})
    yield from running_plugin(config, env={"REQUESTS_CA_BUNDLE": fakepve_cafile})


def sealing_guest(vm) -> threading.Thread:
    """Once started: the agent answers, the sealing step reports, and after the bake has read
    that (an agent file-read seen), the guest powers itself off."""

    def play() -> None:
        deadline = time.monotonic() + 30
        while vm.status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        vm.agent = {"files": {STATUS_FILE: "phoenix-bake: sealing\n"}}
        seen = len(vm.agent_requests)
        while len(vm.agent_requests) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        vm.status = vm.qmpstatus = "stopped"

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def test_bake_lifecycle_through_the_plugin(pve_plugin, registered, fakepve):
    vm = fakepve.add_vm(9100, "ubuntu-2404-agent", node="pve", status="stopped",
                        config={"agent": "1", "scsi0": "local-lvm:vm-9100-disk-0,size=8G"})
    news = pve_plugin.check({}, {**registered, "vm_resource_id": "9100", "timeout_s": 60}).inputs
    sealing_guest(vm)
    id_, outs = pve_plugin.create(news)
    assert id_ == "pve/9100" and outs["is_template"] is True and vm.template
    assert "api_token" not in outs and add_token(fakepve) not in json.dumps(outs)
    rid, refreshed, _ = pve_plugin.read(id_, outs, news)
    assert rid == id_ and refreshed["is_template"] is True
    assert pve_plugin.diff(id_, refreshed, news).changes == "DIFF_NONE"
    repickled = {**news, "__provider": reencoded(news["__provider"])}
    assert pve_plugin.diff(id_, refreshed, repickled).changes == "DIFF_NONE"

    changed = copy.deepcopy(news)
    changed["definition"] = "b" * 64
    # a new image version alone (same recipe) is recorded, not refused (issue 18 case 5)
    assert pve_plugin.diff(id_, refreshed, changed).changes == "DIFF_SOME"
    changed["recipe"] = "c" * 64  # the template itself was edited
    with pytest.raises(PluginCallError) as info:
        pve_plugin.diff(id_, refreshed, changed)
    assert "new entry with a new vmid" in info.value.details

    fakepve.vms.remove(vm)
    rid, gone, _ = pve_plugin.read(id_, refreshed, news)
    assert rid == "" and set(gone) <= {"__provider"}
    pve_plugin.delete(id_, refreshed)  # nothing to undo


def test_failed_bake_through_the_plugin_reports_the_stage(pve_plugin, registered, fakepve):
    vm = fakepve.add_vm(9100, "ubuntu-2404-agent", node="pve", status="stopped",
                        config={"agent": "1", "scsi0": "local-lvm:vm-9100-disk-0,size=8G"})
    news = pve_plugin.check({}, {**registered, "vm_resource_id": "9100", "timeout_s": 4}).inputs
    with pytest.raises(PluginCallError) as info:
        pve_plugin.create(news)
    assert "[stage: start] no power-off within the bake timeout" in info.value.details
    assert "rolled back" in info.value.details
    assert not vm.template and vm.status == "stopped" and vm.snapshots == {}
