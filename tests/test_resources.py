"""The Pulumi program under Pulumi's mock engine: resource graph, arguments, options, secrets."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pulumi
import pytest
from pulumi_harness import (
    GUEST_HOST_KEY,
    NODE_HOST_KEY,
    RecordingMocks,
    RecordingMonitor,
    fresh_mocks,
    run_program,
    stack_config,
)

from phoenix.cloudinit import render_seed
from phoenix.config import build_config, load_config
from phoenix.config.sample import sample_document
from phoenix.remote.keys import public_key_line

VM = "proxmoxve:index/vmLegacy:VmLegacy"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
DOWNLOAD = "proxmoxve:download/file:File"
COMPONENT = "phoenix:index:Vm"
PROVIDER = "pulumi:providers:proxmoxve"
ZFS = "pulumi-python:dynamic/phoenix:ZfsProperty"
READY = "pulumi-python:dynamic/phoenix:GuestAgentReady"
FEATURE = "pulumi-python:dynamic/phoenix:Feature"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example(example_config_path):
    return load_config(example_config_path)


@pytest.fixture(scope="module")
def example_run(example, pulumi_private_key):
    return run_program(example, pulumi_private_key)


def test_resource_types(example_run):
    counts = {}
    for reg in example_run.registrations:
        counts[reg.type] = counts.get(reg.type, 0) + 1
    assert counts[PROVIDER] == 1 and counts[COMPONENT] == 2 and counts[VM] == 2
    assert counts[SNIPPET] == 6 and counts[DOWNLOAD] == 1
    # one docker feature + one converge step per VM (edits: "in-place", the default)
    assert counts[ZFS] == 1 and counts[READY] == 2 and counts[FEATURE] == 1 + 2


def test_every_resource_uses_the_explicit_provider(example_run):
    provider = example_run.named("proxmoxve")
    for reg in example_run.registrations:
        if reg.type.startswith("proxmoxve:"):
            assert reg.provider.startswith(provider.urn + "::"), reg.name


def test_provider_arguments_and_secrets(example_run, pulumi_private_key):
    provider = example_run.named("proxmoxve")
    assert provider.inputs["endpoint"] == "https://pve.example.test:8006/"
    assert {"apiToken", "ssh"} <= provider.secret_inputs
    ssh = json.loads(provider.inputs["ssh"])
    assert ssh["username"] == "root" and ssh["nodes"] == [{"name": "pve", "address": "192.0.2.10", "port": 22}]
    assert ssh["privateKey"] == pulumi_private_key


def test_no_secret_in_plain_inputs_or_outputs(example_run, pulumi_private_key):
    token = stack_config(pulumi_private_key)[0]["proxmoxve:apiToken"]
    key_body = pulumi_private_key.splitlines()[1]
    for reg in example_run.registrations:
        plain = {k: v for k, v in reg.inputs.items() if k not in reg.secret_inputs}
        text = json.dumps(plain, default=str)
        assert token not in text and key_body not in text, reg.name
    outputs = json.dumps(example_run.outputs)
    assert token not in outputs and key_body not in outputs


def test_vm_arguments(example_run):
    vm = example_run.named("vm-8001-vm").inputs
    assert vm["nodeName"] == "pve" and vm["vmId"] == 8001 and vm["name"] == "phoenix-docker-01"
    assert vm["clone"] == {"vmId": 9000, "full": True, "datastoreId": "local-zfs", "nodeName": "pve", "retries": 3}
    assert vm["cpu"]["cores"] == 4 and vm["memory"] == {"dedicated": 4096}
    (disk,) = vm["disks"]
    assert disk["interface"] == "scsi0" and disk["size"] == 64 and disk["datastoreId"] == "local-zfs"
    (nic,) = vm["networkDevices"]
    assert nic == {"bridge": "vmbr0", "model": "virtio", "vlanId": 20, "macAddress": "02:50:48:00:1F:41"}
    assert vm["initialization"] == {
        "datastoreId": "local-zfs",
        "userDataFileId": "local:snippets/phoenix-8001-user-data.yaml",
        "networkDataFileId": "local:snippets/phoenix-8001-network-config.yaml",
        "metaDataFileId": "local:snippets/phoenix-8001-meta-data.yaml",
    }
    assert vm["stopOnDestroy"] is True and vm["started"] is True
    assert vm["operatingSystem"] == {"type": "l26"} and vm["tags"] == ["docker", "phoenix"]


def test_agent_enabled_without_the_providers_own_wait(example_run):
    # bpg waits for an IP through the agent (15 min default) on create and refresh unless
    # wait_for_ip is disabled; GuestAgentReady owns that wait instead.
    for reg in example_run.of_type(VM):
        agent = reg.inputs["agent"]
        assert agent["enabled"] is True and agent["waitForIp"] == {"disabled": True}, reg.name


def test_image_vm_imports_the_downloaded_image(example_run):
    download = example_run.of_type(DOWNLOAD)[0]
    assert download.inputs["contentType"] == "iso"
    assert re.fullmatch(r"ubuntu-24\.04-[0-9a-f]{8}\.img", download.inputs["fileName"])
    assert download.inputs["nodeName"] == "pve" and download.inputs["overwrite"] is False
    vm = example_run.named("vm-8002-vm")
    assert vm.inputs["disks"][0]["fileId"] == "image-ubuntu-24.04-pve-local-id"
    assert vm.property_dependencies["disks"] == [download.urn]
    # both source paths, whatever the source (vm_ignore_changes: the engine's Reset)
    assert "clone" not in vm.inputs and vm.ignore_changes == ["clone", "disks[0].fileId"]


def test_snippets_hold_exactly_the_rendered_seed(example, example_run, pulumi_private_key):
    pub = public_key_line(pulumi_private_key)
    for vm in example.vms:
        seed = render_seed(vm, [pub])
        expected = {"user-data": seed.user_data, "network-config": seed.network_config, "meta-data": seed.meta_data}
        for part, text in expected.items():
            snippet = example_run.named(f"vm-{vm.vmid}-{part}").inputs
            assert snippet["contentType"] == "snippets" and snippet["datastoreId"] == "local"
            assert snippet["sourceRaw"] == {"data": text, "fileName": f"phoenix-{vm.vmid}-{part}.yaml"}
    # the key Pulumi uses for features reaches the VM's user through cloud-init
    assert pub in example_run.named("vm-8001-user-data").inputs["sourceRaw"]["data"]


def test_parents_and_dependencies(example_run):
    stack = example_run.registrations[0]
    for vmid in (8001, 8002):
        component = example_run.named(f"vm-{vmid}")
        assert component.parent == stack.urn
        vm = example_run.named(f"vm-{vmid}-vm")
        snippets = [example_run.named(f"vm-{vmid}-{p}") for p in ("user-data", "network-config", "meta-data")]
        assert vm.parent == component.urn and all(s.parent == component.urn for s in snippets)
        # ordering-only dependency on the snippets: no property of the VM flows from them
        assert {s.urn for s in snippets} <= set(vm.dependencies)
        assert not any(s.urn in urns for s in snippets for urns in vm.property_dependencies.values())


def vm_deps(run, name: str) -> set[str]:
    """The VMs (by resource name) that this VM's registration depends on."""
    vms = {r.urn: r.name for r in run.of_type(VM)}
    return {vms[u] for u in run.named(name).dependencies if u in vms}


