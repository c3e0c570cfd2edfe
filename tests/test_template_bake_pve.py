"""TemplateBake's provider against fakepve: a bake that seals and powers off becomes a template;
a failed, stopped-too-early or timed-out bake is rolled back and never becomes one."""

from __future__ import annotations

import threading
import time

import pytest
from readiness_fixtures import add_token

from phoenix.cloudinit.bake import STATUS_FILE
from phoenix.templatebake import bake as bake_module
from phoenix.templatebake.bake import PREBAKE_SNAPSHOT, BakeFailed
from phoenix.templatebake.provider import (
    PROVIDER_VERSION,
    TemplateBakeProvider,
    TemplateDefinitionChanged,
)

ENV = ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_INSECURE")
DIGEST = "a" * 64


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, fakepve_cafile):
    monkeypatch.setattr(bake_module, "POLL_INTERVAL_S", 0.05)
    monkeypatch.setattr("phoenix.templatebake.pve_control.TASK_POLL_S", 0.02)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fakepve_cafile)


def template_vm(pve, vmid: int = 9100):
    return pve.add_vm(vmid, "ubuntu-2404-agent", node="pve", status="stopped",
                      config={"agent": "1", "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=8G",
                              "ide2": f"local-lvm:vm-{vmid}-cloudinit,media=cdrom"})


def props_for(pve, token: str, **changes) -> dict:
    props = {"vmid": 9100.0, "node": "pve", "template_name": "ubuntu-2404-agent",
             "definition": DIGEST, "timeout_s": 5.0, "vm_resource_id": "9100",
             "endpoint": pve.url, "insecure": None, "api_token": token,
             "provider_version": PROVIDER_VERSION, "__provider": "serialized"}
    props.update(changes)
    return props


class Guest(threading.Thread):
    """Plays the guest once PVE starts it: the agent appears, the status file moves on, and
    (when `power_off`) the VM switches itself off."""

    def __init__(self, vm, lines: list[str], power_off: bool = True, delay: float = 0.15):
        super().__init__(daemon=True)
        self.vm, self.lines, self.power_off, self.delay = vm, lines, power_off, delay
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while self.vm.status != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        self.vm.agent = {"files": {}}
        for line in self.lines:
            time.sleep(self.delay)
            self.vm.agent = {"files": {STATUS_FILE: line + "\n"}}
        time.sleep(self.delay)
        if self.power_off:
            self.vm.status = self.vm.qmpstatus = "stopped"
        self.done.set()


def test_a_sealed_bake_becomes_a_template(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)
    Guest(vm, ["phoenix-bake: waiting for cloud-init", "phoenix-bake: sealing",
               "phoenix-bake: sealed, powering off"]).start()
    result = TemplateBakeProvider().create(props_for(fakepve, token))
    assert vm.template and vm.config.get("template") == 1
    assert vm.snapshots == {}  # the pre-bake snapshot is gone (PVE refuses templates with one)
    assert result.id == "pve/9100"
    stages = result.outs["stages"]
    assert list(stages) == ["prepare", "start", "agent", "cloud-init", "sealing", "power-off",
                            "template"]
    assert "api_token" not in result.outs and result.outs["is_template"] is True
    # the order of the API calls: snapshot, start, ..., delete snapshot, template
    posts = [(m, p.split("/qemu/9100/", 1)[-1]) for m, p, _ in fakepve.requests
             if "/qemu/9100/" in p and m in ("POST", "DELETE")]
    assert posts[0] == ("POST", "snapshot") and posts[1] == ("POST", "status/start")
    assert posts[-2:] == [("DELETE", f"snapshot/{PREBAKE_SNAPSHOT}"), ("POST", "template")]


def test_a_failed_bake_is_rolled_back_and_never_a_template(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)
    Guest(vm, ["phoenix-bake: waiting for cloud-init",
               "phoenix-bake: failed: package qemu-guest-agent is not installed"],
          power_off=False).start()
    with pytest.raises(BakeFailed) as info:
        TemplateBakeProvider().create(props_for(fakepve, token))
    assert info.value.stage == "cloud-init"
    assert "package qemu-guest-agent is not installed" in str(info.value)
    assert "rolled back" in str(info.value)
    assert not vm.template and vm.status == "stopped" and vm.snapshots == {}
    paths = [p for m, p, _ in fakepve.requests if m == "POST"]
    assert any(p.endswith(f"snapshot/{PREBAKE_SNAPSHOT}/rollback") for p in paths)
    assert not any(p.endswith("/template") for p in paths)
    assert token.split("=", 1)[1] not in str(info.value)


def test_a_guest_that_stops_before_sealing_is_not_converted(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)
    Guest(vm, ["phoenix-bake: waiting for cloud-init"]).start()  # powers off unsealed
    with pytest.raises(BakeFailed) as info:
        TemplateBakeProvider().create(props_for(fakepve, token))
    assert "stopped before the bake sealed it" in str(info.value)
    assert not vm.template and vm.snapshots == {}


