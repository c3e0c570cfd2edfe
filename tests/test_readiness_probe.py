"""The readiness probe: one exec that answers cloud-init's status, the host keys and the addresses.

Its shell text runs here for real (`sh -c PROBE_SCRIPT` with a stand-in `cloud-init` first on
PATH and this machine's own `ip`); in real guests it runs in the real-boot tests. The fallbacks
(no `sh`, no `ip`, no cloud-init) are driven through the QGA socket peer and fakepve.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from readiness_fixtures import (
    HOST_KEYS_COMMAND,
    AgentPeer,
    ExecAnswer,
    add_token,
    add_vm,
    agent_answers,
    openssh_public_keys,
    probe_key,
)

from phoenix.readiness.pve import PveCredentials, PveTransport
from phoenix.readiness.qga import QgaSocketTransport
from phoenix.readiness.wait import (
    PROBE_SCRIPT,
    ReadinessError,
    parse_cloud_init_status,
    parse_probe,
    wait_for_ready,
)

FAST = 0.2


def run_probe_here(tmp_path, *, status: str, exit_code: int, run_dir: Path | None = None,
                   failed_unit: bool = False) -> subprocess.CompletedProcess:
    """PROBE_SCRIPT under a real sh with stand-ins for `cloud-init` (records that it ran) and
    `systemctl` (is-failed: 0 when a unit failed); `run_dir` stands for /run/cloud-init."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "cloud-init"
    stand_in.write_text(f"#!/bin/sh\ntouch {tmp_path}/cloud-init-ran\necho 'status: {status}'\n"
                        f"exit {exit_code}\n")
    stand_in.chmod(0o755)
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f"#!/bin/sh\nexit {0 if failed_unit else 1}\n")
    systemctl.chmod(0o755)
    script = PROBE_SCRIPT.replace("/run/cloud-init/", f"{run_dir or tmp_path / 'none'}/")
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"})


def cloud_init_run_dir(tmp_path, *, errors: list[str], result: bool, enabled: bool = True,
                       recoverable: dict | None = None) -> Path:
    """/run/cloud-init as cloud-init leaves it: status.json written the way cloud-init writes it
    (atomic_helper.write_json: indent=1, sort_keys; 25.1 adds recoverable_errors), result.json
    at the end of the last stage."""
    run = tmp_path / "run-cloud-init"
    run.mkdir()
    if enabled:
        (run / "enabled").write_text("")
    stage = {"errors": errors, "finished": 1764655230.4 if result else None,
             "recoverable_errors": recoverable or {}, "start": 1764655200.1}
    status = {"v1": {"datasource": "DataSourceNoCloud [seed=/dev/sr0]",
                     "stage": None if result else "init", "init": stage,
                     "init-local": {**stage, "errors": [], "recoverable_errors": {},
                                    "finished": 1764655210.2}}}
    (run / "status.json").write_text(json.dumps(status, indent=1, sort_keys=True) + "\n")
    if result:
        summary = {"v1": {"datasource": "DataSourceNoCloud", "errors": errors,
                          "recoverable_errors": recoverable or {}}}
        (run / "result.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return run


@pytest.mark.parametrize(("stage", "expected"), [("not started", "not started"),
                                                 ("running", "running"), ("finished", "done")])
def test_the_probe_answers_from_cloud_inits_files_when_they_leave_no_doubt(
        tmp_path, stage, expected):
    run = cloud_init_run_dir(tmp_path, errors=[], result=stage == "finished")
    if stage == "not started":  # the generator ran, no stage yet
        (run / "status.json").unlink()
    result = run_probe_here(tmp_path, status="error", exit_code=1, run_dir=run)
    assert result.returncode == 0
    assert parse_cloud_init_status(parse_probe(result.stdout).status_text) == expected
    assert not (tmp_path / "cloud-init-ran").exists()  # no Python started in the guest


@pytest.mark.parametrize("case", ["errors while running", "errors when finished",
                                  "recoverable errors when finished", "not enabled",
                                  "unit failed"])
def test_anything_else_asks_cloud_init_itself(tmp_path, case):
    """Errors, "degraded" (25.1's recoverable errors), a disabled cloud-init or a failed unit:
    cloud-init's own command answers, with its own exit code."""
    errors = ["('users_groups', KeyError('x'))"] if case.startswith("errors") else []
    recoverable = {"WARNING": ["Failed at merging in cloud config part"]} \
        if case.startswith("recoverable") else None
    run = cloud_init_run_dir(tmp_path, errors=errors, recoverable=recoverable,
                             result="finished" in case, enabled=case != "not enabled")
    result = run_probe_here(tmp_path, status="error", exit_code=1, run_dir=run,
                            failed_unit=case == "unit failed")
    assert (tmp_path / "cloud-init-ran").exists()
    assert result.returncode == 1
    assert parse_cloud_init_status(parse_probe(result.stdout).status_text) == "error"


def test_the_probe_reads_this_machines_addresses_like_the_agent(tmp_path):
    """`ip -o -4 addr show` here: loopback dropped, every other IPv4 address kept in order."""
    result = run_probe_here(tmp_path, status="done", exit_code=0)
    expected = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                              text=True, check=True).stdout
    answer = parse_probe(result.stdout)
    assert answer.addresses is not None
    listed = [line.split()[3].split("/")[0] for line in expected.splitlines()]
    assert list(answer.addresses) == [a for a in listed if not a.startswith("127.")]


