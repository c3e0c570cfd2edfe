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


@pytest.fixture(scope="session")
def example_document() -> dict:
    return json.loads(EXAMPLE_CONFIG.read_text())


@pytest.fixture
def doc(example_document) -> dict:
    """A fresh, mutable copy of the example config document."""
    return copy.deepcopy(example_document)


@pytest.fixture(scope="session")
def pulumi_private_key() -> str:
    """A throwaway Ed25519 key in OpenSSH format (what sshPrivateKey holds)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()
