"""The ZfsProperty provider against a real sshd, with a CLEARLY NAMED STAND-IN `zfs`.

Real ZFS is not available on this machine: `ssh_standin_zfs.py` is installed as `zfs` in the
sshd fixture's stand-in PATH directory and keeps its datasets in a JSON file, following real
zfs's output format, inheritance rules and error messages. What runs for real: SSH, the
quoting, the provider's get/set/drift/restore logic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ssh_fixtures import TEST_USER, running_sshd

from phoenix.zfs import check_zfs_property, normalize
from phoenix.zfs.provider import ZfsPropertyProvider
from phoenix.zfs.remote_zfs import ZfsError

STANDIN = Path(__file__).with_name("ssh_standin_zfs.py")


@pytest.fixture(scope="module")
def sshd():
    yield from running_sshd(["root", TEST_USER])


@pytest.fixture
def zfs_node(sshd):
    zfs = sshd.standin_bin / "zfs"
    shutil.copy(STANDIN, zfs)
    zfs.chmod(0o755)
    state = sshd.standin_bin / "zfs-state.json"
    state.write_text(json.dumps({"quickOS": {"compression": "on"}, "quickOS/vm-disks": {},
                                 "quickOS/local": {"compression": "zstd"}}))
    state.chmod(0o666)
    yield sshd
    zfs.unlink(missing_ok=True)
    state.unlink(missing_ok=True)


def node_state(server) -> dict:
    return json.loads((server.standin_bin / "zfs-state.json").read_text())


def props_for(server, dataset: str, prop: str, value: str, user: str = "root") -> dict:
    return {
        "host": "127.0.0.1", "port": server.port, "username": user,
        "private_key": server.client_key, "host_keys": [server.host_key_line],
        "dataset": dataset, "property": prop, "value": value, "sudo": False,
        "connect_timeout_s": 10, "provider_version": "1",
        "original_value": None, "original_source": None, "source": None,
    }


def test_set_drift_and_restore_inherited_value(zfs_node):
    provider = ZfsPropertyProvider()
    props = props_for(zfs_node, "quickOS/vm-disks", "compression", "lz4")
    created = provider.create(props)
    assert created.id == "quickOS/vm-disks:compression"
    assert created.outs["original_value"] == "on"
    assert created.outs["original_source"] == "inherited from quickOS"
    assert created.outs["source"] == "local"
    assert node_state(zfs_node)["quickOS/vm-disks"] == {"compression": "lz4"}

    # No drift: refresh reads the same value and the diff is empty.
    read = provider.read(created.id, created.outs)
    assert read.outs["value"] == "lz4"
    assert provider.diff(created.id, read.outs, props).changes is False

    # Someone changes it by hand on the node: refresh shows it, the next up puts it back.
    state = node_state(zfs_node)
    state["quickOS/vm-disks"]["compression"] = "zstd"
    (zfs_node.standin_bin / "zfs-state.json").write_text(json.dumps(state))
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["value"] == "zstd"
    diff = provider.diff(created.id, drifted.outs, props)
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, drifted.outs, props).outs
    assert updated["original_source"] == "inherited from quickOS"
    assert node_state(zfs_node)["quickOS/vm-disks"] == {"compression": "lz4"}

    # Delete: it was inherited before, so `zfs inherit` (not `zfs set on`).
    provider.delete(created.id, updated)
    assert node_state(zfs_node)["quickOS/vm-disks"] == {}


def test_delete_restores_a_recorded_local_value(zfs_node):
    provider = ZfsPropertyProvider()
    props = props_for(zfs_node, "quickOS/local", "compression", "lz4")
    created = provider.create(props)
    assert (created.outs["original_value"], created.outs["original_source"]) == ("zstd", "local")
    provider.delete(created.id, created.outs)
    assert node_state(zfs_node)["quickOS/local"] == {"compression": "zstd"}


def test_value_already_effective_is_not_set_again(zfs_node):
    props = props_for(zfs_node, "quickOS/vm-disks", "compression", "on")
    created = ZfsPropertyProvider().create(props)
    assert created.outs["source"] == "inherited from quickOS"
    assert node_state(zfs_node)["quickOS/vm-disks"] == {}


def test_sizes_compare_in_parseable_form(zfs_node):
    provider = ZfsPropertyProvider()
    props = props_for(zfs_node, "quickOS/vm-disks", "recordsize", "1M")
    created = provider.create(props)
    read = provider.read(created.id, created.outs)
    assert read.outs["value"] == "1048576"  # what `zfs get -p` prints
    assert provider.diff(created.id, read.outs, props).changes is False
    provider.delete(created.id, created.outs)
    assert node_state(zfs_node)["quickOS/vm-disks"] == {}


def test_missing_dataset_is_a_clear_error(zfs_node):
    with pytest.raises(ZfsError, match="dataset 'quickOS/nope' does not exist"):
        ZfsPropertyProvider().create(props_for(zfs_node, "quickOS/nope", "compression", "lz4"))
    gone = props_for(zfs_node, "quickOS/nope", "compression", "lz4")
    assert ZfsPropertyProvider().read("quickOS/nope:compression", gone).id is None


def test_missing_zfs_command_is_a_clear_error(sshd):
    assert not (sshd.standin_bin / "zfs").exists()
    with pytest.raises(ZfsError, match="zfs command is not installed"):
        ZfsPropertyProvider().create(props_for(sshd, "quickOS/vm-disks", "compression", "lz4"))


def test_rejected_value_reports_zfs_stderr(zfs_node):
    # Valid by our table (zstd-3) but refused by this node's zfs: its message comes through.
    with pytest.raises(ZfsError, match="'compression' must be one of"):
        ZfsPropertyProvider().create(props_for(zfs_node, "quickOS/vm-disks", "compression",
                                               "zstd-3"))


def test_dataset_change_replaces_value_or_node_address_change_updates():
    provider = ZfsPropertyProvider()
    olds = {"host": "a", "dataset": "p/d", "property": "compression", "value": "lz4"}
    assert provider.diff("x", olds, {**olds, "dataset": "p/e"}).replaces == ["dataset"]
    # issue 18 case 7: a node's new address is an update, never a delete at the old address
    moved = provider.diff("x", olds, {**olds, "host": "b"})
    assert moved.changes and moved.replaces == []
    value = provider.diff("x", olds, {**olds, "value": "zstd"})
    assert value.changes and value.replaces == []
    assert provider.diff("x", olds, dict(olds)).changes is False


def test_check_zfs_property_validation():
    assert check_zfs_property("quickOS/vm-disks", "compression", "lz4") == []
    assert check_zfs_property("rpool/data", "recordsize", "1M") == []
    assert check_zfs_property("tank", "com.example:owner", "team a") == []
    assert check_zfs_property("tank", "quota", "none") == []
    assert "dataset '-r'" in check_zfs_property("-r", "compression", "lz4")[0]
    assert check_zfs_property("tank/ds@snap", "compression", "lz4")  # snapshots refused
    assert "expected one of" in check_zfs_property("tank", "compression", "lz5")[0]
    assert "power of two" in check_zfs_property("tank", "recordsize", "100K")[0]
    assert "not one this tool sets" in check_zfs_property("tank", "volblocksize", "8K")[0]
    assert check_zfs_property("tank", "compression", "lz4\n; reboot")  # control characters
    assert normalize("recordsize", "128K") == "131072"
    assert normalize("compression", "lz4") == "lz4"


def test_values_are_quoted_not_interpreted(zfs_node, tmp_path):
    # A user property value full of shell syntax arrives as data.
    value = "$(touch /tmp/phoenix-zfs-pwned) ; `id` 'q'"
    props = props_for(zfs_node, "quickOS/vm-disks", "com.example:note", value)
    ZfsPropertyProvider().create(props)
    assert node_state(zfs_node)["quickOS/vm-disks"]["com.example:note"] == value
    assert not Path("/tmp/phoenix-zfs-pwned").exists()


def test_diff_ignores_the_serialised_provider():
    props = {"host": "192.0.2.10", "port": 22.0, "username": "root", "private_key": "k",
             "host_keys": ["ssh-ed25519 AAAA"], "dataset": "quickOS/vm-disks",
             "property": "compression", "value": "lz4", "sudo": False,
             "connect_timeout_s": 60.0, "provider_version": "1"}
    olds = {**props, "__provider": "blob-protocol-4", "source": "local",
            "original_value": "on", "original_source": "inherited from quickOS"}
    provider = ZfsPropertyProvider()
    assert provider.diff("id", olds, {**props, "__provider": "blob-protocol-5"}).changes is False
    assert provider.diff("id", olds, {**props, "value": "zstd"}).changes is True


def test_a_node_address_change_updates_at_the_new_address_and_keeps_the_original(zfs_node):
    """Issue 18 case 7: the node is reached at its new address by an update; the recorded
    original value stays, so a later delete still restores it; the old address is never used."""
    provider = ZfsPropertyProvider()
    props = props_for(zfs_node, "quickOS/vm-disks", "compression", "lz4")
    created = provider.create(props)
    moved = {**props, "host": "localhost"}  # the same sshd, under another address
    diff = provider.diff(created.id, created.outs, moved)
    assert diff.changes and diff.replaces == []
    updated = provider.update(created.id, created.outs, moved).outs
    assert updated["host"] == "localhost"
    assert updated["original_source"] == "inherited from quickOS"
    provider.delete(created.id, updated)
    assert node_state(zfs_node)["quickOS/vm-disks"] == {}
