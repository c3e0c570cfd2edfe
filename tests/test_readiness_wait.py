"""wait_for_ready over PveTransport against fakepve (a real HTTPS server speaking the PVE API)."""

from __future__ import annotations

import threading
import time

import pytest
from readiness_fixtures import (
    CLOUD_INIT_LOG,
    HOST_KEYS_COMMAND,
    TOKEN_SECRET,
    add_token,
    add_vm,
    agent_answers,
    openssh_public_keys,
)

from phoenix.readiness.pve import PveCredentials, PveTransport
from phoenix.readiness.transport import AuthError, TransportConfigError
from phoenix.readiness.wait import (
    ReadinessError,
    ipv4_addresses,
    parse_cloud_init_status,
    parse_host_keys,
    wait_for_ready,
)

FAST = 0.2  # poll interval for tests that do not measure the real pacing


@pytest.fixture
def transport(fakepve, fakepve_cafile):
    token = add_token(fakepve)
    return PveTransport(PveCredentials(fakepve.url, token, verify=fakepve_cafile),
                        node="pve", vmid=8001)


@pytest.fixture
def lines():
    return []


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


def agent_pings(pve) -> list:
    return [r for r in pve.requests if r[1].endswith("/agent/ping")]


def agent_polls(pve) -> list:
    """The agent-stage polls: with cloud-init waited for, the probe's exec is the poll."""
    return [r for r in pve.requests if r[1].endswith(("/agent/ping", "/agent/exec"))]


def test_agent_up_at_once(fakepve, transport, lines):
    keys = openssh_public_keys()
    add_vm(fakepve).agent = agent_answers(host_keys=keys)
    result = wait_for_ready(transport, timeout_s=30, log=lines.append)
    # The status check buys the first 1.5 s; the first poll (the probe's exec) finds the agent.
    assert 1.5 <= result.seconds_to_agent < 1.5 + 0.3
    # status, then the probe: its exec and exec-status answer the agent, cloud-init, the host
    # keys and the addresses. A VM that is ready costs 3 calls in all.
    assert [r[1].rsplit("/", 2)[-2:] for r in fakepve.requests] == [
        ["status", "current"], ["agent", "exec"], ["agent", "exec-status"]]
    assert result.api_calls == 3
    assert result.cloud_init_status == "done"
    assert result.seconds_to_cloud_init is not None and result.seconds_to_cloud_init < 2
    assert result.ipv4_addresses == ("192.0.2.10",)  # fakepve's eth0; lo's 127.0.0.1 is dropped
    assert result.ssh_host_keys == tuple(" ".join(k.split()[:2]) for k in keys)
    assert result.warnings == ()
    assert any("guest agent answered" in line for line in lines)


def test_agent_up_after_a_delay_is_seen_within_the_poll_interval(fakepve, transport, lines):
    vm = add_vm(fakepve)
    up_at = 3.2
    started = time.monotonic()
    later(up_at, lambda: setattr(vm, "agent", agent_answers(host_keys=openssh_public_keys())))
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, progress_every_s=1.0)
    # Default pacing: a ping every 1.5 s, so the agent is seen at most 1.5 s after it answers.
    assert up_at <= result.seconds_to_agent <= up_at + 1.5 + 0.3
    polls = agent_polls(fakepve)
    assert len(polls) == int(up_at / 1.5) + 1  # 1.5 and 3.0 fail; 4.5 answers
    # 40 calls a minute: one status check and one poll per 1.5 s until the agent answered.
    assert result.api_calls - 1 == 1 + len(polls)  # minus the probe's exec-status
    assert time.monotonic() - started < 10
    progress = [line for line in lines if "waiting for the guest agent (" in line]
    assert progress and "QEMU guest agent is not running" in progress[0]
    assert any(" s of 30 s" in line for line in progress)


def test_agent_never_up_fails_at_the_deadline_naming_the_stage(fakepve, transport, lines):
    add_vm(fakepve)
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=3, log=lines.append, poll_interval_s=FAST)
    elapsed = time.monotonic() - started
    assert 3 <= elapsed < 3 + 5
    err = info.value
    assert err.stage == "agent"
    assert "did not answer within 3 s" in err.message
    assert "qemu-guest-agent installed" in err.message
    assert "last answer: PVE answered 500: QEMU guest agent is not running" in err.message


