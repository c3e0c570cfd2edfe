"""`python -m phoenix init` against a STAND-IN Pulumi CLI (tests/standin_pulumi/pulumi) and a
real sshd (tests/ssh_fixtures.py) whose host key is fetched, shown and pinned only when confirmed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi_standin import StandinPulumi
from ssh_fixtures import TEST_USER, keygen, running_sshd

from phoenix.remote.hostkeys import parse_pinned_keys
from phoenix.stackinit.hostkey_fetch import HostKeyFetchError, fetch_host_keys

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "pulumi@pve!phoenix=0b7c3f1e-6d2a-4c55-9e8f-2a1d9c4b7e60"


@pytest.fixture(scope="module")
def sshd():
    yield from running_sshd([TEST_USER])


def server_fingerprint(sshd) -> str:
    return parse_pinned_keys([sshd.host_key_line])[0].fingerprint


def init(pulumi: StandinPulumi, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    full = pulumi.env()
    full.pop("PROXMOX_VE_API_TOKEN", None)
    full.update(env)
    return subprocess.run([sys.executable, "-m", "phoenix", "init", *args], cwd=ROOT, env=full,
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_fetch_host_keys_reads_the_servers_key(sshd):
    keys = fetch_host_keys("127.0.0.1", sshd.port)
    assert [k.line for k in keys] == [" ".join(sshd.host_key_line.split()[:2])]
    assert keys[0].fingerprint == server_fingerprint(sshd)


def test_fetch_host_keys_from_a_closed_port_says_so():
    from ssh_fixtures import free_port

    with pytest.raises(HostKeyFetchError, match="cannot connect to 127.0.0.1"):
        fetch_host_keys("127.0.0.1", free_port(), timeout_s=2)


def test_flags_write_the_whole_stack_config(sshd, tmp_path, example_config_path):
    vm_file = tmp_path / "vms.json"
    vm_file.write_text(example_config_path.read_text())
    key_file = tmp_path / "id"
    private, _ = keygen(key_file)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    pulumi = StandinPulumi.create(tmp_path, stacks=())
    done = init(pulumi, "--endpoint", "https://pve.lab:8006/", "--token-file", str(token_file),
                "--insecure", "true", "--key-file", str(key_file), "--ssh-user", TEST_USER,
                "--node", "pve", "--node-address", "127.0.0.1", "--node-port", str(sshd.port),
                "--host-key-fingerprint", server_fingerprint(sshd), "--file", str(vm_file))
    assert done.returncode == 0, done.stderr
    assert server_fingerprint(sshd) in done.stdout  # shown
    assert pulumi.config["phoenix-hypervisor:vmConfigFile"] == str(vm_file)
    config = pulumi.config
    assert config["proxmoxve:endpoint"] == "https://pve.lab:8006/"
    assert config["proxmoxve:apiToken"] == TOKEN
    assert config["phoenix-hypervisor:sshPrivateKey"].strip() == private.strip()
    assert config["phoenix-hypervisor:nodes"] == {"pve": {
        "address": "127.0.0.1", "port": sshd.port, "hostKeys": [" ".join(sshd.host_key_line.split()[:2])]}}
    assert set(pulumi.state["secret_keys"]) == {"proxmoxve:apiToken", "phoenix-hypervisor:sshPrivateKey"}
    # secrets travel on standard input, never on a command line
    assert not any(TOKEN in " ".join(call) or "PRIVATE KEY" in " ".join(call) for call in pulumi.calls)
    assert ["stack", "select", "--create", "--stack", "dev"] in pulumi.calls
    assert "the config is complete" in done.stdout  # the offline check ran after writing


def test_a_fingerprint_that_does_not_match_pins_nothing(sshd, tmp_path):
    pulumi = StandinPulumi.create(tmp_path)
    done = init(pulumi, "--node", "pve", "--node-address", "127.0.0.1", "--node-port", str(sshd.port),
                "--host-key-fingerprint", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert done.returncode == 1
    assert "matches none of the keys the node offered: nothing pinned" in done.stderr
    assert pulumi.config == {} and not any(c[:2] == ["config", "set"] for c in pulumi.calls)


def test_without_confirmation_nothing_is_trusted(sshd, tmp_path):
    pulumi = StandinPulumi.create(tmp_path)
    done = init(pulumi, "--node", "pve", "--node-address", "127.0.0.1", "--node-port", str(sshd.port))
    assert done.returncode == 1
    assert server_fingerprint(sshd) in done.stdout
    assert "not confirmed, nothing pinned" in done.stderr
    assert pulumi.config == {}


def test_interactive_answers_and_a_yes_pin_the_key(sshd, tmp_path, example_config_path):
    key_file = tmp_path / "id"
    keygen(key_file)
    pulumi = StandinPulumi.create(tmp_path)
    answers = "\n".join(["https://pve.lab:8006/", TOKEN, "false", str(key_file), "root", "pve",
                         "127.0.0.1", str(sshd.port), "y"]) + "\n"
    done = init(pulumi, "--interactive", "--file", str(example_config_path), stdin=answers)
    assert done.returncode == 0, done.stderr
    assert "Are these the node's keys? Pin them [y/N]" in done.stdout
    assert pulumi.config["phoenix-hypervisor:nodes"]["pve"]["hostKeys"] == [
        " ".join(sshd.host_key_line.split()[:2])]
    assert TOKEN not in done.stdout  # the token prompt does not echo it back


def test_interactive_no_pins_nothing(sshd, tmp_path):
    keygen(tmp_path / "id")
    pulumi = StandinPulumi.create(tmp_path)
    answers = "\n".join(["", "", "", str(tmp_path / "id"), "", "pve", "127.0.0.1", str(sshd.port), "n"]) + "\n"
    done = init(pulumi, "--interactive", stdin=answers)
    assert done.returncode == 1
    assert "nothing pinned" in done.stderr and pulumi.config == {}


def test_bad_values_are_all_reported_before_anything_is_written(tmp_path):
    (tmp_path / "enc").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n"
                                  "-----END OPENSSH PRIVATE KEY-----\n")
    pulumi = StandinPulumi.create(tmp_path)
    done = init(pulumi, "--endpoint", "http://pve:8006", "--key-file", str(tmp_path / "enc"),
                "--node-address", "10.0.0.2", PROXMOX_VE_API_TOKEN="nonsense")
    assert done.returncode == 1
    err = done.stderr
    assert ("proxmoxve:endpoint: the endpoint (PROXMOX_VE_ENDPOINT / proxmoxve:endpoint) must be "
            "the API's https URL") in err
    assert "proxmoxve:apiToken: is not of the form user@realm!tokenid=secret" in err
    assert "phoenix-hypervisor:sshPrivateKey:" in err
    assert "--node-address needs --node" in err
    assert "nonsense" not in err and "nothing was written." in done.stdout
    assert pulumi.config == {}


def test_check_reports_missing_keys(tmp_path):
    pulumi = StandinPulumi.create(tmp_path)
    done = init(pulumi, "--check")
    assert done.returncode == 1
    assert "proxmoxve:endpoint: not set" in done.stderr


def test_a_host_key_given_as_a_flag_is_pinned_without_fetching(tmp_path, sshd):
    pulumi = StandinPulumi.create(tmp_path)
    line = " ".join(sshd.host_key_line.split()[:2])
    # 192.0.2.1 (TEST-NET-1) is never contacted: nothing is fetched when the key is given
    done = init(pulumi, "--node", "pve", "--node-address", "192.0.2.1", "--host-key", line + " from-console")
    assert done.returncode == 1, done.stderr  # written; the check then names what is still missing
    assert "stack dev: set phoenix-hypervisor:nodes.pve.address" in done.stdout
    assert "proxmoxve:endpoint: not set" in done.stderr
    assert pulumi.config["phoenix-hypervisor:nodes"] == {"pve": {"address": "192.0.2.1", "hostKeys": [line]}}
    assert "offers these SSH host keys" not in done.stdout

    bad = init(StandinPulumi.create(tmp_path), "--node", "pve", "--node-address", "192.0.2.1",
               "--host-key", "ssh-ed25519 notbase64!")
    assert bad.returncode == 1 and "--host-key: host key line 1: the key is not valid base64" in bad.stderr


def test_without_the_pulumi_cli_init_says_where_to_get_it(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "phoenix", "init", "--check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2  # could not start (docs/cli.md)
    assert done.stderr == ("error: the Pulumi CLI (pulumi) is not installed: "
                           "https://www.pulumi.com/docs/install/\n")


def shipped_example(tmp_path: Path) -> Path:
    path = tmp_path / "vms.json"
    path.write_text((ROOT / "phoenix_vm_configs.json").read_text())
    return path


def test_admin_key_replaces_the_placeholder_and_needs_no_pulumi(tmp_path, example_admin_key):
    vm_file = shipped_example(tmp_path)
    pub = tmp_path / "me.pub"
    pub.write_text(example_admin_key + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no pulumi on PATH
    done = subprocess.run([sys.executable, "-m", "phoenix", "init", "--admin-key", str(pub), "--file",
                           str(vm_file)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert "your public key replaces the example's placeholder" in done.stdout
    doc = json.loads(vm_file.read_text())
    assert doc["defaults"]["user"]["ssh_authorized_keys"] == [example_admin_key]
    assert "admin@laptop" not in vm_file.read_text()
    # run again: no placeholder left, the file is not touched
    again = subprocess.run(done.args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert again.returncode == 0 and "has no key placeholder, left as it is" in again.stdout
    assert json.loads(vm_file.read_text()) == doc


def test_admin_key_is_asked_when_the_file_has_the_placeholder(tmp_path, example_admin_key):
    vm_file = shipped_example(tmp_path)
    pub = tmp_path / "me.pub"
    pub.write_text(example_admin_key + "\n")
    keygen(tmp_path / "id")
    # endpoint, token, insecure, Pulumi's key, ssh user, node, node address (none), admin key
    answers = ["", "", "", str(tmp_path / "id"), "", "", ""]
    done = init(StandinPulumi.create(tmp_path), "--interactive", "--file", str(vm_file),
                stdin="\n".join([*answers, str(pub)]) + "\n")
    assert "Your SSH public key for the VMs' admin user" in done.stdout, done.stderr
    assert json.loads(vm_file.read_text())["defaults"]["user"]["ssh_authorized_keys"] == [example_admin_key]
    # an empty answer writes no key (nothing is guessed)
    other = tmp_path / "other"
    other.mkdir()
    untouched = shipped_example(other)
    done = init(StandinPulumi.create(other), "--interactive", "--file", str(untouched),
                stdin="\n".join([*answers, ""]) + "\n")
    assert "Your SSH public key for the VMs' admin user" in done.stdout, done.stderr
    assert untouched.read_text() == (ROOT / "phoenix_vm_configs.json").read_text()


@pytest.mark.parametrize("content, message", [
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGw cut@short", "cut short"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n", "is a private key"),
    ("ssh-ed25519", "not an SSH public key line"),
])
def test_a_bad_admin_key_writes_nothing(tmp_path, content, message):
    vm_file = shipped_example(tmp_path)
    pub = tmp_path / "me.pub"
    pub.write_text(content)
    done = init(StandinPulumi.create(tmp_path), "--admin-key", str(pub), "--file", str(vm_file))
    assert done.returncode == 1 and message in done.stderr and "nothing was written." in done.stdout
    assert "Traceback" not in done.stderr
    assert vm_file.read_text() == (ROOT / "phoenix_vm_configs.json").read_text()
