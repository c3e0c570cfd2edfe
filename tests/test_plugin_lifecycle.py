"""The three dynamic resources through the real plugin process, as the engine drives them.

Each test takes the inputs the program registers under the mock engine (the real `__provider`
blobs included), points their connection at the local sshd or at fakepve, and drives the
`python -u -m pulumi.dynamic` process over gRPC (tests/plugin_process.py): create -> read ->
diff (must be empty) -> update -> delete; the same provider re-pickled under another protocol
(what Python 3.14 or a dill upgrade does) must change nothing; unknown inputs (a preview) must
pass check; an unreachable VM must neither block refresh nor destroy.

Logins are counted in the sshd log ("Accepted publickey"): "no SSH" means no login at all.
"""

from __future__ import annotations

import base64
import json
import pwd
import time
from pathlib import Path

import dill
import pytest
from plugin_process import UNKNOWN, PluginCallError, running_plugin
from pulumi_harness import run_program, stack_config
from readiness_fixtures import add_token, add_vm, agent_answers, openssh_public_keys
from ssh_fixtures import TEST_USER, free_port, running_sshd

# Fixtures of the direct provider tests, reused here under these names.
from test_ssh_features import DEV, DEV_OPS, groups_of, guarded_path
from test_ssh_features import docker_host as docker_node  # noqa: F401 - fixture
from test_ssh_zfs import node_state
from test_ssh_zfs import zfs_node as zfs_host  # noqa: F401 - fixture

from phoenix.config import load_config
from phoenix.features.catalog import FEATURES

ROOT = Path(__file__).resolve().parents[1]
DYNAMIC = "pulumi-python:dynamic/phoenix:"


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def registered(pulumi_private_key, example_config_path) -> dict[str, dict]:
    """What the engine would send for vm-8001's resources: registered inputs, `__provider`
    included, secrets unwrapped."""
    run = run_program(load_config(example_config_path), pulumi_private_key)
    found: dict[str, dict] = {}
    for registration in run.registrations:
        if registration.type.startswith(DYNAMIC) and "8002" not in registration.name:
            kind = registration.type[len(DYNAMIC):]
            if registration.name.endswith("-converge"):  # the built-in step (edits: in-place)
                kind = "Converge"
            found.setdefault(kind, registration.provider_inputs())
    return found


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    yield from running_sshd(["root", TEST_USER], path=guarded_path(tmp_path_factory))


@pytest.fixture
def plugin(pulumi_private_key):
    config, _ = stack_config(pulumi_private_key)
    yield from running_plugin(config)


def logins(server) -> int:
    return server.stderr_path.read_text().count("Accepted publickey")


def reencoded(blob: str) -> str:
    """The same provider object pickled again under protocol 5 (Python 3.14's default)."""
    provider = dill.loads(base64.b64decode(blob))
    again = base64.b64encode(dill.dumps(provider, protocol=5, recurse=True)).decode()
    assert again != blob
    return again


def feature_inputs(registered: dict, server, **changes) -> dict:
    """The registered docker feature, aimed at the local sshd as root (no sudo: its
    secure_path would drop the stand-in PATH entry)."""
    inputs = {**registered["Feature"], "host": "127.0.0.1", "port": server.port,
              "username": "root", "private_key": server.client_key,
              "host_keys": [server.host_key_line], "sudo": False, "connect_timeout_s": 10,
              "run_timeout_s": 60, "marker_dir": str(server.workdir / "markers"),
              "params": {"user": DEV}}
    inputs.update(changes)
    return inputs


def zfs_inputs(registered: dict, server, **changes) -> dict:
    inputs = {**registered["ZfsProperty"], "host": "127.0.0.1", "port": server.port,
              "private_key": server.client_key, "host_keys": [server.host_key_line],
              "connect_timeout_s": 10}
    inputs.update(changes)
    return inputs


# ---------------------------------------------------------------------------- Feature