def full_clones_doc(count: int) -> dict:
    return sample_document(2 * count)  # even indexes full-clone template 9000, odd ones use an image


def test_full_clones_go_in_two_lanes_per_node_and_storage_by_default(pulumi_private_key):
    run = run_program(build_config(full_clones_doc(5)), pulumi_private_key)
    clones = [f"vm-{10000 + 2 * i}-vm" for i in range(5)]
    # clone i waits for clone i-2 of the same (node, storage), and for no other VM
    assert [vm_deps(run, c) for c in clones] == [set(), set(), {clones[0]}, {clones[1]}, {clones[2]}]
    assert all(vm_deps(run, f"vm-{10001 + 2 * i}-vm") == set() for i in range(5))  # image VMs: free
    # one download per image and node, shared by every VM using it
    assert len(run.of_type(DOWNLOAD)) == 1


@pytest.mark.parametrize("lanes", ["1", "3"])
def test_lanes_come_from_the_stack_config(lanes, pulumi_private_key):
    run = run_program(build_config(full_clones_doc(6)), pulumi_private_key, **{
        "phoenix-hypervisor:fullClonesPerStorage": lanes})
    clones = [f"vm-{10000 + 2 * i}-vm" for i in range(6)]
    k = int(lanes)
    assert [vm_deps(run, c) for c in clones] == [{clones[i - k]} if i >= k else set() for i in range(6)]


