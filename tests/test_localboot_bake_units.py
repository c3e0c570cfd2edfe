"""The local bake's pieces that need no guest: stages, network-config, output, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cloudinit_check import assert_valid_network_config, parse_network_config

from phoenix.localboot.bake import (
    BAKE_IP,
    BAKE_MAC,
    BakeError,
    bake_network_config,
    boot_command,
    flatten,
    stage_of,
)
from phoenix.localboot.bake_inspect import BakedImageFacts
from phoenix.localboot.run import BootImage

CONFIG = Path(__file__).parent / "data" / "realboot_templates.json"


def test_stage_follows_the_sealing_lines():
    assert stage_of([]) == "cloud-init"
    assert stage_of(["waiting for cloud-init"]) == "cloud-init"
    assert stage_of(["waiting for cloud-init", "sealing"]) == "sealing"
    assert stage_of(["sealing", "sealed, powering off"]) == "power-off"


def test_bake_network_config_is_what_cloud_init_reads():
    assert_valid_network_config(bake_network_config())  # both cloud-init generations
    parsed = parse_network_config(bake_network_config())
    (iface,) = parsed["interfaces"]
    assert iface["mac_address"] == BAKE_MAC
    assert any(s.get("address", "").startswith(str(BAKE_IP.ip)) for s in iface["subnets"])


def test_flatten_failure_leaves_no_output(tmp_path):
    output = tmp_path / "out.qcow2"
    with pytest.raises(BakeError) as info:
        flatten(tmp_path / "missing.qcow2", output)
    assert "qemu-img convert failed" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_boot_command_names_kernel_files_for_direct_boot(tmp_path):
    image = BootImage("debian-bookworm", tmp_path / "d.qcow2", tmp_path / "vmlinuz",
                      tmp_path / "initrd.img", "root=LABEL=rootfs ro console=ttyS0")
    out = tmp_path / "baked.qcow2"
    command = boot_command(image, out)
    assert f"--image {out}" in command and f"--kernel {tmp_path / 'baked.vmlinuz'}" in command
    assert "--append 'root=LABEL=rootfs ro console=ttyS0'" in command
    assert "--kernel" not in boot_command(BootImage("cloud", out), out)


def test_facts_name_every_leftover():
    facts = BakedImageFacts(False, "not started", "0123456789abcdef", ("ssh_host_ed25519_key",),
                            ("instance",), ("cloud-init.log",), ("deb.debian.org_dists",),
                            ("/etc/systemd/network/10-cloud-init-eth0.network",),
                            agent_early=False, datasource_list="",
                            apt_timers_with_catch_up=("apt-daily.timer",))
    problems = " | ".join(facts.problems)
    for text in ("not installed", "neither enabled", "machine-id is set", "ssh_host_ed25519_key",
                 "instance", "cloud-init.log", "apt list", "10-cloud-init-eth0.network",
                 "10-phoenix-early.conf", "no datasource_list", "apt-daily.timer"):
        assert text in problems
    clean = BakedImageFacts(True, "static-udev", "", (), (), (), ())
    assert clean.problems == []


@pytest.mark.parametrize("argv, message", [
    (["no-such-template", "--image", "debian-bookworm"], "no template 'no-such-template'"),
    (["debian-12-agent", "--image", "/nonexistent.img"], "no such file"),
    (["debian-12-agent", "--image", "debian-bookworm", "--timeout", "0"], "--timeout must be > 0"),
])
def test_cli_usage_errors_exit_2_without_traceback(argv, message):
    done = subprocess.run([sys.executable, "-m", "phoenix", "template", "bake", *argv,
                           "--file", str(CONFIG)], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_config_problem_exits_2(tmp_path):
    doc = json.loads(CONFIG.read_text())
    doc["templates"][0]["image"] = "nope"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "phoenix", "template", "bake", "debian-12-agent",
                           "--image", "x", "--file", str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and "templates[0]" in done.stderr and "Traceback" not in done.stderr
