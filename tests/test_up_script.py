"""scripts/up.sh from a fresh clone to `pulumi up`, with a STAND-IN Pulumi CLI on PATH
(tests/standin_pulumi/pulumi: records its calls, answers `config get` from a state file) and a
stand-in for pip only (the real .venv's Python runs `python -m phoenix init --check`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pulumi_standin import StandinPulumi

ROOT = Path(__file__).resolve().parents[1]
PIP_STANDIN = """#!/bin/sh
# STAND-IN for the virtualenv's python: `-m pip` is recorded (nothing is installed); anything
# else runs the real interpreter.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$*" >> "$(dirname "$0")/../pip-calls.log"; exit 0; fi
exec {python} "$@"
"""


@pytest.fixture
def project(tmp_path: Path, example_document) -> Path:
    """A copy of the project as a user clones it, with .venv/bin/python as above, and the
    example config with the user's key in it (what `phoenix init --admin-key` does)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("scripts", "cloud_init"):
        shutil.copytree(ROOT / name, proj / name)
    (proj / "phoenix").symlink_to(ROOT / "phoenix")
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "phoenix_vm_configs.json", "requirements.txt",
                 "pyproject.toml"):
        shutil.copy(ROOT / name, proj / name)
    (proj / "phoenix_vm_configs.json").write_text(json.dumps(example_document, indent=2))
    venv_bin = proj / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(PIP_STANDIN.format(python=sys.executable))
    (venv_bin / "python").chmod(0o755)
    return proj


def complete_config(private_key: str, host_key: str) -> dict:
    return {
        "proxmoxve:endpoint": "https://pve.lab.internal:8006/",
        "proxmoxve:apiToken": "pulumi@pve!phoenix=0b7c3f1e-6d2a-4c55-9e8f-2a1d9c4b7e60",
        "proxmoxve:insecure": "false",
        "phoenix-hypervisor:sshPrivateKey": private_key,
        "phoenix-hypervisor:nodes": {"pve": {"address": "10.0.0.2", "hostKeys": [host_key]}},
    }


def host_key_line() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def up(project: Path, pulumi: StandinPulumi | None, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(project)}
    full = pulumi.env(base) if pulumi else base
    full.update(env)
    return subprocess.run(["bash", str(project / "scripts" / "up.sh"), "--yes"], cwd="/", env=full,
                          capture_output=True, text=True, timeout=120, check=False)


def ran_up(pulumi: StandinPulumi) -> bool:
    return any(call[:1] == ["up"] for call in pulumi.calls)


def up_call(pulumi: StandinPulumi, *rest: str, stack: str = "dev") -> list[str]:
    """The `pulumi up` call, checked to be `up --stack S --plan <the preview's plan> REST...`
    (scripts/up.sh delegates to `python -m phoenix up`, which previews first: test_up_guard.py)."""
    ups = [c for c in pulumi.calls if c[:1] == ["up"]]
    assert len(ups) == 1, pulumi.calls
    previews = [c for c in pulumi.calls if c[:1] == ["preview"]]
    assert previews and previews[-1][previews[-1].index("--save-plan") + 1] == ups[0][4]
    assert ups[0][:4] == ["up", "--stack", stack, "--plan"] and ups[0][5:] == list(rest), ups[0]
    return ups[0]


def test_without_pulumi_cli_says_where_to_get_it_and_the_minimum_version(project):
    done = up(project, None)
    assert done.returncode == 1
    assert "the Pulumi CLI is not installed: version 3.254.0 or later is needed" in done.stderr
    assert "https://www.pulumi.com/docs/install/" in done.stderr


def test_config_problems_come_first_even_without_pulumi(project):
    """A newcomer sees what to fix in the VM config before installing anything: the offline
    check runs before the Pulumi CLI is looked for."""
    shutil.copy(ROOT / "phoenix_vm_configs.json", project / "phoenix_vm_configs.json")
    done = up(project, None)
    assert done.returncode == 1
    assert "user.ssh_authorized_keys[0]: still the example's placeholder" in done.stderr
    assert "phoenix init --admin-key ~/.ssh/id_ed25519.pub" in done.stderr
    assert "up: fix phoenix_vm_configs.json as the lines above say" in done.stderr
    assert "Pulumi CLI" not in done.stderr and "Traceback" not in done.stderr


