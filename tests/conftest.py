"""Shared fixtures: a config built from the example file or generated, and a test SSH key.
At the end of the run, a check that the tests left no user, file or process on the host
(host_hygiene.py): anything left fails the run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from host_hygiene import pytest_sessionfinish, pytest_sessionstart  # noqa: F401 - pytest hooks

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "phoenix_vm_configs.json"


def deployable_example(document: dict, key: str) -> dict:
    """The example with its key placeholder filled in, as `phoenix init --admin-key` does."""
    from phoenix.stackinit.admin_key import placeholders

    text = json.dumps(document)
    for placeholder in placeholders(document):
        text = text.replace(json.dumps(placeholder), json.dumps(key))
    return json.loads(text)


@pytest.fixture(scope="session")
def example_admin_key() -> str:
    """A generated public key line standing in for the user's own (the shipped example has only
    a placeholder, which the config check rejects)."""
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} tester@example"


@pytest.fixture(scope="session")
def example_document(example_admin_key) -> dict:
    """The example config as a user has it after `phoenix init --admin-key`."""
    return deployable_example(json.loads(EXAMPLE_CONFIG.read_text()), example_admin_key)


@pytest.fixture(scope="session")
def example_config_path(tmp_path_factory, example_document) -> Path:
    """The deployable example (see example_document) as a file."""
    path = tmp_path_factory.mktemp("example") / "phoenix_vm_configs.json"
    path.write_text(json.dumps(example_document, indent=2))
    return path


@pytest.fixture
def doc(example_document) -> dict:
    """A fresh, mutable copy of the example config document."""
    return copy.deepcopy(example_document)


@pytest.fixture(scope="session", autouse=True)
def _harness_uses_the_deployable_example(example_config_path):
    """__main__.py under the mock engine (tests/pulumi_harness.py stack_config) reads this file."""
    import pulumi_harness

    pulumi_harness.EXAMPLE_CONFIG_FILE = str(example_config_path)


@pytest.fixture(scope="session")
def pulumi_private_key() -> str:
    """A throwaway Ed25519 key in OpenSSH format (what sshPrivateKey holds)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()