def test_feature_lifecycle_runs_only_what_it_must(plugin, registered, docker_node):  # noqa: F811
    news = plugin.check({}, feature_inputs(registered, docker_node)).inputs
    id_, outs = plugin.create(news)
    assert outs["exit_code"] == 0 and outs["marker"] and DEV in "".join(groups_of(DEV))
    assert plugin.diff(id_, outs, news).changes == "DIFF_NONE"

    rid, refreshed, _ = plugin.read(id_, outs, news)
    assert rid == id_ and refreshed["marker"] == outs["marker"]
    assert plugin.diff(id_, refreshed, news).changes == "DIFF_NONE"

    # The same provider, pickled again: no diff, and not one login even if asked to update.
    before = logins(docker_node)
    repickled = plugin.check(news, {**news, "__provider": reencoded(news["__provider"])}).inputs
    diff = plugin.diff(id_, refreshed, repickled)
    assert (diff.changes, diff.replaces) == ("DIFF_NONE", [])
    kept = plugin.update(id_, refreshed, repickled)
    assert kept["marker"] == outs["marker"] and kept["__provider"] == repickled["__provider"]
    assert logins(docker_node) == before

    # A changed parameter is an update that runs the script again (once).
    changed = {**repickled, "params": {"user": DEV_OPS}}
    diff = plugin.diff(id_, kept, changed)
    assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
    updated = plugin.update(id_, kept, changed)
    assert logins(docker_node) == before + 1
    assert updated["marker"] != outs["marker"] and "docker" in groups_of(DEV_OPS)

    # A longer run timeout only: recorded, nothing runs.
    timeout_only = {**changed, "run_timeout_s": 120}
    assert plugin.diff(id_, updated, timeout_only).changes == "DIFF_SOME"
    assert plugin.update(id_, updated, timeout_only)["run_timeout_s"] == 120
    assert logins(docker_node) == before + 1

    # docker has no delete script: nothing to undo, so destroy opens no connection.
    plugin.delete(id_, updated)
    assert logins(docker_node) == before + 1
    assert "no delete script: nothing to undo" in plugin.stderr()


def test_unreachable_vm_never_blocks_refresh_or_destroy(plugin, registered, sshd):
    closed = free_port()  # nothing listens there: a stopped or deleted VM
    spec = FEATURES["authorized-keys"]
    state = {**feature_inputs(registered, sshd, port=closed, connect_timeout_s=2),
             "feature": "authorized-keys", "script_hash": spec.script_hash(),
             "params": {"keys": sshd.client_public, "user": ""},
             "exit_code": 0, "stdout_tail": "", "changes": 1, "marker": "recorded-marker"}

    started = time.monotonic()
    rid, refreshed, _ = plugin.read("f1", state, state)
    assert rid == "f1" and refreshed["marker"] == "recorded-marker"
    assert refreshed["params"] == state["params"]
    plugin.delete("f1", state)  # completes: the VM cannot be reached
    assert time.monotonic() - started < 20
    stderr = plugin.stderr()
    assert "warning: [feature authorized-keys on 127.0.0.1] host not reachable" in stderr
    assert "refresh keeps the recorded state" in stderr
    assert "NOT UNDONE: the delete script authorized_keys_delete.sh did not run" in stderr
    assert sshd.client_key.splitlines()[1] not in stderr  # the key never reaches a log

    # A VM rebuilt behind Pulumi's back answers with another host key: not trusted, not
    # touched; refresh keeps the state too.
    other_key = openssh_public_keys()[0]
    rebuilt = {**state, "port": sshd.port, "host_keys": [other_key]}
    before = logins(sshd)
    assert plugin.read("f2", rebuilt, rebuilt)[1]["marker"] == "recorded-marker"
    plugin.delete("f2", rebuilt)
    assert logins(sshd) == before
    assert "host-key failed" in plugin.stderr()


def test_a_feature_of_a_vm_being_rebuilt_runs_no_delete_script(pulumi_private_key, registered, sshd):
    """Issue 18 case 6, in the process the engine starts (with the CLI's environment, where
    `python -m phoenix up` put PHOENIX_REPLACING): the delete opens no connection at all."""
    config, _ = stack_config(pulumi_private_key)
    spec = FEATURES["authorized-keys"]
    state = {**feature_inputs(registered, sshd), "feature": "authorized-keys",
             "script_hash": spec.script_hash(), "params": {"keys": sshd.client_public, "user": ""},
             "triggers": ["8001"], "exit_code": 0, "stdout_tail": "", "changes": 1, "marker": "m"}
    server = running_plugin(config, env={"PHOENIX_REPLACING": "8001"})
    plugin = next(server)
    try:
        before = logins(sshd)
        plugin.delete("f1", state)
        assert logins(sshd) == before
        assert "VM 8001 is being rebuilt: the delete script is not run" in plugin.stderr()
    finally:
        next(server, None)


def test_feature_preview_with_unknown_inputs(plugin, registered, sshd):
    known = plugin.check({}, feature_inputs(registered, sshd)).inputs
    unknowns = {**known, "host": UNKNOWN, "params": UNKNOWN, "triggers": [UNKNOWN]}
    checked = plugin.check({}, unknowns)
    assert checked.failures == [] and checked.inputs["params"] == UNKNOWN
    olds = {**known, "marker": "m", "exit_code": 0}
    assert plugin.diff("f", olds, {**known, "triggers": [UNKNOWN]}).changes == "DIFF_SOME"
    assert plugin.diff("f", olds, {**known, "host": UNKNOWN}).changes == "DIFF_SOME"