def test_a_bake_that_never_ends_times_out_by_stage(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)  # no agent ever answers: the seed never got to install it
    started = time.monotonic()
    with pytest.raises(BakeFailed) as info:
        TemplateBakeProvider().create(props_for(fakepve, token, timeout_s=1.0))
    assert time.monotonic() - started < 8
    assert info.value.stage == "start" and "no power-off within the bake timeout" in str(info.value)
    assert "guest agent is not running" in str(info.value)
    assert not vm.template and vm.status == "stopped" and vm.snapshots == {}


def test_an_interrupted_earlier_bake_is_rolled_back_first(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)
    vm.snapshots[PREBAKE_SNAPSHOT] = {"snaptime": 1, "description": "x", "snapstate": None,
                                      **{k: v for k, v in vm.config.items() if k != "name"}}
    vm.status = vm.qmpstatus = "running"  # the crashed attempt left it running
    guest = Guest(vm, ["phoenix-bake: sealing"])
    TemplateBakeProvider()  # nothing on construction
    vm_status_before = vm.status
    assert vm_status_before == "running"
    guest.start()
    TemplateBakeProvider().create(props_for(fakepve, token))
    assert vm.template
    paths = [p for m, p, _ in fakepve.requests if m == "POST"]
    assert paths.index(next(p for p in paths if p.endswith("/rollback"))) < paths.index(
        next(p for p in paths if p.endswith("/status/start")))


def test_storage_without_snapshots_stops_in_prepare(fakepve):
    token = add_token(fakepve)
    fakepve.storages["plain"] = {"type": "dir", "path": "/var/lib/plain", "active": 1,
                                 "content": "images", "files": set()}
    vm = fakepve.add_vm(9100, "t", node="pve", status="stopped",
                        config={"agent": "1", "scsi0": "plain:9100/vm-9100-disk-0.raw,size=8G"})
    with pytest.raises(BakeFailed) as info:
        TemplateBakeProvider().create(props_for(fakepve, token))
    assert info.value.stage == "prepare" and "must take snapshots" in str(info.value)
    assert vm.status == "stopped" and not vm.template


def test_a_changed_definition_is_refused_not_rebuilt(fakepve):
    provider = TemplateBakeProvider()
    olds = props_for(fakepve, "x")
    with pytest.raises(TemplateDefinitionChanged) as info:
        provider.diff("pve/9100", olds, {**olds, "definition": "b" * 64})
    assert "new entry with a new vmid" in str(info.value)
    # no change: no diff; a timeout change is an in-place no-op update
    assert provider.diff("pve/9100", olds, dict(olds)).changes is False
    assert provider.diff("pve/9100", olds, {**olds, "timeout_s": 9.0}).replaces == []
    # the template VM replaced (e.g. --replace on it): the bake runs again
    assert provider.diff("pve/9100", olds, {**olds, "vm_resource_id": "9100-new",
                                            "definition": "b" * 64}).replaces == ["vm_resource_id"]


def test_read_follows_the_vm(fakepve):
    token = add_token(fakepve)
    vm = template_vm(fakepve)
    vm.template, vm.config["template"] = True, 1
    provider = TemplateBakeProvider()
    props = props_for(fakepve, token)
    assert provider.read("pve/9100", props).outs["is_template"] is True
    fakepve.vms.remove(vm)
    assert provider.read("pve/9100", props).id == ""
    # an unreachable node keeps the state
    unreachable = props_for(fakepve, token, endpoint="https://127.0.0.1:9")
    assert provider.read("pve/9100", unreachable).id == "pve/9100"


def test_a_new_image_version_alone_keeps_the_template_as_baked():
    """Issue 18 case 5: the image's url/checksum changed (a new version for new VMs), the
    template's own recipe did not: an update that records it, not TemplateDefinitionChanged."""
    provider = TemplateBakeProvider()
    olds = {"vmid": 9100, "node": "pve", "vm_resource_id": "9100", "template_name": "t",
            "definition": "a" * 64, "recipe": "r" * 64}
    diff = provider.diff("pve/9100", olds, {**olds, "definition": "b" * 64})
    assert diff.changes and not diff.replaces
    with pytest.raises(TemplateDefinitionChanged):  # the template itself edited: refused
        provider.diff("pve/9100", olds, {**olds, "definition": "b" * 64, "recipe": "s" * 64})
    legacy = {k: v for k, v in olds.items() if k != "recipe"}  # state from before `recipe`
    assert provider.diff("pve/9100", legacy, olds).changes  # recorded by an update
    with pytest.raises(TemplateDefinitionChanged):
        provider.diff("pve/9100", legacy, {**olds, "definition": "b" * 64})