def test_agent_timeout_says_what_this_vms_first_boot_needed(fakepve, transport, lines):
    add_vm(fakepve)
    hint = ("VM 8001 (web) installs qemu-guest-agent from its package mirror at first boot: "
            "check gateway 10.0.0.1 and DNS 10.0.0.53")
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=1.5, log=lines.append, poll_interval_s=FAST,
                       first_boot_hint=hint)
    assert info.value.stage == "agent"
    assert info.value.message.endswith("\n" + hint)
    assert "Is qemu-guest-agent installed" not in info.value.message  # the hint replaces it


def test_cloud_init_error_names_the_apt_error_at_once(fakepve, transport, lines):
    """The agent answers, cloud-init says error: fail on that answer (not at the deadline),
    with apt's own line even when it sits far above the log's tail."""
    log = ("Reading package lists...\nBuilding dependency tree...\n"
           "E: Unable to locate package nosuchpkg\n"
           + "".join(f"noise {n}\n" for n in range(60))
           + "2026-12-02 02:30:01,000 - util.py[WARNING]: Failed to install packages: "
             "['htop', 'nosuchpkg']\n"
           + "".join(f"more noise {n}\n" for n in range(10)))
    add_vm(fakepve).agent = agent_answers(cloud_init_exit=1, cloud_init_status="error", log=log,
                                          long_status="status: error\n")
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=600, log=lines.append, poll_interval_s=FAST)
    assert time.monotonic() - started < 10
    assert info.value.seconds_to_agent is not None and info.value.seconds_to_agent < 5
    message = info.value.message
    assert info.value.stage == "cloud-init"
    cause = message.split("status name it:\n", 1)[1].split("\n---", 1)[0]
    assert cause.splitlines() == [
        "  E: Unable to locate package nosuchpkg",
        "  2026-12-02 02:30:01,000 - util.py[WARNING]: Failed to install packages: "
        "['htop', 'nosuchpkg']",
    ]
    assert "\nnoise 5\n" not in message  # above the tail, and no cause


def test_vm_stopped_fails_at_once(fakepve, transport, lines):
    add_vm(fakepve, status="stopped")
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lines.append)
    assert time.monotonic() - started < 1
    assert info.value.stage == "vm-status"
    assert info.value.message == "VM 8001 on pve is stopped"


def test_vm_on_another_node_is_followed(fakepve, transport, lines):
    """HA (or an admin) moved the VM: the wait goes on where it is now (docs/lifecycle.md)."""
    add_vm(fakepve, node="pve2").agent = agent_answers()
    fakepve.add_node("pve")
    wait_for_ready(transport, timeout_s=60, log=lines.append)
    assert transport.node == "pve2"


def test_vm_on_no_node_fails_at_once(fakepve, transport, lines):
    fakepve.add_node("pve")
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lines.append)
    assert time.monotonic() - started < 5
    assert info.value.stage == "vm-status"
    assert "is VM 8001 on node pve?" in info.value.message


def test_bad_token_fails_fast_with_401_and_no_secret(fakepve, fakepve_cafile, lines):
    add_token(fakepve)
    add_vm(fakepve).agent = agent_answers()
    wrong = "phoenix@pve!ci=11111111-2222-3333-4444-555555555555"
    transport = PveTransport(PveCredentials(fakepve.url, wrong, verify=fakepve_cafile),
                             node="pve", vmid=8001)
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lines.append)
    assert time.monotonic() - started < 2
    assert info.value.stage == "vm-status"
    assert "PVE refused the API token phoenix@pve!ci (401 authentication failure)" in str(
        info.value)
    assert "11111111" not in str(info.value) and TOKEN_SECRET not in str(info.value)
    assert len(fakepve.requests) == 1  # no retry of a refused token


def test_missing_privilege_is_named(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers()
    fakepve.grant("phoenix@pve!ci", "/vms/8001", "VM.Audit")  # status yes, agent no
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lines.append, wait_for_cloud_init=False)
    assert info.value.stage == "agent"
    assert "lacks VM.GuestAgent.Audit (PVE 9) or VM.Monitor (PVE 8) on /vms/8001" in str(
        info.value)


