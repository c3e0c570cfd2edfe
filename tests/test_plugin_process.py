"""The dynamic-provider plugin process itself, as the engine starts it (tests/plugin_process.py):
the blobs the program registers under the mock engine unpickle in a fresh interpreter that has
no PYTHONPATH and another working directory, and errors come back as the user would read them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_process import UNKNOWN, PluginCallError, running_plugin
from pulumi_harness import run_program

from phoenix.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DYNAMIC = "pulumi-python:dynamic/phoenix:"


@pytest.fixture(scope="module")
def registered(pulumi_private_key, example_config_path) -> dict[str, dict]:
    """Engine-side inputs (with `__provider`) of one registration of each dynamic type."""
    run = run_program(load_config(example_config_path), pulumi_private_key)
    found: dict[str, dict] = {}
    for registration in run.registrations:
        if registration.type.startswith(DYNAMIC):
            found.setdefault(registration.type[len(DYNAMIC):], registration.provider_inputs())
    assert set(found) == {"Feature", "ZfsProperty", "GuestAgentReady"}
    return found


@pytest.fixture
def plugin():
    yield from running_plugin({"phoenix-hypervisor:sshPrivateKey": "not used here"})


def test_check_unpickles_every_registered_provider_in_a_fresh_process(plugin, registered):
    for kind, inputs in registered.items():
        assert inputs["__provider"], kind
        checked = plugin.check({}, inputs)
        assert checked.failures == [], kind
        assert checked.inputs["__provider"] == inputs["__provider"], kind


def test_a_provider_error_reaches_the_caller_with_its_message(plugin, registered):
    inputs = {**registered["Feature"], "host": ""}
    with pytest.raises(PluginCallError) as caught:
        plugin.read("some-id", inputs, inputs)
    assert "Feature resources cannot be imported" in caught.value.details


def test_an_unknown_travels_as_the_engine_sends_it(plugin, registered):
    inputs = {**registered["ZfsProperty"], "value": UNKNOWN}
    checked = plugin.check({}, inputs)
    assert checked.failures == [] and checked.inputs["value"] == UNKNOWN
