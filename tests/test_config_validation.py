"""The config checker: one test per rule, then all problems at once, then the CLI's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phoenix.config import ConfigError, ConfigFileError, build_config, load_config
from phoenix.config.rules import derived_mac
from phoenix.config.sample import sample_document

ED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF"
PRIVATE_KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(doc)
    return [str(p) for p in info.value.problems]


def only_problem(doc) -> str:
    found = problems(doc)
    assert len(found) == 1, found
    return found[0]


def test_example_file_is_valid():
    config = load_config("phoenix_vm_configs.json")
    assert [vm.vmid for vm in config.vms] == [8001, 8002]
    docker = config.vm(8001)
    # defaults fill what the VM leaves out; the VM's own values win; objects merge one level
    assert docker.node == "pve" and docker.cores == 4 and docker.storage == "local-zfs"
    assert str(docker.network_config.gateway) == "10.0.0.1" and docker.network_config.vlan == 20
    assert docker.user.name == "phoenix" and len(docker.user.ssh_authorized_keys) == 1
    assert docker.features[0].name == "docker"
    assert docker.network_config.mac_address == derived_mac(8001) == "02:50:48:00:1f:41"
    assert config.zfs[0].dataset == "quickOS/vm-disks" and config.zfs[0].properties == {"compression": "lz4"}


def test_generated_documents_are_valid():
    assert len(build_config(sample_document(300)).vms) == 300


def test_duplicate_vmid(doc):
    doc["vms"][1]["vmid"] = 8001
    assert "vms[1] (vmid 8001, phoenix-web-01): vmid: 8001 is already used by vms[0]" in only_problem(doc)


def test_duplicate_name_ignores_case(doc):
    doc["vms"][1]["name"] = "PHOENIX-docker-01"
    assert "name: phoenix-docker-01 is already used by vms[0]" in only_problem(doc)


def test_duplicate_ip(doc):
    doc["vms"][1]["network_config"]["ip"] = "10.0.0.101/24"
    assert "network_config.ip: 10.0.0.101 is already used by vms[0] (vmid 8001, phoenix-docker-01)" in only_problem(doc)


def test_duplicate_mac(doc):
    doc["vms"][1]["network_config"]["mac_address"] = derived_mac(8001).upper()
    assert "network_config.mac_address: 02:50:48:00:1f:41 is already used by vms[0]" in only_problem(doc)


def test_gateway_outside_subnet(doc):
    doc["vms"][0]["network_config"]["gateway"] = "10.0.1.1"
    msg = only_problem(doc)
    assert msg.startswith("vms[0] (vmid 8001, phoenix-docker-01): network_config.gateway:")
    assert "10.0.1.1 is outside the VM's subnet 10.0.0.0/24" in msg


@pytest.mark.parametrize("ip,kind", [("10.0.0.0/24", "network"), ("10.0.0.255/24", "broadcast")])
def test_network_and_broadcast_address(doc, ip, kind):
    doc["vms"][0]["network_config"]["ip"] = ip
    assert f"is the {kind} address of 10.0.0.0/24" in only_problem(doc)


def test_ip_needs_prefix(doc):
    doc["vms"][0]["network_config"]["ip"] = "10.0.0.50"
    assert "needs a prefix length, e.g. 10.0.0.50/24" in only_problem(doc)


def test_both_clone_and_image(doc):
    doc["vms"][0]["image"] = "ubuntu-24.04"
    assert "clone_from/image: set exactly one" in only_problem(doc) and "(found both)" in only_problem(doc)


def test_neither_clone_nor_image(doc):
    del doc["vms"][0]["clone_from"]
    assert "(found neither)" in only_problem(doc)


def test_unknown_image(doc):
    doc["vms"][1]["image"] = "ubuntu-22.04"
    assert "image: 'ubuntu-22.04' is not in images (known: ubuntu-24.04)" in only_problem(doc)


def test_clone_from_a_vm_of_the_file(doc):
    doc["vms"][1] = {**doc["vms"][1], "clone_from": 8001}
    del doc["vms"][1]["image"]
    expected = "clone_from: 8001 is a VM of this file (vms[0] (vmid 8001, phoenix-docker-01)), not a template"
    assert expected in only_problem(doc)


def test_feature_without_script(doc):
    doc["vms"][0]["features"] = ["docker", "kubernetes"]
    msg = only_problem(doc)
    assert msg.startswith("vms[0] (vmid 8001, phoenix-docker-01): features[1]:") and "kubernetes" in msg


def test_feature_listed_twice(doc):
    doc["vms"][0]["features"] = ["docker", {"name": "docker"}]
    assert "feature 'docker' is listed more than once" in only_problem(doc)


@pytest.mark.parametrize("name", ["web_01", "-web", "web-", "a" * 64, "web.lab", "1234", "wéb"])
def test_name_must_be_a_hostname(doc, name):
    doc["vms"][0]["name"] = name
    assert any("name:" in p and "not a valid hostname" in p or "name:" in p and "is too long" in p
               for p in problems(doc)), problems(doc)


@pytest.mark.parametrize("key,expected", [
    ("not a key", "unknown SSH key type"),
    ("ssh-ed25519", "not an SSH public key line"),
    ("ssh-ed25519 AAAA%%%% me", "not valid base64"),
    (ED_KEY.replace("ssh-ed25519", "ssh-rsa") + " me", "is a 'ssh-ed25519' key but the line says 'ssh-rsa'"),
    (PRIVATE_KEY_TEXT, "must be a single line"),
    ("-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn", "this is a private key"),
    (ED_KEY + " x\nruncmd: [reboot]", "single line"),
])
def test_ssh_key_must_be_a_public_key_line(doc, key, expected):
    doc["vms"][0]["user"] = {"ssh_authorized_keys": [key]}
    msg = only_problem(doc)
    assert "user.ssh_authorized_keys[0]:" in msg and expected in msg, msg


@pytest.mark.parametrize("package", ["rm -rf /", "Nginx", "htop; reboot", "-y", "a"])
def test_package_name(doc, package):
    doc["vms"][0]["packages"] = ["htop", package]
    assert "packages[1]:" in only_problem(doc) and "is not a package name" in only_problem(doc)


def test_package_with_version_is_fine(doc):
    doc["vms"][0]["packages"] = ["htop=3.2.2-2", "libc6-dev", "g++"]
    build_config(doc)


@pytest.mark.parametrize("user", ["root", "Admin", "a b", "x" * 40])
def test_user_name(doc, user):
    doc["vms"][0]["user"] = {"name": user}
    assert "user.name:" in only_problem(doc)


def test_dns_and_search_domain(doc):
    doc["vms"][0]["network_config"].update({"dns": ["10.0.0.1", "dns.example"], "search_domain": "bad_domain"})
    found = problems(doc)
    assert any("network_config.dns[1]: 'dns.example' is not an IPv4 address" in p for p in found)
    assert any("network_config.search_domain: 'bad_domain' is not a valid DNS domain" in p for p in found)


def test_tags(doc):
    doc["vms"][0]["tags"] = ["ok", "Not OK"]
    assert "tags[1]: 'Not OK' is not a valid Proxmox tag" in only_problem(doc)


def test_unknown_field_and_wrong_type(doc):
    doc["vms"][0]["memory"] = 4096
    doc["vms"][1]["cores"] = "four"
    found = problems(doc)
    assert "vms[0] (vmid 8001, phoenix-docker-01): unknown field(s) ('memory' was unexpected)" in found
    assert "vms[1] (vmid 8002, phoenix-web-01): cores: 'four' is not of type 'integer'" in found


def test_required_fields_missing(doc):
    del doc["defaults"]["node"]
    del doc["defaults"]["user"]
    found = problems(doc)
    for i, vmid in ((0, 8001), (1, 8002)):
        assert any(p.startswith(f"vms[{i}] (vmid {vmid}") and "node: is required" in p for p in found)
        assert any(p.startswith(f"vms[{i}] (vmid {vmid}") and "user.name: is required" in p for p in found)


def test_image_checksum_length(doc):
    doc["images"]["ubuntu-24.04"]["checksum"] = "sha256:abcd"
    assert "images.ubuntu-24.04: checksum: a sha256 digest has 64 hex digits, not 4" in only_problem(doc)


def test_all_problems_at_once(doc):
    doc["vms"][0]["network_config"]["gateway"] = "192.168.1.1"     # vm 0: gateway
    doc["vms"][0]["packages"] = ["bad package"]                      # vm 0: package
    doc["vms"][1]["vmid"] = 8001                                     # vm 1: duplicate vmid
    doc["vms"][1]["name"] = "under_score"                            # vm 1: hostname
    doc["vms"][1]["image"] = "nope"                                  # vm 1: image
    doc["vms"].append({"vmid": "x", "name": "third"})                # vm 2: schema
    doc["zfs"][0]["dataset"] = "pool/../etc"                         # zfs: dataset name
    found = problems(doc)
    expected = [
        "vms[0] (vmid 8001, phoenix-docker-01): network_config.gateway",
        "vms[0] (vmid 8001, phoenix-docker-01): packages[0]",
        "vms[1] (vmid 8001, under_score): vmid",
        "vms[1] (vmid 8001, under_score): name",
        "vms[1] (vmid 8001, under_score): image",
        "vms[2] (third): vmid",
        "zfs[0]: properties.compression",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected), found


def test_unreadable_and_broken_json(tmp_path):
    with pytest.raises(ConfigFileError, match="no such file"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "vms": [\n    {"vmid": 1,}\n  ]\n}\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(broken)
    assert "not valid JSON: line 3, column 16" in str(info.value)
    assert '{"vmid": 1,}' in str(info.value)


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phoenix", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def test_cli_validate_ok():
    result = run_cli("validate", "phoenix_vm_configs.json")
    assert result.returncode == 0, result.stderr
    assert "8001  phoenix-docker-01" in result.stdout and "clone 9000" in result.stdout
    assert "image ubuntu-24.04" in result.stdout and "OK, 2 VM(s)" in result.stdout


def test_cli_validate_problems_exit_1(doc, tmp_path):
    doc["vms"][1]["vmid"] = 8001
    doc["vms"][0]["network_config"]["gateway"] = "10.9.9.9"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and "2 problem(s); nothing was created." == lines[-1]
    assert "Traceback" not in result.stderr


def test_cli_validate_unreadable_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text("{oops")
    for path in (tmp_path / "bad.json", tmp_path / "none.json", tmp_path):
        result = run_cli("validate", str(path))
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
