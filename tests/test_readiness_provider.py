"""GuestAgentReady: the dynamic provider's CRUD against fakepve, and its registration under mocks."""

from __future__ import annotations

import base64
import json

import pulumi
import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from readiness_fixtures import (
    TOKEN_SECRET,
    add_token,
    add_vm,
    agent_answers,
    fast_polling,
    openssh_public_keys,
)

from phoenix.readiness.provider import (
    PROVIDER_VERSION,
    GuestAgentNotReady,
    GuestAgentReady,
    GuestAgentReadyArgs,
    GuestAgentReadyProvider,
)

ENV = ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_INSECURE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, fakepve_cafile):
    fast_polling(monkeypatch)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    # verify=True then trusts the fake's certificate (requests reads this variable).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fakepve_cafile)


def props_for(pve, token: str | None = None, **changes) -> dict:
    props = {
        "vmid": 8001.0,  # numbers arrive as floats over the RPC
        "node": "pve",
        "timeout_s": 20.0,
        "vm_resource_id": "pve/qemu/8001",
        "wait_for_cloud_init": True,
        "endpoint": pve.url,
        "insecure": None,
        "provider_version": PROVIDER_VERSION,
        "__provider": "serialized",
    }
    if token is not None:
        props["api_token"] = token
    props.update(changes)
    return props


def outputs_of(provider, pve, **changes) -> dict:
    token = add_token(pve)
    return provider.create(props_for(pve, token, **changes)).outs


def test_create_waits_and_outputs_no_secret(fakepve):
    keys = openssh_public_keys()
    add_vm(fakepve).agent = agent_answers(host_keys=keys)
    provider = GuestAgentReadyProvider()
    result = provider.create(props_for(fakepve, add_token(fakepve)))
    assert result.id.startswith("pve/8001/")
    outs = result.outs
    assert outs["cloud_init_status"] == "done"
    assert outs["ipv4_addresses"] == ["192.0.2.10"]
    assert outs["ssh_host_keys"] == [" ".join(k.split()[:2]) for k in keys]
    assert outs["vm_resource_id"] == "pve/qemu/8001"
    assert "api_token" not in outs
    assert TOKEN_SECRET not in json.dumps(outs)


def test_create_failure_names_the_stage_without_the_secret(fakepve):
    add_vm(fakepve)  # no agent
    provider = GuestAgentReadyProvider()
    with pytest.raises(GuestAgentNotReady) as info:
        provider.create(props_for(fakepve, add_token(fakepve), timeout_s=1.0))
    assert info.value.stage == "agent"
    assert str(info.value).startswith("[stage: agent] VM 8001 on pve: the guest agent did not")
    assert TOKEN_SECRET not in str(info.value)


def test_agent_timeout_ends_with_the_first_boot_hint_which_is_not_diffed(fakepve):
    add_vm(fakepve)  # no agent
    provider = GuestAgentReadyProvider()
    hint = "VM 8001 (web) installs qemu-guest-agent from its package mirror: check gateway 10.0.0.1"
    with pytest.raises(GuestAgentNotReady) as info:
        provider.create(props_for(fakepve, add_token(fakepve), timeout_s=1.0,
                                  first_boot_hint=hint))
    assert info.value.stage == "agent" and str(info.value).endswith("\n" + hint)
    # the hint only words a failure: a new gateway in it never re-waits a ready VM
    olds = {**props_for(fakepve), "first_boot_hint": hint}
    assert provider.diff("id", olds, {**olds, "first_boot_hint": "other"}).changes is False


def test_bad_token_error_has_no_secret(fakepve):
    add_vm(fakepve).agent = agent_answers()
    add_token(fakepve)
    provider = GuestAgentReadyProvider()
    wrong = "phoenix@pve!ci=ffffffff-not-the-secret"
    with pytest.raises(GuestAgentNotReady) as info:
        provider.create(props_for(fakepve, wrong))
    assert "401" in str(info.value) and "ffffffff" not in str(info.value)


def test_diff_replaces_only_for_a_new_vm():
    provider = GuestAgentReadyProvider()
    olds = {"vmid": 8001.0, "node": "pve", "vm_resource_id": "a", "timeout_s": 900.0,
            "wait_for_cloud_init": True, "endpoint": None, "insecure": None,
            "provider_version": PROVIDER_VERSION, "seconds_to_agent": 30.1}
    news = {k: v for k, v in olds.items() if k != "seconds_to_agent"}
    same = provider.diff("id", olds, news)
    assert same.changes is False and same.replaces == []
    replaced = provider.diff("id", olds, {**news, "vm_resource_id": "b"})
    assert replaced.changes is True and replaced.replaces == ["vm_resource_id"]
    unknown = provider.diff("id", olds, {**news, "vm_resource_id": rpc.UNKNOWN})
    assert unknown.replaces == ["vm_resource_id"]
    longer = provider.diff("id", olds, {**news, "timeout_s": 1200.0})
    assert longer.changes is True and longer.replaces == []
    newer = provider.diff("id", olds, {**news, "provider_version": "999"})
    assert newer.changes is True and newer.replaces == []
    # A token given as input (or rotated) is no reason to wait again.
    assert provider.diff("id", olds, {**news, "api_token": "x@pve!y=z"}).changes is False


