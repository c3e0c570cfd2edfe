"""QgaSocketTransport against a small guest-agent socket peer (the real agent: the realboot tests)."""

from __future__ import annotations

import tempfile
import time

import pytest
from readiness_fixtures import AgentPeer, ExecAnswer

from phoenix.readiness.qga import QgaSocketTransport
from phoenix.readiness.transport import (
    AgentCommandError,
    AgentNotRunningError,
    VmNotRunningError,
    run_command,
)


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="qga-") as path:
        yield path


@pytest.fixture
def peer(sock_dir):
    agent = AgentPeer(path=f"{sock_dir}/qga.sock")
    yield agent
    agent.stop()


def test_ping_resyncs_with_delimiter_before_each_command(peer):
    transport = QgaSocketTransport(peer.path)
    try:
        transport.ping(timeout_s=2)
        transport.ping(timeout_s=2)
    finally:
        transport.close()
    assert peer.commands() == ["guest-sync-delimited", "guest-ping"] * 2
    assert peer.delimiters_seen == 2
    ids = [m["arguments"]["id"] for m in peer.received if m["execute"] == "guest-sync-delimited"]
    assert ids[0] != ids[1]
    assert transport.calls == 2


def test_stale_replies_before_the_sync_answer_are_dropped(peer):
    # A reply to an older command, one with a wrong sync id and noise arrive first: the
    # transport must not take any of them for the ping's answer.
    peer.stale_replies = [b'{"return": {"pid": 77}}\n', b'\xff{"return": 12345}\n', b"garbage\n"]
    transport = QgaSocketTransport(peer.path)
    try:
        transport.ping(timeout_s=2)
        peer.execs["uname -r"] = ExecAnswer(stdout="6.1.0\n")
        peer.stale_replies = [b'{"return": {}}\n']
        pid = transport.exec_start(["uname", "-r"], timeout_s=2)
    finally:
        transport.close()
    assert pid == 4000


def test_silent_agent_is_not_running_after_sync_timeout(peer):
    peer.answering = False
    transport = QgaSocketTransport(peer.path, sync_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(AgentNotRunningError, match="did not answer guest-sync-delimited"):
        transport.ping(timeout_s=5)
    assert time.monotonic() - started < 1.5
    # The agent starts: the next ping works on a fresh connection despite the swallowed bytes.
    peer.answering = True
    transport.ping(timeout_s=2)
    transport.close()


def test_missing_socket_means_vm_not_running(sock_dir):
    transport = QgaSocketTransport(f"{sock_dir}/nothing.sock")
    assert transport.vm_status(timeout_s=1) == "stopped"
    with pytest.raises(VmNotRunningError, match="no QEMU listening"):
        transport.ping(timeout_s=1)
    assert QgaSocketTransport("x", is_running=lambda: True).vm_status(timeout_s=1) == "running"


def test_exec_decodes_base64_output_and_polls_until_exited(peer):
    peer.execs["cloud-init status"] = ExecAnswer(exitcode=2, stdout="status: done\n",
                                                 stderr="warn\n", running_polls=2)
    transport = QgaSocketTransport(peer.path)
    try:
        result = run_command(transport, ["cloud-init", "status"], timeout_s=10)
    finally:
        transport.close()
    assert (result.exitcode, result.stdout, result.stderr) == (2, "status: done\n", "warn\n")
    assert peer.commands().count("guest-exec-status") == 3
    exec_msg = next(m for m in peer.received if m["execute"] == "guest-exec")
    assert exec_msg["arguments"] == {"path": "cloud-init", "arg": ["status"],
                                     "capture-output": True}


def test_agent_error_is_a_command_error(peer):
    transport = QgaSocketTransport(peer.path)
    try:
        with pytest.raises(AgentCommandError, match="Failed to execute child process"):
            transport.exec_start(["no-such-program"], timeout_s=2)
        with pytest.raises(AgentCommandError, match="No such file"):
            transport.file_read("/nope", timeout_s=2)
        transport.ping(timeout_s=2)  # the connection is still usable after an agent error
    finally:
        transport.close()


def test_file_read_in_chunks_and_closes_the_handle(peer, monkeypatch):
    monkeypatch.setattr("phoenix.readiness.qga.FILE_CHUNK", 7)
    peer.files["/var/log/cloud-init-output.log"] = b"line one\nline two\nline three\n"
    transport = QgaSocketTransport(peer.path)
    try:
        data = transport.file_read("/var/log/cloud-init-output.log", timeout_s=5)
    finally:
        transport.close()
    assert data == b"line one\nline two\nline three\n"
    assert peer.commands().count("guest-file-read") == 5
    assert peer.commands()[-1] == "guest-file-close"


def test_network_interfaces_and_shutdown(peer):
    peer.interfaces = [
        {"name": "lo", "hardware-address": "00:00:00:00:00:00",
         "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
        {"name": "eth0", "hardware-address": "52:54:00:12:34:56",
         "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                          {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64}]},
    ]
    transport = QgaSocketTransport(peer.path)
    try:
        interfaces = transport.network_interfaces(timeout_s=2)
        transport.shutdown()
        deadline = time.monotonic() + 2
        while "guest-shutdown" not in peer.commands() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        transport.close()
    assert [i.name for i in interfaces] == ["lo", "eth0"]
    assert interfaces[1].mac == "52:54:00:12:34:56"
    assert [(a.address, a.family, a.prefix) for a in interfaces[1].addresses] == [
        ("10.0.2.15", "ipv4", 24), ("fe80::1", "ipv6", 64)]
    assert peer.received[-1] == {"execute": "guest-shutdown", "arguments": {"mode": "powerdown"}}
