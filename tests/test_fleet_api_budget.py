"""The per-node PVE API budget shared by every wait of a process (phoenix.readiness.api_budget),
and what the waits do with lock answers, against fakepve."""

from __future__ import annotations

import threading
import time

import pytest
from readiness_fixtures import add_token, add_vm, agent_answers, openssh_public_keys

from phoenix import dynamic_workers
from phoenix.readiness import api_budget
from phoenix.readiness.api_budget import CallBudget, budget_for
from phoenix.readiness.pve import PveCredentials, PveTransport
from phoenix.readiness.transport import AgentNotRunningError, TransientError
from phoenix.readiness.wait import wait_for_ready


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_the_steady_rate_first_come_first_served():
    clock = FakeClock()
    budget = CallBudget(10, burst=5, clock=clock, sleep=clock.sleep)
    assert [budget.reserve(60) for _ in range(5)] == [0.0] * 5  # the burst
    delays = [budget.reserve(60) for _ in range(5)]
    assert delays == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # then one slot per 0.1 s
    clock.now += 10  # idle: the burst is back
    assert budget.reserve(60) == 0.0


def test_a_slot_too_far_away_is_not_taken_and_the_call_is_transient():
    clock = FakeClock()
    budget = CallBudget(1, burst=1, clock=clock, sleep=clock.sleep)
    assert budget.take(5, "node pve") == 0.0
    assert budget.reserve(0.5) is None  # the next slot is 1 s away
    with pytest.raises(TransientError, match="API budget for node pve is used up"):
        budget.take(0.5, "node pve")
    assert budget.reserve(1.0) == pytest.approx(1.0)  # nothing was taken by the refusals


def test_rate_from_the_environment():
    assert api_budget.calls_per_s_from_env({}) == api_budget.DEFAULT_CALLS_PER_S == 20
    assert api_budget.calls_per_s_from_env({"PHOENIX_PVE_CALLS_PER_S": "5"}) == 5
    assert api_budget.calls_per_s_from_env({"PHOENIX_PVE_CALLS_PER_S": "lots"}) == 20


@pytest.fixture
def token(fakepve):
    return add_token(fakepve)


def test_many_waits_stay_within_the_nodes_budget(fakepve, fakepve_cafile, token, monkeypatch):
    """60 pollers hammering two nodes with no pause: each node sees at most its budget."""
    monkeypatch.setenv("PHOENIX_PVE_CALLS_PER_S", "10")
    monkeypatch.setattr(api_budget, "_budgets", {})
    fakepve.add_node("pve2")
    for vmid in range(9300, 9360):
        add_vm(fakepve, vmid, node="pve" if vmid % 2 else "pve2")
    creds = PveCredentials(fakepve.url, token, verify=fakepve_cafile)
    stop = time.monotonic() + 3.0

    def poll(vmid: int) -> None:
        transport = PveTransport(creds, node="pve" if vmid % 2 else "pve2", vmid=vmid)
        while time.monotonic() < stop:
            try:
                transport.ping(timeout_s=max(stop - time.monotonic(), 0.01))
            except (AgentNotRunningError, TransientError):
                pass

    threads = [threading.Thread(target=poll, args=(vmid,)) for vmid in range(9300, 9360)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    pings = [r[1] for r in fakepve.requests if r[1].endswith("/agent/ping")]
    per_node = {node: sum(f"/nodes/{node}/" in p for p in pings) for node in ("pve", "pve2")}
    # 3 s at 10 calls/s plus a burst of 10 (one second's worth), per node, independently (a slot
    # or two of slack at the window's ends); unbudgeted, 30 pollers make hundreds of calls
    assert all(25 <= n <= 3 * 10 + 10 + 3 for n in per_node.values()), per_node
    assert budget_for(fakepve.url, "pve") is not budget_for(fakepve.url, "pve2")


@pytest.mark.parametrize("message", [
    "can't lock file '/var/lock/qemu-server/lock-8001.conf' - got timeout",
    "VM is locked (clone)",
    "cfs-lock 'storage-local-zfs' error: got lock request timeout",
    "can't lock file '/var/lock/pve-manager/pve-storage-local-zfs' - got timeout",
])
def test_lock_answers_are_retried_by_the_wait(fakepve, fakepve_cafile, token, message):
    """Lock errors our own calls can meet (a clone, backup or storage allocation holding a lock
    on the node) are transient: the wait retries them within its deadline."""
    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys())
    base = "/nodes/pve/qemu/8001"
    fakepve.fail("GET", f"{base}/status/current", 500, message, times=2)
    fakepve.fail("POST", f"{base}/agent/ping", 500, message, times=2)
    transport = PveTransport(PveCredentials(fakepve.url, token, verify=fakepve_cafile),
                             node="pve", vmid=8001)
    result = wait_for_ready(transport, timeout_s=30, log=lambda _: None, poll_interval_s=0.1)
    assert result.cloud_init_status == "done"


def test_an_unknown_sdk_server_keeps_its_limit_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(dynamic_workers, "_state", {})
    monkeypatch.setattr(dynamic_workers, "in_plugin_process", lambda: True)
    monkeypatch.setattr(dynamic_workers, "KNOWN_SDK_SERVER_SHA256", "0" * 64)
    assert dynamic_workers.lift_worker_limit() == "unknown-sdk"
    err = capsys.readouterr().err
    assert "warning: phoenix:" in err and "limit of 4 calls at once is kept" in err
    assert dynamic_workers.lift_worker_limit() == "unknown-sdk"  # once per process
    assert capsys.readouterr().err == ""
