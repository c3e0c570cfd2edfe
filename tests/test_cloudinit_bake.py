"""The bake seed: rendered by the project's code, valid for cloud-init, data never code."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from cloudinit_check import assert_valid_user_data

from phoenix.cloudinit import render_bake_meta_data, render_bake_user_data
from phoenix.cloudinit.bake import SEAL_PATH, SEAL_UNIT, STATUS_FILE, seal_script
from phoenix.config.model import TemplateConfig


def template(**over) -> TemplateConfig:
    fields = {"index": 0, "vmid": 9100, "name": "ubuntu-2404-agent", "nodes": ("pve", "pve2"),
              "image": "ubuntu-24.04", "storage": "local-zfs",
              "packages": ("qemu-guest-agent", "htop", "curl=7.88.1-10")}
    return TemplateConfig(**{**fields, **over})


def test_bake_seed_installs_the_agent_first_and_seals_after_cloud_final():
    doc = yaml.safe_load(render_bake_user_data(template(packages=("htop",))))
    assert doc["packages"] == ["qemu-guest-agent", "htop"]
    assert doc["package_update"] is True and doc["users"] == ""
    (seal,) = doc["write_files"]
    assert seal["path"] == SEAL_PATH and seal["permissions"] == "0755"
    assert seal["content"] == seal_script()
    enable, run_seal = doc["runcmd"]
    assert "systemctl enable qemu-guest-agent" in enable[2]
    assert run_seal == ["systemd-run", "--no-block", f"--unit={SEAL_UNIT}",
                        "--property=After=cloud-final.service", SEAL_PATH, "qemu-guest-agent", "htop"]


def test_seal_script_cleans_instance_state_then_powers_off():
    script = seal_script()
    order = ["cloud-init status --wait", "dpkg-query", "systemctl is-enabled qemu-guest-agent",
             "rm -rf /var/lib/apt/lists/*", "rm -f /etc/ssh/ssh_host_*",
             "cloud-init clean --logs --machine-id", "rm -f /etc/systemd/network/10-cloud-init-*",
             ": > /etc/machine-id", "systemctl poweroff"]
    positions = [script.index(step) for step in order]
    assert positions == sorted(positions)
    assert STATUS_FILE in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_seal_script_is_valid_shell():
    done = subprocess.run(["sh", "-n", "-c", seal_script()], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_bake_seed_passes_cloud_init_schema():
    # cloud-init 22.4 and 25.1 (tests/cloudinit_check.py GENERATIONS)
    assert_valid_user_data(render_bake_user_data(template()))
    assert_valid_user_data(render_bake_user_data(template(packages=("qemu-guest-agent",))))


def test_bake_meta_data_is_per_copy():
    t = template()
    assert yaml.safe_load(render_bake_meta_data(t, "pve")) == {
        "instance-id": "iid-phoenix-bake-9100", "local-hostname": "ubuntu-2404-agent"}
    assert yaml.safe_load(render_bake_meta_data(t, "pve2"))["instance-id"] == "iid-phoenix-bake-9101"


def test_template_values_stay_data():
    hostile = template(name='x"\nruncmd: [reboot]', packages=("htop; reboot",))
    text = render_bake_user_data(hostile)
    doc = yaml.safe_load(text)
    assert doc["hostname"] == 'x"\nruncmd: [reboot]'
    assert doc["runcmd"][1][-1] == "htop; reboot"  # one argv element, no shell
    assert len(doc["runcmd"]) == 2