def test_the_stacks_vm_config_file_is_the_one_checked_first(project, tmp_path, pulumi_private_key):
    (project / "mine.json").write_text("{not json")
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("vmConfigFile: phoenix_vm_configs.json",
                                                         "vmConfigFile: mine.json"))
    done = up(project, None)
    assert done.returncode == 1 and "mine.json" in done.stderr and "Pulumi CLI" not in done.stderr


@pytest.mark.parametrize("version", ["v3.253.9", "v3.207.0", "v3.99.1", "garbage"])
def test_a_cli_older_than_the_minimum_is_refused_before_anything_else(project, tmp_path, version):
    """Readiness and features follow a rebuilt VM through `replaceWith` (CLI >= 3.207.0), whose
    dangling references 3.254.0 fixes (phoenix/pulumi_version.py, the one place of the number):
    refuse an older CLI up front."""
    pulumi = StandinPulumi.create(tmp_path, url=None, stacks=())
    state = pulumi.state
    state["version"] = version
    pulumi.state_file.write_text(json.dumps(state))
    done = up(project, pulumi)
    assert done.returncode == 1
    assert "is too old: 3.254.0 or later is needed (replaceWith)" in done.stderr
    assert [c for c in pulumi.calls if c[:1] != ["version"]] == []  # nothing else was asked


def test_first_run_logs_in_locally_then_asks_for_the_passphrase(project, tmp_path):
    pulumi = StandinPulumi.create(tmp_path, url=None, stacks=())
    done = up(project, pulumi)
    assert done.returncode == 1, done.stderr
    assert "PULUMI_CONFIG_PASSPHRASE is not set" in done.stderr
    assert "read -rs PULUMI_CONFIG_PASSPHRASE && export PULUMI_CONFIG_PASSPHRASE" in done.stderr
    assert ["login", "--local"] in pulumi.calls
    assert not ran_up(pulumi) and pulumi.state["stacks"] == []  # nothing created without it


def test_backend_url_is_used_for_login(project, tmp_path):
    pulumi = StandinPulumi.create(tmp_path, url=None, stacks=())
    up(project, pulumi, PULUMI_BACKEND_URL="s3://bucket/state")
    assert ["login", "s3://bucket/state"] in pulumi.calls


def test_empty_stack_lists_every_missing_key_with_its_command(project, tmp_path):
    pulumi = StandinPulumi.create(tmp_path, config={}, url=None, stacks=())
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1
    err = done.stderr
    assert ["stack", "init", "dev"] in pulumi.calls
    for key, fix in [
        ("proxmoxve:endpoint: not set", "pulumi config set proxmoxve:endpoint https://PVE-HOST:8006/"),
        ("proxmoxve:apiToken: not set", "pulumi config set --secret proxmoxve:apiToken"),
        ("phoenix-hypervisor:sshPrivateKey: not set",
         "pulumi config set --secret phoenix-hypervisor:sshPrivateKey < ~/.ssh/phoenix_ed25519"),
        ("phoenix-hypervisor:nodes.pve: zfs[0]: node 'pve' has no entry",
         "python -m phoenix init --node pve --node-address ADDRESS"),
    ]:
        assert key in err and fix in err, (key, err)
    assert "Traceback" not in err
    assert not ran_up(pulumi)


def test_the_shipped_example_key_placeholder_stops_before_pulumi_up(project, tmp_path, pulumi_private_key):
    """As shipped, the example has no one's key: up.sh stops, naming the command that puts the
    user's own key in; nothing is deployed."""
    shutil.copy(ROOT / "phoenix_vm_configs.json", project / "phoenix_vm_configs.json")
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()))
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1 and not ran_up(pulumi)
    assert "user.ssh_authorized_keys[0]: still the example's placeholder" in done.stderr
    assert "(.venv/bin/python -m phoenix init --admin-key ~/.ssh/id_ed25519.pub)" in done.stderr


def test_empty_host_keys_beside_zfs_is_named_before_pulumi_up(project, tmp_path, pulumi_private_key):
    config = complete_config(pulumi_private_key, host_key_line())
    config["phoenix-hypervisor:nodes"]["pve"]["hostKeys"] = []
    pulumi = StandinPulumi.create(tmp_path, config=config)
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1
    assert "phoenix-hypervisor:nodes.pve.hostKeys is empty" in done.stderr
    assert "python -m phoenix init --node pve --node-address 10.0.0.2" in done.stderr
    assert not ran_up(pulumi)