@pytest.mark.parametrize("granted", [("VM.Audit", "VM.GuestAgent.Audit"), ("VM.Audit",)])
def test_exec_privilege_is_named_at_the_cloud_init_stage(fakepve, transport, lines, granted):
    """Waiting for cloud-init needs exec: a token without it is named at the first poll, whether
    or not the agent runs yet (no agent here), not after the boot."""
    add_vm(fakepve)
    fakepve.grant("phoenix@pve!ci", "/vms/8001", *granted)
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=60, log=lines.append)
    assert time.monotonic() - started < 5
    assert info.value.stage == "cloud-init"
    assert "VM.GuestAgent.Unrestricted" in str(info.value)


def test_transient_answers_then_success(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys())
    base = "/nodes/pve/qemu/8001"
    fakepve.fail("GET", f"{base}/status/current", 596, "Connection timed out", times=2)
    fakepve.fail("POST", f"{base}/agent/ping", 500,
                 "VM 8001 qmp command 'guest-ping' failed - got timeout", times=3)
    fakepve.fail("POST", f"{base}/agent/exec", 500,
                 "can't lock file '/var/lock/qemu-server/lock-8001.conf' - got timeout", times=1)
    fakepve.fail("GET", f"{base}/agent/network-get-interfaces", 503, "Service Unavailable",
                 times=1)
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.cloud_init_status == "done"
    assert result.ipv4_addresses == ("192.0.2.10",)
    assert len(result.ssh_host_keys) == 3
    statuses = [r for r in fakepve.requests if r[1].endswith("/status/current")]
    execs = [r for r in fakepve.requests if r[1].endswith("/agent/exec")]
    # 1 refused by the lock, 1 accepted; no ping, no interfaces read: the probe answered both.
    assert len(statuses) == 3 and len(execs) == 2 and not agent_pings(fakepve)


def test_cloud_init_failure_carries_long_status_and_log_tail(fakepve, transport, lines):
    log = "".join(f"log line {n}\n" for n in range(1, 101))
    add_vm(fakepve).agent = agent_answers(
        cloud_init_exit=1, cloud_init_status="error",
        long_status="status: error\nerrors:\n\t('scripts_user', RuntimeError('runcmd failed'))\n",
        log=log)
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    message = info.value.message
    assert info.value.stage == "cloud-init"
    assert "cloud-init failed (`cloud-init status` exit 1)" in message
    assert "RuntimeError('runcmd failed')" in message
    assert f"last 40 lines of {CLOUD_INIT_LOG}" in message
    assert "log line 100" in message and "log line 61\n" in message
    assert "log line 60\n" not in message


def test_cloud_init_degraded_is_success_with_a_warning(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers(
        cloud_init_exit=2, cloud_init_status="done", host_keys=openssh_public_keys(),
        long_status="status: done\nrecoverable_errors:\nWARNING:\n\t- Skipping module ntp\n")
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.cloud_init_status == "degraded"
    assert len(result.warnings) == 1 and "Skipping module ntp" in result.warnings[0]


def test_cloud_init_running_then_done(fakepve, transport, lines):
    vm = add_vm(fakepve)
    vm.agent = agent_answers(cloud_init_status="running", host_keys=openssh_public_keys())
    later(1.0, lambda: vm.agent["exec"].update(agent_answers()["exec"]))
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.cloud_init_status == "done"
    assert 1.0 <= result.seconds_to_cloud_init < 3.0


def test_cloud_init_still_running_past_the_deadline(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers(cloud_init_status="running",
                                          log="Setting up qemu-guest-agent ...\n")
    started = time.monotonic()
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=2.5, log=lines.append, poll_interval_s=FAST)
    assert time.monotonic() - started < 2.5 + 5
    assert info.value.stage == "cloud-init"
    assert "cloud-init still running after 2 s" in info.value.message  # "2.5" prints as 2
    assert "status: running" in info.value.message
    assert "Setting up qemu-guest-agent" in info.value.message


def test_cloud_init_not_installed(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers()
    fakepve.fail("POST", "/nodes/pve/qemu/8001/agent/exec", 500,
                 "Agent error: Guest agent command failed, error was 'Failed to execute child "
                 "process \u201ccloud-init\u201d (No such file or directory)'")
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert info.value.stage == "cloud-init"
    assert "is cloud-init installed?" in info.value.message


def test_interfaces_and_host_keys_are_parsed(fakepve, transport, lines):
    keys = openssh_public_keys()
    truncated = keys[2][:60]  # a cut-off rsa line must not pass
    interfaces = [
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"},
                                        {"ip-address": "::1", "ip-address-type": "ipv6"}]},
        {"name": "eth0", "hardware-address": "bc:24:11:00:1f:41",
         "ip-addresses": [{"ip-address": "10.0.0.101", "ip-address-type": "ipv4", "prefix": 24},
                          {"ip-address": "fe80::be24:11ff:fe00:1f41",
                           "ip-address-type": "ipv6", "prefix": 64}]},
        {"name": "docker0", "ip-addresses": [{"ip-address": "172.17.0.1",
                                              "ip-address-type": "ipv4", "prefix": 16}]},
    ]
    add_vm(fakepve).agent = agent_answers(host_keys=[keys[0], "garbage line", keys[1], truncated],
                                          interfaces=interfaces)
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.ipv4_addresses == ("10.0.0.101", "172.17.0.1")
    assert result.ssh_host_keys == tuple(" ".join(k.split()[:2]) for k in keys[:2])