def test_lanes_are_per_node_and_target_storage(pulumi_private_key):
    doc = full_clones_doc(6)
    clones = [vm for vm in doc["vms"] if "clone_from" in vm]
    clones[1]["clone_from"] = 9001  # another template, same storage: same lanes
    clones[3]["storage"] = "ceph"    # another storage: its own lanes
    clones[4]["node"] = "pve2"       # another node: its own lanes
    clones[5]["storage"] = "ceph"
    run = run_program(build_config(doc), pulumi_private_key)
    names = [f"vm-{vm['vmid']}-vm" for vm in clones]
    assert [vm_deps(run, n) for n in names] == [set(), set(), {names[0]}, set(), set(), set()]


def test_linked_clones_are_not_bounded(pulumi_private_key):
    doc = full_clones_doc(6)
    doc["defaults"]["clone_mode"] = "linked"
    doc["vms"][10]["clone_mode"] = "full"  # one full clone among them: alone in its lanes
    run = run_program(build_config(doc), pulumi_private_key)
    assert all(vm_deps(run, r.name) == set() for r in run.of_type(VM))


def test_bad_lane_count_is_a_clear_error(pulumi_private_key):
    for bad in ("0", "two", "65"):
        monitor, error = run_main({**stack_config(pulumi_private_key)[0],
                                   "phoenix-hypervisor:fullClonesPerStorage": bad},
                                  stack_config(pulumi_private_key)[1])
        assert error is not None and nothing_registered(monitor)
        assert "phoenix-hypervisor:fullClonesPerStorage must be a whole number from 1 to 64" in str(error)
        assert "Traceback" not in str(error)


def test_program_is_deterministic(example, pulumi_private_key):
    def snapshot():
        run = run_program(example, pulumi_private_key)
        return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True, default=str), sorted(r.dependencies))
                      for r in run.registrations)

    assert snapshot() == snapshot()


def test_cloud_init_change_leaves_the_vm_alone(doc, pulumi_private_key):
    before = run_program(build_config(doc), pulumi_private_key)
    doc["vms"][0]["packages"] = ["htop", "jq"]
    doc["vms"][0]["user"] = {"ssh_authorized_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm ops@ci"]}
    after = run_program(build_config(doc), pulumi_private_key)
    assert before.named("vm-8001-user-data").inputs != after.named("vm-8001-user-data").inputs
    # the snippet is replaced in place (same file name, delete first); the VM sees no change
    assert after.named("vm-8001-user-data").delete_before_replace
    assert before.named("vm-8001-vm").inputs == after.named("vm-8001-vm").inputs
    assert after.named("vm-8001-vm").replace_on_changes == []


def test_opt_in_recreate_on_cloud_init_change(doc, pulumi_private_key):
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    before = run_program(build_config(doc), pulumi_private_key)
    doc["vms"][0]["packages"] = ["htop", "jq"]
    after = run_program(build_config(doc), pulumi_private_key)
    vm_before, vm_after = before.named("vm-8001-vm"), after.named("vm-8001-vm")
    assert vm_after.replace_on_changes == ["description"]
    assert vm_before.inputs["description"] != vm_after.inputs["description"]
    assert "cloud-init config sha256:" in vm_after.inputs["description"]
    # the other VM did not opt in
    assert before.named("vm-8002-vm").inputs == after.named("vm-8002-vm").inputs


def test_protect_maps_to_pulumi_protect(doc, pulumi_private_key):
    doc["vms"][1]["protect"] = True
    run = run_program(build_config(doc), pulumi_private_key)
    assert run.named("vm-8002-vm").protect is True and run.named("vm-8001-vm").protect is False