def test_malformed_values_are_named(project, tmp_path, pulumi_private_key):
    config = complete_config("not a key", host_key_line())
    config["proxmoxve:endpoint"] = "http://pve.lab:8006/"
    config["proxmoxve:apiToken"] = "just-a-secret"
    pulumi = StandinPulumi.create(tmp_path, config=config)
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1
    assert ("proxmoxve:endpoint: the endpoint (PROXMOX_VE_ENDPOINT / proxmoxve:endpoint) must be "
            "the API's https URL") in done.stderr
    assert "proxmoxve:apiToken: is not of the form user@realm!tokenid=secret" in done.stderr
    assert "just-a-secret" not in done.stderr + done.stdout  # a secret is never echoed
    assert "phoenix-hypervisor:sshPrivateKey: the SSH private key is not a PEM/OpenSSH" in done.stderr


def test_complete_config_reaches_pulumi_up_and_pip_runs_once(project, tmp_path, pulumi_private_key):
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()))
    first = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert first.returncode == 0, first.stderr
    up_call(pulumi, "--yes")
    assert "installing requirements.txt" in first.stderr
    second = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE_FILE="/dev/null")
    assert second.returncode == 0, second.stderr
    assert "installing" not in second.stderr  # a repeated `up` runs no pip
    assert len((project / ".venv" / "pip-calls.log").read_text().splitlines()) == 1
    # the stack was selected, not created again; the config was checked before `up`
    assert [c for c in pulumi.calls if c[:2] == ["stack", "init"]] == []
    up_index = max(i for i, c in enumerate(pulumi.calls) if c[:1] == ["up"])
    assert ["config", "--json", "--show-secrets", "--stack", "dev"] in pulumi.calls[:up_index]


@pytest.mark.parametrize("whoami_json", [True, False])
def test_cloud_backend_needs_no_passphrase(project, tmp_path, pulumi_private_key, whoami_json):
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()),
                                  url="https://api.pulumi.com")
    if not whoami_json:  # an older CLI: the backend comes from `whoami --verbose`
        state = pulumi.state
        state["no_json"] = True
        pulumi.state_file.write_text(json.dumps(state))
    done = up(project, pulumi)
    assert done.returncode == 0, done.stderr


def test_shipped_example_stack_has_no_value_that_fails_at_once(project, tmp_path, pulumi_private_key):
    """Pulumi.dev.yaml plus the keys a user must add (secrets, node) is a complete stack."""
    shipped = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert "phoenix-hypervisor:nodes" not in shipped  # no `hostKeys: []` to trip over
    config = {k: str(v) for k, v in shipped.items()}
    pulumi = StandinPulumi.create(tmp_path, config=config)
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    problems = [line for line in done.stderr.splitlines()
                if line.startswith("error: ") and "thing(s) to fix" not in line]
    assert done.returncode != 0 and problems, done.stderr
    assert all(": not set" in p or "has no entry" in p for p in problems), problems
    config.update(complete_config(pulumi_private_key, host_key_line()))
    config.update({k: str(v) for k, v in shipped.items()})
    pulumi = StandinPulumi.create(tmp_path, config=config)
    assert up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw").returncode == 0


# --- the README's sequence, command by command ----------------------------------------------

