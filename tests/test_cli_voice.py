"""One voice across `python -m phoenix` commands: the same exit codes (0 done, 1 what was checked
failed, 2 could not start) and the same `error: ` prefix everywhere, through the real entry point."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ""  # the deployable example (conftest example_config_path), set per test
PASSPHRASE = "correct horse battery staple"



@pytest.fixture(autouse=True)
def _example_file(example_config_path):
    global EXAMPLE  # noqa: PLW0603 - the module's tests read it as a constant
    EXAMPLE = str(example_config_path)

def phoenix(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "phoenix", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**base, **(env or {})}, input=stdin if stdin is not None else "",
                          timeout=timeout, check=False)


def assert_voice(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """The exit code, the message, the one prefix, and no Python in sight."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "phoenix ssh:" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def private_key(encrypted: bool = False) -> str:
    encryption = (serialization.BestAvailableEncryption(PASSPHRASE.encode()) if encrypted
                  else serialization.NoEncryption())
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption).decode()


def public_line(private: str) -> str:
    key = serialization.load_ssh_private_key(private.encode(), None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def invalid_config(tmp_path, doc) -> str:
    doc["vms"][1]["vmid"] = 8001
    path = tmp_path / "invalid.json"
    path.write_text(json.dumps(doc))
    return str(path)


# ---- 2: the command could not start -----------------------------------------------------------

@pytest.mark.parametrize("command", [["render"], ["wait"], ["boot", "--image", "debian-bookworm"]])
def test_unknown_vmid_is_2_in_every_command(command):
    result = phoenix(command[0], "9999", "--file", EXAMPLE, *command[1:])
    assert_voice(result, 2, "error: no VM with vmid 9999", "known: 8001, 8002")


@pytest.mark.parametrize("command", ["render", "wait", "boot"])
def test_vmid_that_is_not_a_number_is_2_in_plain_words(command):
    result = phoenix(command, "web", "--file", EXAMPLE, *(["--image", "x"] if command == "boot" else []))
    assert_voice(result, 2, "error: argument vmid: a VMID is a whole number, not 'web'")
    assert "invalid int value" not in result.stderr


@pytest.mark.parametrize("command", [["render", "8001"], ["wait", "8001"],
                                     ["boot", "8001", "--image", "debian-bookworm"]])
def test_unreadable_or_invalid_config_is_2_for_commands_that_need_a_vm(command, invalid_config, tmp_path):
    assert_voice(phoenix(*command, "--file", str(tmp_path / "none.json")), 2, "no such file")
    result = phoenix(*command, "--file", invalid_config)
    assert_voice(result, 2, "vmid: 8001 is already used by", "1 problem(s) in")
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())


def test_validate_problems_are_1_unreadable_is_2(invalid_config, tmp_path):
    result = phoenix("validate", invalid_config)
    assert_voice(result, 1, "vmid: 8001 is already used by")
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())
    assert_voice(phoenix("validate", str(tmp_path)), 2, "is a directory")


def test_no_command_and_unknown_option_are_2():
    assert_voice(phoenix(), 2, "error: the following arguments are required: COMMAND")
    assert_voice(phoenix("render", "8001", "--bogus"), 2, "error: unrecognized arguments: --bogus")


def test_bad_extra_key_is_2():
    assert_voice(phoenix("render", "8001", "--file", EXAMPLE, "--extra-key", "not a key"), 2, "extra SSH key")


def test_boot_image_that_is_a_directory_says_so(tmp_path):
    result = phoenix("boot", "8001", "--file", EXAMPLE, "--image", str(tmp_path))
    assert_voice(result, 2, f"--image '{tmp_path}' is a directory; give a disk image file",
                 "debian-bookworm")
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"")
    result = phoenix("boot", "8001", "--file", EXAMPLE, "--image", str(disk), "--kernel", str(tmp_path))
    assert_voice(result, 2, f"--kernel '{tmp_path}' is a directory, not a file")


@pytest.mark.parametrize("endpoint", ["notaurl", "pve.example.com:8006", "http://pve:8006/",
                                      "https://", "https://pve:99999/"])