def test_converge_step_as_registered_through_the_plugin(plugin, registered, sshd):
    """The converge step's registered blob and inputs (packages, keys + Phoenix's key): check,
    create over SSH, an empty diff, refresh, a package edit as an update, delete without SSH.
    apt/dpkg/timedatectl are the stand-ins of test_ssh_converge.py."""
    from test_ssh_converge import STANDIN_APT_GET, STANDIN_DPKG_QUERY, STANDIN_TIMEDATECTL

    standins = {"dpkg-query": STANDIN_DPKG_QUERY, "apt-get": STANDIN_APT_GET,
                "timedatectl": STANDIN_TIMEDATECTL}
    for name, text in standins.items():
        (sshd.standin_bin / name).write_text(text)
        (sshd.standin_bin / name).chmod(0o755)
    (sshd.standin_bin / "dpkg-db").write_text("")
    try:
        _converge_through_the_plugin(plugin, registered, sshd)
    finally:
        for name in [*standins, "dpkg-db", "apt-get.log", "timedatectl.log", "timezone"]:
            (sshd.standin_bin / name).unlink(missing_ok=True)
        home = Path(pwd.getpwnam(TEST_USER).pw_dir)
        (home / ".ssh" / "authorized_keys").unlink(missing_ok=True)


def _converge_through_the_plugin(plugin, registered, sshd) -> None:
    registered_params = registered["Converge"]["params"]
    assert registered_params["packages"] and registered_params["login_key"]
    state_dir = sshd.workdir / "converge-plugin-state"
    inputs = {**registered["Converge"], "host": "127.0.0.1", "port": sshd.port,
              "username": "root", "private_key": sshd.client_key,
              "host_keys": [sshd.host_key_line], "sudo": False, "connect_timeout_s": 10,
              "run_timeout_s": 60, "marker_dir": str(sshd.workdir / "markers"),
              "params": {**registered_params, "user": TEST_USER, "state_dir": str(state_dir)}}
    checked = plugin.check({}, inputs)
    assert checked.failures == []
    news = checked.inputs
    rid, outs = plugin.create(news, name="vm-8001-converge")
    assert outs["changes"] >= 1 and outs["exit_code"] == 0
    installed = (sshd.standin_bin / "dpkg-db").read_text()
    assert all(f"{p} 1.0-standin" in installed for p in registered_params["packages"].split())
    assert plugin.diff(rid, outs, news).changes == "DIFF_NONE"  # a second up runs nothing
    assert plugin.read(rid, outs, news)[1]["marker"] == outs["marker"]
    edited = {**news, "params": {**news["params"], "packages": news["params"]["packages"] + " jq"}}
    assert plugin.diff(rid, outs, edited).changes == "DIFF_SOME"
    updated = plugin.update(rid, outs, edited)
    assert updated["changes"] == 1 and "jq 1.0-standin" in (sshd.standin_bin / "dpkg-db").read_text()
    before = logins(sshd)
    plugin.delete(rid, updated)  # no delete script: nothing to undo, no connection
    assert logins(sshd) == before


# ---------------------------------------------------------------------------- ZfsProperty

def test_zfs_property_lifecycle(plugin, registered, zfs_host):  # noqa: F811
    news = plugin.check({}, zfs_inputs(registered, zfs_host)).inputs
    assert (news["dataset"], news["property"], news["value"]) == \
        ("quickOS/vm-disks", "compression", "lz4")
    id_, outs = plugin.create(news)
    assert node_state(zfs_host)["quickOS/vm-disks"] == {"compression": "lz4"}
    assert outs["original_source"].startswith("inherited")
    rid, refreshed, _ = plugin.read(id_, outs, news)
    assert rid == id_ and refreshed["value"] == "lz4"
    assert plugin.diff(id_, refreshed, news).changes == "DIFF_NONE"

    before = logins(zfs_host)
    repickled = {**news, "__provider": reencoded(news["__provider"])}
    assert plugin.diff(id_, refreshed, repickled).changes == "DIFF_NONE"
    plugin.update(id_, refreshed, repickled)
    assert logins(zfs_host) == before

    changed = {**repickled, "value": "zstd"}
    diff = plugin.diff(id_, refreshed, changed)
    assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
    updated = plugin.update(id_, refreshed, changed)
    assert node_state(zfs_host)["quickOS/vm-disks"] == {"compression": "zstd"}
    assert updated["original_source"] == outs["original_source"]

    plugin.delete(id_, updated)
    assert node_state(zfs_host)["quickOS/vm-disks"] == {}  # inherited again, as before