def readme_sequence() -> list[str]:
    """The commands of the README's "First `pulumi up`" block (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## First `pulumi up`"):]
    block = section[section.index("```sh\n") + 6:section.index("\n```", section.index("```sh\n"))]
    commands, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(" ".join(current.split()))
            current = ""
    return commands


def test_readme_sequence_reaches_pulumi_up(project, tmp_path, fakepve, fakepve_cafile, monkeypatch):
    """Each command of the README, in order, against the stand-in Pulumi CLI, fakepve as the
    cluster and a real sshd as the node. Substituted, and only these: the endpoint (fakepve's
    URL), the node's address (the sshd's, with the fingerprint a user confirms at the prompt as
    --host-key-fingerprint) and the virtualenv creation (the project copy has its .venv). The
    user's own key pair (~/.ssh/id_ed25519) exists, and the config file is the one shipped, with
    its key placeholder, which the README's `init --admin-key` replaces."""
    from fakepve_cluster import ready_cluster
    from ssh_fixtures import running_sshd

    from phoenix.remote.hostkeys import parse_pinned_keys

    token = ready_cluster(fakepve, monkeypatch, fakepve_cafile)
    commands = readme_sequence()
    assert commands[0].startswith("ssh-keygen") and commands[-1] == "scripts/up.sh", commands
    pulumi = StandinPulumi.create(tmp_path, url=None, stacks=())
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f",
                    str(home / ".ssh" / "id_ed25519")], check=True)
    shutil.copy(ROOT / "phoenix_vm_configs.json", project / "phoenix_vm_configs.json")
    env = pulumi.env({"PATH": "/usr/bin:/bin", "HOME": str(home), "PROXMOX_VE_API_TOKEN": token,
                      "REQUESTS_CA_BUNDLE": fakepve_cafile})
    servers = running_sshd(["root"])
    sshd = next(servers)
    # the node's ZFS (doctor reads the example's dataset): the zfs stand-in, tests/ssh_standin_zfs.py
    shutil.copy(Path(__file__).with_name("ssh_standin_zfs.py"), sshd.standin_bin / "zfs")
    (sshd.standin_bin / "zfs").chmod(0o755)
    (sshd.standin_bin / "zfs-state.json").write_text(json.dumps({"quickOS": {}, "quickOS/vm-disks": {}}))
    try:
        fingerprint = parse_pinned_keys([sshd.host_key_line])[0].fingerprint
        for command in commands:
            command = command.replace("https://pve.lab.internal:8006/", fakepve.url + "/")
            command = command.replace("--node-address 10.0.0.2", f"--node-address 127.0.0.1 --node-port "
                                      f"{sshd.port} --host-key-fingerprint {fingerprint}")
            command = command.replace("python3 -m venv .venv && ", "")
            if command.startswith("export "):
                name, _, value = command[len("export "):].partition("=")
                env[name] = value.strip("'")
                continue
            done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if command.startswith("ssh-keygen"):  # "then append ... on every node"
                sshd.authorize("root", (home / ".ssh" / "phoenix_ed25519.pub").read_text())
    finally:
        next(servers, None)
    assert any(c[:1] == ["up"] and c[1:3] == ["--stack", "dev"] for c in pulumi.calls)
    mine = (home / ".ssh" / "id_ed25519.pub").read_text().strip()
    assert json.loads((project / "phoenix_vm_configs.json").read_text())["defaults"]["user"][
        "ssh_authorized_keys"] == [mine]
    assert pulumi.config["phoenix-hypervisor:nodes"]["pve"]["hostKeys"] == [
        " ".join(sshd.host_key_line.split()[:2])]


def test_an_encrypted_key_is_named_with_how_to_make_a_plain_one(project, tmp_path):
    key = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    config = complete_config(key.read_text(), host_key_line())
    pulumi = StandinPulumi.create(tmp_path, config=config)
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1 and not ran_up(pulumi)
    assert "phoenix-hypervisor:sshPrivateKey: the SSH private key is encrypted (it has a passphrase)" \
        in done.stderr
    assert "ssh-keygen -p -N '' -f /tmp/phoenix-key" in done.stderr


def test_secrets_set_without_secret_are_named(project, tmp_path, pulumi_private_key):
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()),
                                  plaintext=("proxmoxve:apiToken",))
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1 and not ran_up(pulumi)
    assert "proxmoxve:apiToken: is stored in plain text in the stack file, not as a secret" in done.stderr
    assert "pulumi config set --secret proxmoxve:apiToken" in done.stderr
    assert "sshPrivateKey: is stored in plain text" not in done.stderr
    assert "0b7c3f1e" not in done.stderr  # the token itself is not shown


def test_older_cli_without_config_json_is_asked_key_by_key(project, tmp_path, pulumi_private_key):
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()))
    state = pulumi.state
    state["no_json"] = True
    pulumi.state_file.write_text(json.dumps(state))
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 0, done.stderr
    assert ["config", "get", "proxmoxve:endpoint", "--stack", "dev"] in pulumi.calls


def test_phoenix_stack_selects_another_stack(project, tmp_path, pulumi_private_key):
    pulumi = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()),
                                  stacks=())
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw", PHOENIX_STACK="prod")
    assert done.returncode == 0, done.stderr
    assert ["stack", "init", "prod"] in pulumi.calls and up_call(pulumi, "--yes", stack="prod")
