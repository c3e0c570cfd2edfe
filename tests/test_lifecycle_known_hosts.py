"""The nodes' pinned host keys in the known_hosts file that bpg's SSH client reads.

OpenSSH's own `ssh-keygen -F` is the peer that checks the written lines: bpg's Go knownhosts
reads the same format (host normalised as `addr` for port 22, `[addr]:port` otherwise).
"""

from __future__ import annotations

import stat
import subprocess

import pytest
from pulumi_harness import NODE_HOST_KEY, stack_config

from phoenix.remote.hostkeys import parse_pinned_keys
from phoenix.resources.node_known_hosts import (
    KnownHostsConflict,
    ensure_known_hosts,
    known_hosts_name,
    plan_known_hosts,
    unpinned_nodes,
)
from phoenix.resources.settings import NodeSsh

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF other"


def nodes(**specs) -> dict[str, NodeSsh]:
    return {name: NodeSsh(name=name, **spec) for name, spec in specs.items()}


def test_names_as_go_knownhosts_normalises_them():
    assert known_hosts_name("192.0.2.10", 22) == "192.0.2.10"
    assert known_hosts_name("192.0.2.10", 2222) == "[192.0.2.10]:2222"
    assert known_hosts_name("2001:db8::1", 22) == "[2001:db8::1]"


def test_missing_pins_are_added_and_openssh_finds_them(tmp_path):
    path = tmp_path / ".ssh" / "known_hosts"
    pinned = nodes(pve=dict(address="192.0.2.10", host_keys=(NODE_HOST_KEY,)),
                   pve2=dict(address="192.0.2.11", port=2222, host_keys=(NODE_HOST_KEY,)))
    added = ensure_known_hosts(pinned, path)
    assert len(added) == 2 and stat.S_IMODE(path.stat().st_mode) == 0o600
    for host in ("192.0.2.10", "[192.0.2.11]:2222"):
        found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(path)],
                               check=False, capture_output=True, text=True)
        assert found.returncode == 0 and NODE_HOST_KEY.split()[1] in found.stdout, found
    assert ensure_known_hosts(pinned, path) == []  # idempotent
    assert len(path.read_text().splitlines()) == 2


def test_an_unpinned_key_already_trusted_stops_everything(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"192.0.2.10 {' '.join(OTHER_KEY.split()[:2])}\n")
    with pytest.raises(KnownHostsConflict) as info:
        ensure_known_hosts(nodes(pve=dict(address="192.0.2.10", host_keys=(NODE_HOST_KEY,))), path)
    text = str(info.value)
    other = parse_pinned_keys([OTHER_KEY])[0]
    assert "phoenix-hypervisor:nodes.pve" in text and other.fingerprint in text
    assert "ssh-keygen -R '192.0.2.10'" in text
    assert path.read_text().count("\n") == 1  # nothing written


def test_hashed_entries_count_and_other_hosts_are_left_alone(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"192.0.2.10 {' '.join(NODE_HOST_KEY.split()[:2])}\n"
                    f"198.51.100.7 {' '.join(OTHER_KEY.split()[:2])}\n@cert-authority *.lab ssh-ed25519 AAAA\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    plan = plan_known_hosts(nodes(pve=dict(address="192.0.2.10", host_keys=(NODE_HOST_KEY,))), path.read_text())
    assert plan.add == () and plan.conflicts == ()


def test_unpinned_nodes_are_named():
    configured = nodes(pve=dict(address="192.0.2.10", host_keys=(NODE_HOST_KEY,)), pve2=dict(address="x"))
    assert unpinned_nodes(["pve", "pve2", "pve3"], configured) == ["pve2", "pve3"]


def test_the_program_pins_before_registering_and_refuses_a_conflict(monkeypatch, tmp_path, pulumi_private_key):
    from test_resources import VM, run_main

    monkeypatch.setenv("HOME", str(tmp_path))
    monitor, error = run_main(*stack_config(pulumi_private_key))
    assert error is None and any(r.type == VM for r in monitor.registrations)
    assert (tmp_path / ".ssh" / "known_hosts").read_text().split() == ["192.0.2.10", *NODE_HOST_KEY.split()[:2]]

    (tmp_path / ".ssh" / "known_hosts").write_text(f"192.0.2.10 {' '.join(OTHER_KEY.split()[:2])}\n")
    monitor, error = run_main(*stack_config(pulumi_private_key))
    assert error is not None and "not pinned in hostKeys" in str(error)
    assert not [r for r in monitor.registrations if r.type != "pulumi:pulumi:Stack"]