def test_host_keys_fall_back_to_file_read(fakepve, transport, lines):
    keys = openssh_public_keys()
    answers = agent_answers()
    answers["exec"][HOST_KEYS_COMMAND] = {"exitcode": 127, "err-data": "sh: not found"}
    answers["files"]["/etc/ssh/ssh_host_ed25519_key.pub"] = keys[0] + "\n"
    answers["files"]["/etc/ssh/ssh_host_rsa_key.pub"] = keys[2] + "\n"
    add_vm(fakepve).agent = answers
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.ssh_host_keys == (" ".join(keys[0].split()[:2]), " ".join(keys[2].split()[:2]))


def test_no_host_keys_is_a_warning(fakepve, transport, lines):
    add_vm(fakepve).agent = agent_answers(host_keys=[])
    result = wait_for_ready(transport, timeout_s=30, log=lines.append, poll_interval_s=FAST)
    assert result.ssh_host_keys == ()
    assert any("no SSH host public keys" in w for w in result.warnings)


def test_credentials_never_show_the_secret(monkeypatch):
    creds = PveCredentials("https://pve.example:8006/", f"phoenix@pve!ci={TOKEN_SECRET}")
    assert TOKEN_SECRET not in repr(creds) and TOKEN_SECRET not in str(creds)
    assert "phoenix@pve!ci" in repr(creds)
    with pytest.raises(TransportConfigError) as info:
        PveCredentials("https://pve.example:8006/", f"phoenix@pve-ci-{TOKEN_SECRET}").check()
    assert TOKEN_SECRET not in str(info.value)
    with pytest.raises(TransportConfigError, match="set PROXMOX_VE_API_TOKEN"):
        PveCredentials.from_env({"PROXMOX_VE_ENDPOINT": "https://pve:8006"})
    env = {"PROXMOX_VE_ENDPOINT": "https://pve:8006", "PROXMOX_VE_API_TOKEN": "a@pve!b=c",
           "PROXMOX_VE_INSECURE": "true"}
    assert PveCredentials.from_env(env).verify is False


def test_tls_failure_is_not_retried(fakepve, lines):
    add_token(fakepve)
    add_vm(fakepve)
    transport = PveTransport(PveCredentials(fakepve.url, f"phoenix@pve!ci={TOKEN_SECRET}"),
                             node="pve", vmid=8001)  # system CAs: the fake's cert is unknown
    with pytest.raises(ReadinessError) as info:
        wait_for_ready(transport, timeout_s=30, log=lines.append)
    assert "TLS verification" in str(info.value) and "PROXMOX_VE_INSECURE" in str(info.value)


def test_auth_error_type_from_transport(fakepve, fakepve_cafile):
    add_vm(fakepve)
    transport = PveTransport(PveCredentials(fakepve.url, "x@pve!y=z", verify=fakepve_cafile),
                             node="pve", vmid=8001)
    with pytest.raises(AuthError):
        transport.vm_status(timeout_s=5)


def test_parsers():
    assert parse_cloud_init_status("\nstatus: not started\n") == "not started"
    assert parse_cloud_init_status("garbage") == ""
    assert parse_host_keys("ssh-ed25519 AAAA") == ()
    assert ipv4_addresses([]) == ()