def test_stack_outputs(example_run):
    # the readiness values are what the mock GuestAgentReady returned (tests/pulumi_harness.py):
    # the outputs show the readiness resource's facts, not the config's
    ready = {"cloudInitStatus": "done", "secondsToAgent": 12.5, "secondsToCloudInit": 40.0,
             "ipv4Addresses": [], "user": "phoenix"}
    assert example_run.outputs["vms"] == {
        "phoenix-docker-01": {"vmid": 8001, "name": "phoenix-docker-01", "node": "pve", "ip": "10.0.0.101",
                              "configuredIp": "10.0.0.101", **ready},
        "phoenix-web-01": {"vmid": 8002, "name": "phoenix-web-01", "node": "pve", "ip": "10.0.0.102",
                           "configuredIp": "10.0.0.102", **ready},
    }


def test_readiness_waits_for_each_vm(example_run):
    for vmid, timeout in ((8001, 900), (8002, 900)):
        ready = example_run.named(f"vm-{vmid}-ready")
        vm = example_run.named(f"vm-{vmid}-vm")
        assert ready.parent == example_run.named(f"vm-{vmid}").urn and vm.urn in ready.dependencies
        assert ready.inputs["vmid"] == vmid and ready.inputs["node"] == "pve" and ready.inputs["timeout_s"] == timeout
        # the VM id (= vmid) is kept as an input only so existing state shows no diff
        assert ready.inputs["vm_resource_id"] == f"vm-{vmid}-vm-id"
        assert ready.property_dependencies["vm_resource_id"] == [vm.urn]
        # the API token reaches the provider through the stack config, not through state
        assert "api_token" not in ready.inputs
        # an agent timeout names what this VM's first boot needed (its gateway and DNS)
        assert ready.inputs["first_boot_hint"].startswith(f"VM {vmid} (")
        assert "gateway 10.0.0.1" in ready.inputs["first_boot_hint"]


def test_guest_agent_timeout_comes_from_the_config(doc, pulumi_private_key):
    doc["vms"][1]["guest_agent"] = {"timeout_s": 120}
    run = run_program(build_config(doc), pulumi_private_key)
    assert run.named("vm-8002-ready").inputs["timeout_s"] == 120
    assert run.named("vm-8001-ready").inputs["timeout_s"] == 900


def test_features_run_over_ssh_after_readiness(example_run, pulumi_private_key):
    (feature,) = [r for r in example_run.of_type(FEATURE) if r.inputs["feature"] != "converge"]
    ready = example_run.named("vm-8001-ready")
    assert feature.name == "vm-8001-feature-docker" and feature.parent == example_run.named("vm-8001").urn
    assert ready.urn in feature.dependencies
    assert feature.inputs["feature"] == "docker" and feature.inputs["host"] == "10.0.0.101"
    assert feature.inputs["username"] == "phoenix"
    # host keys pinned from what the readiness resource read through the guest agent
    assert feature.inputs["host_keys"] == [GUEST_HOST_KEY]
    assert feature.property_dependencies["host_keys"] == [ready.urn]
    assert feature.inputs["triggers"] == ["vm-8001-vm-id"]
    assert "private_key" in feature.secret_inputs and feature.inputs["private_key"] == pulumi_private_key


def test_converge_step_per_vm_with_the_seeds_keys_and_secret_key(example_run, doc,
                                                                  pulumi_private_key):
    converge = example_run.named("vm-8001-converge")
    vm = build_config(doc).vm(8001)
    params = converge.inputs["params"]
    assert params["packages"] == " ".join(vm.packages)
    # the same keys as the seed's users[0].ssh_authorized_keys: nothing to change on a new VM
    user_data = example_run.named("vm-8001-user-data").inputs["sourceRaw"]["data"]
    import yaml
    assert params["keys"].splitlines() == yaml.safe_load(user_data)["users"][0]["ssh_authorized_keys"]
    assert params["login_key"] == params["keys"].splitlines()[-1]
    assert "private_key" in converge.secret_inputs
    assert converge.inputs["connect_timeout_s"] == 120


def test_feature_params_from_the_config(doc, pulumi_private_key):
    doc["vms"][0]["features"] = [{"name": "docker", "params": {"user": "ops"}}]
    run = run_program(build_config(doc), pulumi_private_key)
    assert run.named("vm-8001-feature-docker").inputs["params"] == {"user": "ops"}


