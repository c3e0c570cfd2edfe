"""The dynamic-provider plugin runs many calls at once (phoenix.dynamic_workers), proven through
the real plugin process (tests/plugin_process.py): a stuck VM delays only itself."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from plugin_process import PluginCallError, running_plugin
from pulumi_harness import run_program
from readiness_fixtures import add_token, add_vm, agent_answers, openssh_public_keys

from phoenix import dynamic_workers
from phoenix.config import build_config, load_config
from phoenix.config.sample import sample_document

ROOT = Path(__file__).resolve().parents[1]
READY = "pulumi-python:dynamic/phoenix:GuestAgentReady"


def test_the_pinned_sdk_server_is_the_known_one():
    """Fails when a Pulumi upgrade changes pulumi/dynamic/__main__.py: re-read its main() (is it
    still one ThreadPoolExecutor serving every call?), then update KNOWN_SDK_SERVER_SHA256."""
    assert dynamic_workers.is_known_sdk_server(), dynamic_workers.sdk_server_sha256()
    source = dynamic_workers.sdk_server_path().read_text()
    assert f"futures.ThreadPoolExecutor(max_workers={dynamic_workers.SDK_WORKERS})" in source


def test_nothing_happens_outside_the_plugin_process():
    assert not dynamic_workers.in_plugin_process()
    assert dynamic_workers.lift_worker_limit() == "not-plugin"


def test_raising_the_limit_starts_threads_for_calls_already_queued():
    release = threading.Event()
    running = []
    lock = threading.Lock()

    def call(i: int) -> None:
        with lock:
            running.append(i)
        release.wait(10)

    with ThreadPoolExecutor(max_workers=4) as executor:
        futures = [executor.submit(call, i) for i in range(12)]
        time.sleep(0.3)
        assert len(running) == 4  # the SDK's limit: the other 8 wait in the queue
        dynamic_workers.raise_limit(executor, 64)
        deadline = time.monotonic() + 5
        while len(running) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(running) == 12
        release.set()
        for f in futures:
            f.result(5)


@pytest.fixture(scope="module")
def ready_inputs(pulumi_private_key, example_config_path) -> dict:
    """A GuestAgentReady registration's wire inputs (with its `__provider` blob)."""
    run = run_program(load_config(example_config_path), pulumi_private_key)
    return next(r for r in run.registrations if r.type == READY).provider_inputs()


STUCK_TIMEOUT_S = 20


def concurrent_creates(plugin, props: dict, first: list[int], then: list[int]) -> dict[int, tuple[float, str]]:
    """Create `first` at once, a second later `then` at once, each from its own thread as the
    engine does; {vmid: (seconds from the start, cloud_init_status or the error text)}."""
    results: dict[int, tuple[float, str]] = {}
    start = time.monotonic()

    def create(vmid: int) -> None:
        try:
            _, outs = plugin.create(props[vmid], name=f"ready-{vmid}")
            results[vmid] = (time.monotonic() - start, outs["cloud_init_status"])
        except PluginCallError as exc:
            results[vmid] = (time.monotonic() - start, exc.details)

    threads = [threading.Thread(target=create, args=(vmid,)) for vmid in first]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the first ones are being served before the others arrive
    threads += [threading.Thread(target=create, args=(vmid,)) for vmid in then]
    for t in threads[len(first):]:
        t.start()
    for t in threads:
        t.join(STUCK_TIMEOUT_S + 60)
    return results


def twelve_creates(fakepve, fakepve_cafile, ready_inputs, env=None):
    """4 VMs whose agent never answers (created first, so they hold workers first), then 8 whose
    agent answers at once. Returns {vmid: (seconds, outcome)} and the plugin's stderr."""
    token = add_token(fakepve)
    stuck, answering = list(range(9100, 9104)), list(range(9200, 9208))
    for vmid in stuck:
        add_vm(fakepve, vmid)  # running, no agent: "QEMU guest agent is not running"
    for vmid in answering:
        add_vm(fakepve, vmid).agent = agent_answers(host_keys=openssh_public_keys())
    config = {"proxmoxve:endpoint": fakepve.url, "proxmoxve:apiToken": token}
    plugin_env = {"REQUESTS_CA_BUNDLE": fakepve_cafile, **(env or {})}
    props = {vmid: {**ready_inputs, "vmid": vmid, "vm_resource_id": str(vmid),
                    "timeout_s": STUCK_TIMEOUT_S if vmid in stuck else 120}
             for vmid in stuck + answering}
    session = running_plugin(config, env=plugin_env)
    plugin = next(session)
    try:
        for vmid, p in props.items():  # the engine checks every resource before creating it
            assert plugin.check({}, p, name=f"ready-{vmid}").failures == []
        results = concurrent_creates(plugin, props, stuck, answering)
        stderr = plugin.stderr()
    finally:
        session.close()
    return results, stuck, answering, stderr


def test_four_stuck_vms_do_not_hold_up_eight_ready_ones(fakepve, fakepve_cafile, ready_inputs):
    results, stuck, answering, _ = twelve_creates(fakepve, fakepve_cafile, ready_inputs)
    assert all(results[v][1] == "done" for v in answering), results
    # the 8 finish together, within a few poll intervals, long before the stuck ones time out
    assert max(results[v][0] for v in answering) < 10, results
    assert all("the guest agent did not answer within 20 s" in results[v][1] for v in stuck), results
    assert all(results[v][0] >= STUCK_TIMEOUT_S for v in stuck)


def test_with_the_sdks_four_workers_the_ready_ones_wait_for_the_stuck_ones(
        fakepve, fakepve_cafile, ready_inputs):
    """The same run with the limit left at 4: what the lift removes (and proof that the test
    above can fail)."""
    results, stuck, answering, _ = twelve_creates(
        fakepve, fakepve_cafile, ready_inputs, env={dynamic_workers.ENV_WORKERS: "4"})
    assert all(results[v][1] == "done" for v in answering), results
    assert min(results[v][0] for v in answering) >= STUCK_TIMEOUT_S - 1, results


def test_the_program_warns_when_the_plugin_would_keep_four_workers(monkeypatch, caplog, pulumi_private_key):
    monkeypatch.setattr(dynamic_workers, "KNOWN_SDK_SERVER_SHA256", "0" * 64)
    with caplog.at_level(logging.WARNING):
        run_program(build_config(sample_document(4)), pulumi_private_key)  # 4 VMs: no rounds
        assert not [r for r in caplog.records if "4 calls at once" in r.getMessage()]
        run_program(build_config(sample_document(5)), pulumi_private_key)
    (warning,) = [r.getMessage() for r in caplog.records if "4 calls at once" in r.getMessage()]
    assert warning.startswith("5 VMs, and this pulumi SDK") and "requirements.txt" in warning
