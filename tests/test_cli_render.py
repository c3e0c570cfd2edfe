"""`python -m phoenix render` and `schema`: what a VM's first boot receives, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.cloudinit import render_seed
from phoenix.config import SCHEMA_PATH, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ""  # the deployable example (conftest example_config_path), set per test
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm ops@ci"



@pytest.fixture(autouse=True)
def _example_file(example_config_path):
    global EXAMPLE  # noqa: PLW0603 - the module's tests read it as a constant
    EXAMPLE = str(example_config_path)

def phoenix(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phoenix", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, check=False)


def test_render_each_part_is_exactly_the_seed(tmp_path):
    seed = render_seed(load_config(EXAMPLE).vm(8001), [KEY])
    for part, expected in (("user-data", seed.user_data), ("network-config", seed.network_config),
                           ("meta-data", seed.meta_data)):
        # from another directory: templates are found through the package, not the cwd
        result = phoenix("render", "8001", "--file", EXAMPLE, "--part", part, "--extra-key", KEY, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected


def test_render_all_parts_and_the_pulumi_key_note():
    result = phoenix("render", "8002", "--file", EXAMPLE)
    assert result.returncode == 0
    assert "# ---- user-data ----" in result.stdout and "# ---- meta-data ----" in result.stdout
    assert "local-hostname: \"phoenix-web-01\"" in result.stdout
    assert "sshPrivateKey" in result.stderr  # says that pulumi up adds its own key


def test_render_unknown_vm_and_bad_key():
    result = phoenix("render", "9999", "--file", EXAMPLE)
    assert result.returncode == 2 and "no VM with vmid 9999" in result.stderr and "known: 8001, 8002" in result.stderr
    result = phoenix("render", "8001", "--file", EXAMPLE, "--extra-key", "not a key")
    assert result.returncode == 2 and "extra SSH key" in result.stderr
    for result in (phoenix("render", "8001", "--file", "/nonexistent.json"), phoenix("render", "x")):
        assert result.returncode == 2 and "Traceback" not in result.stderr


def test_schema_command_prints_the_schema():
    result = phoenix("schema")
    assert result.returncode == 0 and json.loads(result.stdout) == json.loads(SCHEMA_PATH.read_text())