def test_generated_configs(pulumi_private_key):
    run = run_program(build_config(sample_document(40)), pulumi_private_key)
    assert len(run.of_type(VM)) == 40 and len(run.of_type(SNIPPET)) == 120
    names = [r.inputs["name"] for r in run.of_type(VM)]
    assert len(set(names)) == 40


# -- __main__.py: the program as `pulumi up` runs it --------------------------------------------

@pytest.fixture(autouse=True)
def private_home(monkeypatch, tmp_path):
    """__main__.py writes the nodes' pinned host keys to $HOME/.ssh/known_hosts: not the tester's."""
    monkeypatch.setenv("HOME", str(tmp_path))


def run_main(values: dict, secret_keys: list) -> tuple[RecordingMonitor, pulumi.RunError | None]:
    """__main__.py as `pulumi up` runs it, under the mock engine: (registrations, RunError or None)."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    fresh_mocks(mocks, monitor, stack="dev")
    pulumi.runtime.set_all_config(values, secret_keys)

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    try:
        program()
    except pulumi.RunError as exc:
        return monitor, exc
    return monitor, None


def nothing_registered(monitor: RecordingMonitor) -> bool:
    return not [r for r in monitor.registrations if r.type != "pulumi:pulumi:Stack"]


def test_main_runs_the_example(pulumi_private_key):
    monitor, error = run_main(*stack_config(pulumi_private_key))
    assert error is None and sum(r.type == VM for r in monitor.registrations) == 2


def test_main_stops_cleanly_on_a_broken_config(tmp_path, doc, pulumi_private_key):
    doc["vms"][1]["vmid"] = 8001
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    monitor, error = run_main(*stack_config(pulumi_private_key, **{"phoenix-hypervisor:vmConfigFile": str(bad)}))
    assert "vms[1] (vmid 8001, phoenix-web-01): vmid: 8001 is already used" in str(error)
    assert "nothing was created" in str(error) and nothing_registered(monitor)


def test_main_names_missing_stack_config():
    monitor, error = run_main({"proxmoxve:endpoint": "https://pve:8006/"}, [])
    assert "proxmoxve:apiToken" in str(error) and "phoenix-hypervisor:sshPrivateKey" in str(error)
    assert nothing_registered(monitor)


def test_zfs_section_sets_properties_over_ssh(example_run, pulumi_private_key):
    (zfs,) = example_run.of_type(ZFS)
    assert zfs.name == "zfs-pve-quickOS-vm-disks-compression"
    assert zfs.inputs["dataset"] == "quickOS/vm-disks" and zfs.inputs["property"] == "compression"
    assert zfs.inputs["value"] == "lz4" and zfs.inputs["host"] == "192.0.2.10"
    assert zfs.inputs["username"] == "root" and zfs.inputs["host_keys"] == [NODE_HOST_KEY]
    assert "private_key" in zfs.secret_inputs and zfs.inputs["private_key"] == pulumi_private_key


@pytest.mark.parametrize("nodes,expected", [
    ("{}", "zfs[0]: node 'pve' has no entry in stack config phoenix-hypervisor:nodes"),
    ('{"pve": {"address": "192.0.2.10"}}', "phoenix-hypervisor:nodes.pve.hostKeys is empty"),
    ('{"pve": {"address": "192.0.2.10", "hostKeys": ["ssh-ed25519 AAAA"]}}', "phoenix-hypervisor:nodes.pve.hostKeys:"),
])
def test_zfs_needs_the_nodes_pinned_host_key(pulumi_private_key, nodes, expected):
    monitor, error = run_main(*stack_config(pulumi_private_key, **{"phoenix-hypervisor:nodes": nodes}))
    assert expected in str(error) and "nothing was created" in str(error) and nothing_registered(monitor)


def test_unusable_private_key_is_a_clear_error():
    bad_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-xyzzy\n-----END OPENSSH PRIVATE KEY-----"
    monitor, error = run_main(*stack_config(bad_key))
    assert "phoenix-hypervisor:sshPrivateKey" in str(error) and "xyzzy" not in str(error)
    assert nothing_registered(monitor)