def test_wait_rejects_an_endpoint_that_is_not_an_https_url_at_once(endpoint):
    started = time.monotonic()
    result = phoenix("wait", "8001", "--file", EXAMPLE, "--timeout", "600",
                     env={"PROXMOX_VE_ENDPOINT": endpoint,
                          "PROXMOX_VE_API_TOKEN": "root@pam!ci=00000000-0000-0000-0000-000000000000"})
    assert_voice(result, 2, "PROXMOX_VE_ENDPOINT / proxmoxve:endpoint) must be the API's https URL, e.g. https://pve.example.com:8006/",
                 repr(endpoint))
    assert time.monotonic() - started < 30  # not retried until the 600 s deadline
    assert "00000000-0000" not in result.stderr


def test_wait_without_endpoint_and_token_is_2():
    assert_voice(phoenix("wait", "8001", "--file", EXAMPLE), 2,
                 "set PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN")


def test_wait_bad_timeout_is_2():
    env = {"PROXMOX_VE_ENDPOINT": "https://127.0.0.1:1/", "PROXMOX_VE_API_TOKEN": "a@pam!b=c"}
    for value in ("0", "-3", "nan"):
        assert_voice(phoenix("wait", "8001", "--file", EXAMPLE, "--timeout", value, env=env), 2,
                     "--timeout must be a number of seconds > 0")


# ---- ssh: the same voice; encrypted keys are refused with the way out ----------------------------

def test_ssh_public_key_of_an_encrypted_key_says_how_to_make_an_unencrypted_one():
    encrypted = private_key(encrypted=True)
    result = phoenix("ssh", "public-key", env={"PHOENIX_SSH_PRIVATE_KEY": encrypted})
    assert_voice(result, 2, "the SSH private key is encrypted (it has a passphrase)",
                 "ssh-keygen -p -N ''", "pulumi config set --secret phoenix-hypervisor:sshPrivateKey")
    body = encrypted.splitlines()[1]
    assert body not in result.stderr + result.stdout


def test_ssh_public_key_ok_and_garbage():
    key = private_key()
    result = phoenix("ssh", "public-key", stdin=key)
    assert result.returncode == 0 and result.stdout.startswith(public_line(key))
    assert_voice(phoenix("ssh", "public-key", stdin="hello"), 2, "not a PEM/OpenSSH private key")


def test_ssh_rotate_input_mistakes_are_2(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text(private_key())
    new.write_text(private_key(encrypted=True))
    host_key = public_line(private_key())
    common = ["ssh", "rotate", "--host", "127.0.0.1", "--user", "u", "--host-key", host_key,
              "--old-key-file", str(old)]
    assert_voice(phoenix(*common, "--new-key-file", str(tmp_path)), 2,
                 f"key file '{tmp_path}' is a directory, not a file")
    assert_voice(phoenix(*common, "--new-key-file", str(tmp_path / "missing")), 2, "no such file")
    assert_voice(phoenix(*common, "--new-key-file", str(new)), 2, "the new key: the SSH private key is encrypted")
    assert_voice(phoenix(*common, "--new-key-file", str(old)), 2, "the new key is the old key")
    assert_voice(phoenix(*common[:-2], "--new-key-file", str(old), "--host-key", "nonsense",
                         env={"PHOENIX_SSH_PRIVATE_KEY": old.read_text()}), 2, "host keys:")


def test_ssh_rotate_that_cannot_reach_the_host_is_1(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text(private_key())
    new.write_text(private_key())
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = phoenix("ssh", "rotate", "--host", "127.0.0.1", "--port", str(port), "--user", "u",
                     "--host-key", public_line(private_key()), "--old-key-file", str(old),
                     "--new-key-file", str(new), "--timeout", "2")
    assert_voice(result, 1)
    assert old.read_text().splitlines()[1] not in result.stderr


def test_pulumi_program_refuses_an_encrypted_stack_key_with_the_same_advice():
    import pulumi
    from pulumi_harness import stack_config

    from phoenix.resources.settings import SettingsError, read_settings

    encrypted = private_key(encrypted=True)
    pulumi.runtime.set_all_config(*stack_config(encrypted))
    try:
        with pytest.raises(SettingsError) as info:
            read_settings()
    finally:
        pulumi.runtime.set_all_config({}, [])
    message = str(info.value)
    assert message.startswith("phoenix-hypervisor:sshPrivateKey: the SSH private key is encrypted")
    assert "ssh-keygen -p -N ''" in message and encrypted.splitlines()[1] not in message
