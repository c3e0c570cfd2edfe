"""Data disks in the seed: a bootcmd entry at every boot, last, with the config's values as argv
only; valid for cloud-init 22.4 and 25.1; no value can inject a key or a command."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
import yaml
from cloudinit_check import assert_valid_user_data

from phoenix.cloudinit import render_user_data
from phoenix.cloudinit.render import DATA_DISKS_SCRIPT, agent_install_script, data_disk_args
from phoenix.config import build_config
from phoenix.config.model import DataDiskConfig

DISKS = [{"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"},
         {"name": "backups", "size_gb": 500, "mount": "/srv/backups", "storage": "tank", "filesystem": "xfs"}]


@pytest.fixture
def data_vm(doc):
    doc["vms"][0]["data_disks"] = DISKS
    return build_config(doc).vm(8001)


def _script() -> str:
    return DATA_DISKS_SCRIPT.read_text().rstrip("\n") + "\n"


def test_data_disks_are_a_bootcmd_at_every_boot_and_last(data_vm):
    user_data = yaml.safe_load(render_user_data(data_vm))
    agent, disks = user_data["bootcmd"]
    assert agent[:3] == ["cloud-init-per", "instance", "phoenix-guest-agent"]
    # not cloud-init-per: it runs at every boot (mounts, grows), and last, so its exit status is
    # bootcmd's (cloudinit/util.py shellify: one script, no `set -e`)
    assert disks == ["sh", "-c", _script(), "phoenix-data-disks",
                     "phx-docker", "ext4", "/var/lib/docker", "phx-backups", "xfs", "/srv/backups"]


def test_without_the_agent_install_only_the_data_disks_remain(data_vm):
    vm = dataclasses.replace(data_vm, guest_agent=dataclasses.replace(data_vm.guest_agent, preinstalled=True))
    (only,) = yaml.safe_load(render_user_data(vm))["bootcmd"]
    assert only[:2] == ["sh", "-c"] and only[3] == "phoenix-data-disks"


def test_no_data_disks_no_change_to_the_seed(doc):
    vm = build_config(doc).vm(8001)
    assert yaml.safe_load(render_user_data(vm))["bootcmd"] == [
        ["cloud-init-per", "instance", "phoenix-guest-agent", "sh", "-c", agent_install_script()]]
    assert "phoenix-data-disks" not in render_user_data(vm)


def test_rendered_user_data_with_data_disks_passes_both_cloud_init_schemas(data_vm):
    assert_valid_user_data(render_user_data(data_vm))
    preinstalled = dataclasses.replace(data_vm.guest_agent, preinstalled=True)
    assert_valid_user_data(render_user_data(dataclasses.replace(data_vm, guest_agent=preinstalled)))


@pytest.mark.parametrize("payload", ["x\nruncmd: [[reboot]]", "/srv/a; reboot", "$(reboot)", "'; reboot; '",
                                     '" \nbootcmd: [reboot]\n#', "{{ 7*7 }}"])
def test_values_stay_argv_even_past_the_config_checks(data_vm, payload):
    bad = DataDiskConfig(name=payload, size_gb=1, mount=payload, storage="s", filesystem=payload)
    vm = dataclasses.replace(data_vm, data_disks=(bad,))
    user_data = yaml.safe_load(render_user_data(vm))
    assert set(user_data) <= {"hostname", "fqdn", "preserve_hostname", "manage_etc_hosts", "users",
                              "disable_root", "ssh_pwauth", "ssh_genkeytypes", "growpart", "resize_rootfs",
                              "bootcmd", "package_update", "package_upgrade", "packages", "write_files",
                              "runcmd", "timezone"}
    assert user_data["bootcmd"][-1] == ["sh", "-c", _script(), "phoenix-data-disks",
                                        f"phx-{payload}", payload, payload]
    assert len(user_data["runcmd"]) == 2


def test_script_is_plain_sh_and_formats_only_blank_disks():
    assert subprocess.run(["sh", "-n", str(DATA_DISKS_SCRIPT)], check=False).returncode == 0
    text = DATA_DISKS_SCRIPT.read_text()
    # the only mkfs calls sit behind `blkid -p` exit 2 ("nothing found", util-linux blkid(8))
    assert text.index('if [ "$probe" -eq 2 ]') < text.index("mkfs.ext4") < text.index("mkfs.xfs")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "/dev/sd" not in code and "/dev/vd" not in code  # found by serial, never by name
    assert "UUID=$uuid $mnt $fs defaults,nofail" in code


def test_no_disks_no_arguments(doc):
    assert data_disk_args(build_config(doc).vm(8002)) == []