def test_zfs_dataset_gone_read_drops_delete_completes(plugin, registered, zfs_host):  # noqa: F811
    news = plugin.check({}, zfs_inputs(registered, zfs_host)).inputs
    id_, outs = plugin.create(news)
    state_file = zfs_host.standin_bin / "zfs-state.json"
    datasets = node_state(zfs_host)
    del datasets["quickOS/vm-disks"]  # destroyed on the node by hand
    state_file.write_text(json.dumps(datasets))
    rid, gone, _ = plugin.read(id_, outs, news)
    assert rid == "" and set(gone) <= {"__provider"}
    plugin.delete(id_, outs)
    assert "dataset gone; nothing to restore" in plugin.stderr()


def test_unreachable_node_refresh_keeps_state_destroy_fails_clearly(plugin, registered, sshd):
    state = {**zfs_inputs(registered, sshd, port=free_port(), connect_timeout_s=2),
             "original_value": "on", "original_source": "inherited from quickOS",
             "source": "local"}
    rid, refreshed, _ = plugin.read("quickOS/vm-disks:compression", state, state)
    assert rid == "quickOS/vm-disks:compression" and refreshed["value"] == "lz4"
    assert "warning: [zfs quickOS/vm-disks compression on 127.0.0.1] host not reachable" \
        in plugin.stderr()
    with pytest.raises(PluginCallError) as caught:
        plugin.delete("quickOS/vm-disks:compression", state)
    assert "not restored" in caught.value.details
    assert "pulumi state delete" in caught.value.details


def test_zfs_preview_with_an_unknown_value(plugin, registered, sshd):
    known = plugin.check({}, zfs_inputs(registered, sshd)).inputs
    assert plugin.check({}, {**known, "value": UNKNOWN}).failures == []
    olds = {**known, "source": "local"}
    assert plugin.diff("z", olds, {**known, "value": UNKNOWN}).changes == "DIFF_SOME"
    # a node address not known yet: an update (the address is not the setting's identity)
    unknown_host = plugin.diff("z", olds, {**known, "host": UNKNOWN})
    assert unknown_host.changes == "DIFF_SOME" and list(unknown_host.replaces) == []


# ---------------------------------------------------------------------------- GuestAgentReady

@pytest.fixture
def pve_plugin(fakepve, fakepve_cafile, pulumi_private_key):
    """The plugin configured with the stack's Proxmox settings pointing at fakepve."""
    config, _ = stack_config(pulumi_private_key, **{
        "proxmoxve:endpoint": fakepve.url, "proxmoxve:apiToken": add_token(fakepve),
        "proxmoxve:insecure": "false"})
    yield from running_plugin(config, env={"REQUESTS_CA_BUNDLE": fakepve_cafile})


def test_readiness_lifecycle_and_a_vanished_vm(pve_plugin, registered, fakepve):
    vm = add_vm(fakepve)
    vm.agent = agent_answers(host_keys=openssh_public_keys())
    news = pve_plugin.check({}, {**registered["GuestAgentReady"], "timeout_s": 60}).inputs
    id_, outs = pve_plugin.create(news)
    assert id_.startswith("pve/8001/") and outs["cloud_init_status"] == "done"
    assert fakepve.apitokens and json.dumps(outs).find(add_token(fakepve)) == -1
    rid, refreshed, _ = pve_plugin.read(id_, outs, news)
    assert rid == id_ and refreshed["ssh_host_keys"] == outs["ssh_host_keys"]
    assert pve_plugin.diff(id_, refreshed, news).changes == "DIFF_NONE"
    repickled = {**news, "__provider": reencoded(news["__provider"])}
    assert pve_plugin.diff(id_, refreshed, repickled).changes == "DIFF_NONE"

    fakepve.vms.remove(vm)  # deleted by hand (or by the VM's own replacement)
    rid, gone, _ = pve_plugin.read(id_, refreshed, news)
    assert rid == "" and set(gone) <= {"__provider"}  # the engine drops the resource
    pve_plugin.delete(id_, refreshed)  # nothing to undo, never fails


def test_readiness_check_accepts_unknowns_from_the_engine(pve_plugin, registered):
    inputs = {**registered["GuestAgentReady"], "vmid": UNKNOWN, "node": UNKNOWN,
              "timeout_s": UNKNOWN, "vm_resource_id": UNKNOWN}
    checked = pve_plugin.check({}, inputs)
    assert checked.failures == [] and checked.inputs["vmid"] == UNKNOWN
    bad = pve_plugin.check({}, {**registered["GuestAgentReady"], "vmid": 12.5})
    assert [property_ for property_, _ in bad.failures] == ["vmid"]
