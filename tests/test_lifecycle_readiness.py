"""GuestAgentReady over a VM's life, against fakepve: the as-built address and user, and a VM
that HA (or an admin) moved to another node."""

from __future__ import annotations

import pytest
from readiness_fixtures import TOKEN_SECRET, add_token, add_vm, agent_answers, fast_polling

from phoenix.readiness.provider import PROVIDER_VERSION, GuestAgentReadyProvider, as_built_ip
from phoenix.readiness.pve import PveCredentials, PveTransport
from phoenix.readiness.transport import VmNotFoundError

AGENT_IP = "192.0.2.10"  # what fakepve's agent reports by default


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, fakepve_cafile):
    fast_polling(monkeypatch)
    for name in ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fakepve_cafile)


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda line, *a, **k: seen.append(line))
    return seen


def props(pve, **changes) -> dict:
    return {"vmid": 8001.0, "node": "pve", "timeout_s": 20.0, "vm_resource_id": "8001",
            "expected_ip": AGENT_IP, "username": "phoenix", "wait_for_cloud_init": True,
            "endpoint": pve.url, "insecure": None, "provider_version": PROVIDER_VERSION,
            "api_token": add_token(pve), "__provider": "serialized", **changes}


def test_create_records_the_as_built_address_and_user(fakepve):
    add_vm(fakepve).agent = agent_answers()
    outs = GuestAgentReadyProvider().create(props(fakepve)).outs
    assert outs["ip"] == AGENT_IP and outs["built_username"] == "phoenix"
    assert TOKEN_SECRET not in repr(outs)


def test_create_records_the_agents_address_when_the_vm_came_up_with_another(fakepve, warnings):
    add_vm(fakepve).agent = agent_answers()
    outs = GuestAgentReadyProvider().create(props(fakepve, expected_ip="10.0.0.101")).outs
    assert outs["ip"] == AGENT_IP  # features must reach the VM where it really is
    assert warnings == [f"VM 8001 on pve: network_config.ip is 10.0.0.101 but the guest reports {AGENT_IP}; "
                        f"features use {AGENT_IP}"]


def test_an_ip_edit_keeps_the_as_built_outputs_known_in_a_preview():
    olds = {"vmid": 8001.0, "node": "pve", "vm_resource_id": "8001", "expected_ip": AGENT_IP,
            "username": "phoenix", "provider_version": PROVIDER_VERSION, "ip": AGENT_IP}
    diff = GuestAgentReadyProvider().diff("id", olds, {**olds, "expected_ip": "10.0.0.151"})
    assert diff.changes is True and diff.replaces == []
    assert sorted(diff.stables) == ["built_username", "ip"]


@pytest.mark.parametrize("key,field,new", [("expected_ip", "network_config.ip", "10.0.0.151"),
                                           ("username", "user.name", "ops")])
def test_update_of_ip_or_user_keeps_the_as_built_value_and_warns(fakepve, warnings, key, field, new):
    add_vm(fakepve).agent = agent_answers()
    provider = GuestAgentReadyProvider()
    olds = provider.create(props(fakepve)).outs
    built = olds["ip" if key == "expected_ip" else "built_username"]
    fakepve.fail("GET", "/nodes/pve/qemu/8001/status/current", 500, "must not be called")
    outs = provider.update("id", olds, props(fakepve, **{key: new})).outs
    assert outs["ip"] == AGENT_IP and outs["built_username"] == "phoenix"
    assert outs[key] == new  # the input is recorded, so the warning is given once
    (line,) = warnings
    assert line.startswith(f"VM 8001: {field} changed to {new} but the VM still has {built}; it applies "
                           "when the VM is rebuilt")
    assert "recreate_on_cloud_init_change" in line and "scripts/up.sh --rebuild VMID" in line
    # the next update with the same inputs says nothing more
    warnings.clear()
    provider.update("id", outs, props(fakepve, **{key: new}))
    assert warnings == []


def test_update_of_state_from_before_as_built_outputs_fills_them_in(warnings):
    olds = {"vmid": 8001.0, "node": "pve", "vm_resource_id": "8001", "ipv4_addresses": [AGENT_IP],
            "provider_version": PROVIDER_VERSION}
    news = {**olds, "expected_ip": AGENT_IP, "username": "phoenix"}
    outs = GuestAgentReadyProvider().update("id", olds, news).outs
    assert outs["ip"] == AGENT_IP and outs["built_username"] == "phoenix" and warnings == []


def test_as_built_ip():
    assert as_built_ip("10.0.0.5", ["10.0.0.5", "172.17.0.1"]) == "10.0.0.5"
    assert as_built_ip("10.0.0.5", ["10.0.0.9"]) == "10.0.0.9"
    assert as_built_ip("10.0.0.5", []) == "10.0.0.5"
    assert as_built_ip(None, []) is None


def test_a_node_change_is_an_update_not_a_new_wait():
    olds = {"vmid": 8001.0, "node": "pve", "vm_resource_id": "8001", "timeout_s": 900.0,
            "provider_version": PROVIDER_VERSION}
    diff = GuestAgentReadyProvider().diff("id", olds, {**olds, "node": "pve2"})
    assert diff.changes is True and diff.replaces == []


def test_transport_follows_a_vm_that_moved(fakepve):
    add_vm(fakepve, node="pve2").agent = agent_answers()
    fakepve.add_node("pve")
    transport = PveTransport(PveCredentials(fakepve.url, add_token(fakepve)), node="pve", vmid=8001)
    assert transport.vm_status(timeout_s=5) == "running"
    assert transport.node == "pve2" and transport.describe() == "VM 8001 on pve2"
    transport.ping(timeout_s=5)  # later calls go straight to the new node


def test_transport_still_says_not_found_for_a_vm_on_no_node(fakepve):
    fakepve.add_node("pve")
    transport = PveTransport(PveCredentials(fakepve.url, add_token(fakepve)), node="pve", vmid=8001)
    with pytest.raises(VmNotFoundError):
        transport.vm_status(timeout_s=5)


def test_readiness_of_a_vm_that_ha_moved(fakepve):
    add_vm(fakepve, node="pve2").agent = agent_answers()
    fakepve.add_node("pve")
    provider = GuestAgentReadyProvider()
    created = provider.create(props(fakepve))  # recorded node: pve; the VM is on pve2
    assert created.outs["cloud_init_status"] == "done" and created.outs["ip"] == AGENT_IP
    read = provider.read(created.id, created.outs)
    assert read.id == created.id and read.outs["ip"] == AGENT_IP  # not dropped from the state


def test_a_failed_cluster_look_up_keeps_readiness_in_the_state(fakepve):
    """Issue 18 case 11: the VM is not on the recorded node and /cluster/resources fails: that is
    not "the VM is gone"; refresh keeps the state (and its as-built facts)."""
    add_vm(fakepve, node="pve2").agent = agent_answers()
    fakepve.add_node("pve")
    provider = GuestAgentReadyProvider()
    created = provider.create(props(fakepve))
    fakepve.fail("GET", "/cluster/resources", 500, "cluster filesystem not ready")
    read = provider.read(created.id, {**created.outs, "node": "pve"})
    assert read.id == created.id and read.outs["built_username"] == created.outs["built_username"]
    transport = PveTransport(PveCredentials(fakepve.url, add_token(fakepve)), node="pve", vmid=8001)
    with pytest.raises(Exception) as info:
        transport.vm_status(timeout_s=5)
    assert not isinstance(info.value, VmNotFoundError) and "could not be looked up" in str(info.value)