def test_parse_probe_without_keys_or_ip_says_so():
    answer = parse_probe("status: done\n--- phoenix: ssh host keys ---\n"
                         "--- phoenix: ipv4 addresses ---\n")
    assert (answer.host_keys, answer.addresses) == (None, None)
    # A truncated key never becomes a pinned key; a line that is not `ip` output is ignored.
    key = openssh_public_keys()[0]
    answer = parse_probe(f"status: done\n--- phoenix: ssh host keys ---\n{key[:60]}\n{key}\n"
                         "--- phoenix: ipv4 addresses ---\nstatus: inet 1.2.3.4\n"
                         "2: ens18    inet 10.0.0.5/24 brd 10.0.0.255 scope global ens18\n")
    assert answer.host_keys == (" ".join(key.split()[:2]),)
    assert answer.addresses == ("10.0.0.5",)


@pytest.fixture
def peer():
    with tempfile.TemporaryDirectory(prefix="qga-") as path:
        agent = AgentPeer(path=f"{path}/qga.sock")
        yield agent
        agent.stop()


def test_a_guest_without_sh_gets_the_separate_calls(peer):
    """The agent cannot start `sh` ("Failed to execute"): the wait asks `cloud-init status`
    alone, then reads the keys file by file and the interfaces through the agent."""
    keys = openssh_public_keys()
    peer.execs["cloud-init status"] = ExecAnswer(stdout="status: done\n")
    peer.files = {"/etc/ssh/ssh_host_ed25519_key.pub": keys[0].encode()}
    peer.interfaces = [{"name": "lo", "ip-addresses": [
        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
        {"name": "ens18", "ip-addresses": [
            {"ip-address": "10.0.2.15", "ip-address-type": "ipv4", "prefix": 24}]}]
    transport = QgaSocketTransport(peer.path)
    try:
        result = wait_for_ready(transport, timeout_s=20, log=lambda _: None, poll_interval_s=FAST)
    finally:
        transport.close()
    assert result.cloud_init_status == "done"
    assert result.ssh_host_keys == (" ".join(keys[0].split()[:2]),)
    assert result.ipv4_addresses == ("10.0.2.15",)
    execs = [m["arguments"]["path"] for m in peer.received if m["execute"] == "guest-exec"]
    assert execs[:2] == ["sh", "cloud-init"]
    assert "guest-network-get-interfaces" in peer.commands()


@pytest.fixture
def transport(fakepve, fakepve_cafile):
    token = add_token(fakepve)
    return PveTransport(PveCredentials(fakepve.url, token, verify=fakepve_cafile),
                        node="pve", vmid=8001)


def test_a_guest_without_cloud_init_is_named_at_once(fakepve, transport):
    answers = agent_answers()
    answers["exec"][probe_key()] = {"exitcode": 127,
                                    "err-data": "sh: 1: cloud-init: not found\n",
                                    "out-data": "--- phoenix: ssh host keys ---\n"}
    add_vm(fakepve).agent = answers
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lambda _: None, poll_interval_s=FAST)
    assert info.value.stage == "cloud-init"
    assert "is cloud-init installed?" in info.value.message
    assert "cloud-init: not found" in info.value.message


def test_a_guest_without_ip_has_its_addresses_read_through_the_agent(fakepve, transport):
    keys = openssh_public_keys()
    answers = agent_answers(host_keys=keys)
    probe = answers["exec"][probe_key()]
    probe["out-data"] = probe["out-data"].split("--- phoenix: ipv4 addresses ---")[0] + \
        "--- phoenix: ipv4 addresses ---\n"
    add_vm(fakepve).agent = answers
    result = wait_for_ready(transport, timeout_s=30, log=lambda _: None, poll_interval_s=FAST)
    assert result.ipv4_addresses == ("192.0.2.10",)  # fakepve's network-get-interfaces
    assert len(result.ssh_host_keys) == 3
    paths = [r[1] for r in fakepve.requests]
    assert sum(p.endswith("/agent/network-get-interfaces") for p in paths) == 1
    assert HOST_KEYS_COMMAND not in str(fakepve.requests)  # the keys came with the probe


def test_keys_of_a_probe_while_cloud_init_runs_are_not_used(fakepve, transport):
    """cloud-init makes the host keys during its run: only the probe that saw it finished
    counts. Here the first answers say running (with old keys), the last done (new keys)."""
    old, new = openssh_public_keys(), openssh_public_keys()
    vm = add_vm(fakepve)
    vm.agent = agent_answers(cloud_init_status="running", host_keys=old)
    polls = []

    def log(line: str) -> None:
        polls.append(line)
        if len(polls) == 3:
            vm.agent = agent_answers(host_keys=new)

    result = wait_for_ready(transport, timeout_s=30, log=log, poll_interval_s=FAST,
                            progress_every_s=0.1)
    assert result.ssh_host_keys == tuple(" ".join(k.split()[:2]) for k in new)