def test_update_does_not_wait_again_unless_the_provider_changed(fakepve):
    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys())
    provider = GuestAgentReadyProvider()
    olds = outputs_of(provider, fakepve)
    before = len(fakepve.requests)
    news = props_for(fakepve, add_token(fakepve), timeout_s=1200.0)
    outs = provider.update("id", olds, news).outs
    assert len(fakepve.requests) == before  # no API call at all
    assert outs["timeout_s"] == 1200.0
    assert outs["ssh_host_keys"] == olds["ssh_host_keys"]
    assert outs["seconds_to_agent"] == olds["seconds_to_agent"]

    outs = provider.update("id", olds, {**news, "provider_version": "999"}).outs
    assert len(fakepve.requests) > before
    assert outs["provider_version"] == "999" and outs["cloud_init_status"] == "done"


def test_read_refreshes_addresses_and_keys(fakepve, monkeypatch):
    vm = add_vm(fakepve)
    vm.agent = agent_answers(host_keys=openssh_public_keys())
    provider = GuestAgentReadyProvider()
    olds = outputs_of(provider, fakepve)
    # The token is not in the outputs, so refresh finds it in the stack config or the env.
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", add_token(fakepve))
    new_keys = openssh_public_keys()
    vm.agent = agent_answers(host_keys=new_keys, interfaces=[
        {"name": "eth0", "ip-addresses": [{"ip-address": "10.0.0.7", "ip-address-type": "ipv4"}]}])
    result = provider.read("id", olds)
    assert result.id == "id"
    assert result.outs["ipv4_addresses"] == ["10.0.0.7"]
    assert result.outs["ssh_host_keys"] == [" ".join(k.split()[:2]) for k in new_keys]
    assert result.outs["seconds_to_agent"] == olds["seconds_to_agent"]


def test_read_keeps_state_when_stopped_or_without_credentials(fakepve, monkeypatch):
    vm = add_vm(fakepve)
    vm.agent = agent_answers()
    provider = GuestAgentReadyProvider()
    olds = outputs_of(provider, fakepve)
    before = len(fakepve.requests)
    assert provider.read("id", olds).outs == olds  # no token anywhere: nothing asked
    assert len(fakepve.requests) == before
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", add_token(fakepve))
    vm.status = "stopped"
    result = provider.read("id", olds)
    assert (result.id, result.outs) == ("id", olds)


def test_read_of_a_deleted_vm_drops_the_resource(fakepve, monkeypatch):
    vm = add_vm(fakepve)
    vm.agent = agent_answers()
    provider = GuestAgentReadyProvider()
    olds = outputs_of(provider, fakepve)
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", add_token(fakepve))
    fakepve.vms.remove(vm)
    assert provider.read("id", olds).id == ""


def test_credentials_from_stack_config(fakepve):
    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys())
    provider = GuestAgentReadyProvider()
    provider.configure(ConfigureRequest(Config(
        {"proxmoxve:endpoint": fakepve.url, "proxmoxve:apiToken": add_token(fakepve),
         "proxmoxve:insecure": "false"}, "phoenix")))
    outs = provider.create(props_for(fakepve, endpoint=None)).outs
    assert outs["cloud_init_status"] == "done"
    assert TOKEN_SECRET not in json.dumps(outs)


def test_missing_credentials_are_named():
    provider = GuestAgentReadyProvider()
    with pytest.raises(GuestAgentNotReady, match="proxmoxve:apiToken"):
        provider.create({"vmid": 8001.0, "node": "pve", "endpoint": "https://pve:8006"})


def test_check_rejects_bad_inputs_and_passes_unknowns():
    provider = GuestAgentReadyProvider()
    bad = provider.check({}, {"vmid": 12.5, "node": "", "timeout_s": 0})
    assert sorted(f.property for f in bad.failures) == ["node", "timeout_s", "vmid"]
    unknown = provider.check({}, {"vmid": rpc.UNKNOWN, "node": rpc.UNKNOWN, "timeout_s": 900.0})
    assert unknown.failures == []


def test_provider_pickles_small_by_reference():
    blob = base64.b64decode(serialize_provider(GuestAgentReadyProvider()))
    assert b"phoenix.readiness.provider" in blob
    assert b"GuestAgentReadyProvider" in blob
    assert len(blob) < 500  # the class by reference, not its code


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def test_resource_registers_with_the_phoenix_type_token():
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    ready = GuestAgentReady("vm8001-ready", GuestAgentReadyArgs(
        vmid=8001, node="pve", timeout_s=600, vm_resource_id="pve/qemu/8001",
        api_token=f"phoenix@pve!ci={TOKEN_SECRET}"))

    @pulumi.runtime.test
    def check():
        def assert_registered(_):
            (args,) = [r for r in mocks.resources if r.name == "vm8001-ready"]
            assert args.typ == "pulumi-python:dynamic/phoenix:GuestAgentReady"
            assert args.inputs["vmid"] == 8001 and args.inputs["timeout_s"] == 600
            assert args.inputs["provider_version"] == PROVIDER_VERSION
        return ready.urn.apply(assert_registered)

    check()


def test_check_treats_the_engines_unknown_objects_as_unknown():
    from pulumi.output import Unknown

    provider = GuestAgentReadyProvider()
    for unknown in (Unknown(), rpc.UNKNOWN):  # gRPC process / mock engine spelling
        news = {"vmid": unknown, "node": unknown, "timeout_s": unknown}
        assert provider.check({}, news).failures == []
    assert [f.property for f in provider.check({}, {"vmid": 5, "node": "", "timeout_s": 0})
            .failures] == ["vmid", "node", "timeout_s"]
