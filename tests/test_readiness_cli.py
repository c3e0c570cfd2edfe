"""`python -m phoenix wait`: through the real argument parser, against fakepve."""

from __future__ import annotations

import argparse
import ipaddress
import json

import pytest
from readiness_fixtures import (
    TOKEN_SECRET,
    add_token,
    add_vm,
    agent_answers,
    fast_polling,
    openssh_public_keys,
)

from phoenix.config import (
    Config,
    ConfigError,
    ConfigFileError,
    GuestAgentConfig,
    NetworkConfig,
    Problem,
    UserConfig,
    VmConfig,
)
from phoenix.readiness import cli


def vm_config(index: int, vmid: int, timeout_s: int) -> VmConfig:
    return VmConfig(
        index=index, vmid=vmid, name=f"gen-{vmid}", node="pve", clone_from=9000, image=None,
        cores=2, memory_mb=2048, disk_gb=20, storage="local-zfs",
        network_config=NetworkConfig(ip=ipaddress.IPv4Interface(f"10.64.0.{index + 2}/16"),
                                     gateway=ipaddress.IPv4Address("10.64.0.1"), dns=(),
                                     search_domain=None, bridge="vmbr0", vlan=None,
                                     mac_address=f"bc:24:11:00:00:{index:02x}"),
        user=UserConfig(name="phoenix", ssh_authorized_keys=()),
        guest_agent=GuestAgentConfig(timeout_s=timeout_s),
    )


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """A config path; the loader is replaced by one returning a Config built from the model:
    these tests need a 2 s guest_agent.timeout_s, below what the file's schema allows (10)."""
    path = tmp_path / "vms.json"
    path.write_text("{}")
    config = Config(path=path, vms=(vm_config(0, 8001, 2), vm_config(1, 8002, 900)), images={})

    def load(file: str) -> Config:
        if file == str(path):
            return config
        if file.endswith("bad.json"):
            raise ConfigError(file, [Problem("vms[0] (vmid 5)", "vmid", "must be >= 100")])
        raise ConfigFileError(f"{file}: cannot read: No such file or directory")

    monkeypatch.setattr("phoenix.cli_support.load_config", load)
    return path


@pytest.fixture
def env(monkeypatch, fakepve, fakepve_cafile):
    fast_polling(monkeypatch)
    monkeypatch.setenv("PROXMOX_VE_ENDPOINT", fakepve.url)
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", add_token(fakepve))
    monkeypatch.delenv("PROXMOX_VE_INSECURE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fakepve_cafile)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


def test_ready_vm_prints_outputs(fakepve, env, config_file, capsys):
    keys = openssh_public_keys()
    add_vm(fakepve).agent = agent_answers(host_keys=keys)
    assert run("8001", "--file", str(config_file)) == 0
    out, err = capsys.readouterr()
    assert "VM 8001 (gen-8001) on pve is ready" in out
    assert "ipv4_addresses: 192.0.2.10" in out
    assert " ".join(keys[0].split()[:2]) in out
    assert "guest agent answered" in err
    assert TOKEN_SECRET not in out + err


def test_json_output(fakepve, env, config_file, capsys):
    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys(), cloud_init_exit=2)
    assert run("8001", "--file", str(config_file), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ready"] is True and data["vmid"] == 8001
    assert data["cloud_init_status"] == "degraded" and len(data["ssh_host_keys"]) == 3
    assert data["warnings"]


def test_json_output_when_not_ready(fakepve, env, config_file, capsys):
    add_vm(fakepve)  # no agent; the config gives this VM 2 s
    assert run("8001", "--file", str(config_file), "--json") == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["ready"] is False and data["vmid"] == 8001 and data["name"] == "gen-8001"
    assert data["stage"] == "agent" and "did not answer within 2 s" in data["error"]
    assert data["elapsed_s"] >= 0
    assert "error: VM 8001 (gen-8001) not ready (stage: agent)" in err


def test_timeout_from_config_and_stage_in_the_error(fakepve, env, config_file, capsys):
    add_vm(fakepve)  # no agent; the config gives this VM 2 s
    assert run("8001", "--file", str(config_file)) == 1
    err = capsys.readouterr().err
    assert "error: VM 8001 (gen-8001) not ready (stage: agent)" in err
    assert "did not answer within 2 s" in err
    # the same first-boot hint as the Pulumi resource: what this VM's agent depended on
    assert "VM 8001 (gen-8001) installs qemu-guest-agent from its package mirror" in err
    assert "Traceback" not in err


def test_timeout_option_overrides_and_stopped_vm(fakepve, env, config_file, capsys):
    add_vm(fakepve, vmid=8002, status="stopped")
    assert run("8002", "--file", str(config_file), "--timeout", "1") == 1
    assert "(stage: vm-status): VM 8002 on pve is stopped" in capsys.readouterr().err


def test_user_mistakes_give_messages_not_tracebacks(monkeypatch, tmp_path, config_file, capsys):
    monkeypatch.delenv("PROXMOX_VE_ENDPOINT", raising=False)
    monkeypatch.delenv("PROXMOX_VE_API_TOKEN", raising=False)
    # could not start: 2, as in every command (not 1, which means "not ready")
    assert run("8001", "--file", str(tmp_path / "missing.json")) == 2
    assert run("9999", "--file", str(config_file)) == 2
    assert run("8001", "--file", str(config_file)) == 2
    assert run("8001", "--file", str(tmp_path / "bad.json")) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "vmid: must be >= 100" in err
    assert "no VM with vmid 9999" in err and "known: 8001, 8002" in err
    assert "set PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN" in err
    assert "Traceback" not in err


def test_wired_into_the_main_command(fakepve, env, config_file, capsys):
    from phoenix.cli import main

    add_vm(fakepve).agent = agent_answers(host_keys=openssh_public_keys())
    assert main(["wait", "8001", "--file", str(config_file), "--timeout", "20"]) == 0
    assert "is ready" in capsys.readouterr().out
