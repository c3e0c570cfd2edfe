"""The config checker: one test per rule, then all problems at once, then the CLI's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.config import ConfigError, ConfigFileError, build_config, load_config
from phoenix.config.rules import derived_mac
from phoenix.config.sample import sample_document

ROOT = Path(__file__).resolve().parents[1]

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


def test_the_shipped_example_is_refused_until_init_puts_the_users_key_in(tmp_path, example_admin_key):
    """The example carries a key placeholder, not a key: as shipped it must not deploy, and the
    message names the one command that fixes it; that command makes it valid."""
    with pytest.raises(ConfigError) as caught:
        load_config("phoenix_vm_configs.json")
    assert {p.field for p in caught.value.problems} == {"user.ssh_authorized_keys[0]"}
    assert all("phoenix init --admin-key" in str(p) for p in caught.value.problems)
    result = run_cli("validate", "phoenix_vm_configs.json")
    assert result.returncode == 1 and "placeholder" in result.stderr and "Traceback" not in result.stderr
    config_file = tmp_path / "vms.json"
    config_file.write_text((ROOT / "phoenix_vm_configs.json").read_text())
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text(example_admin_key + "\n")
    done = run_cli("init", "--admin-key", str(pub), "--file", str(config_file), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_config(config_file).vm(8001).user.ssh_authorized_keys == (example_admin_key,)
    # everything but the key is as shipped, layout included
    shipped = (ROOT / "phoenix_vm_configs.json").read_text().splitlines()
    assert [line for line in config_file.read_text().splitlines() if line not in shipped] == \
        [f'        "{example_admin_key}"']


def test_example_file_is_valid(example_config_path):
    config = load_config(example_config_path)
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
    assert ("vms[1] (vmid 8002, phoenix-web-01): network_config.mac_address: MAC address 02:50:48:00:1f:41 "
            "(set in network_config.mac_address) is the same as that of vms[0] (vmid 8001, "
            "phoenix-docker-01) (derived from vmid 8001)") in only_problem(doc)


def test_derived_mac_collision_names_the_vmids(doc):
    # the derived MAC keeps the vmid's low 24 bits: 8001 and 8001 + 2**24 collide
    doc["vms"][1]["vmid"] = 8001 + 2**24
    msg = only_problem(doc)
    assert msg.startswith(f"vms[1] (vmid {8001 + 2**24}, phoenix-web-01): vmid: MAC address 02:50:48:00:1f:41 "
                          f"(derived from vmid {8001 + 2**24}) is the same as that of vms[0] (vmid 8001, "
                          "phoenix-docker-01) (derived from vmid 8001)"), msg
    assert "set network_config.mac_address on one of them" in msg and "mac_address:" not in msg


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
    assert any("name:" in p and "not a valid hostname" in p or "name: must be at most 63 characters" in p
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
    assert "vms[0] (vmid 8001, phoenix-docker-01): memory: is not a known field (did you mean 'memory_mb'?)" in found
    assert "vms[1] (vmid 8002, phoenix-web-01): cores: must be a whole number, not the string \"four\"" in found


def test_required_fields_missing(doc):
    del doc["defaults"]["node"]
    del doc["defaults"]["user"]
    found = problems(doc)
    for i, vmid in ((0, 8001), (1, 8002)):
        assert any(p.startswith(f"vms[{i}] (vmid {vmid}") and "node: is required" in p for p in found)
        assert any(p.startswith(f"vms[{i}] (vmid {vmid}") and "user.name: is required" in p for p in found)


@pytest.mark.parametrize("change,expected", [
    # one per kind of schema error: the user's words, never Python's (None, 'object', regexes)
    (lambda d: d["vms"][0].update(network_config=None),
     "vms[0] (vmid 8001, phoenix-docker-01): network_config: must be an object ({...}), not null"),
    (lambda d: d["vms"][0].update(tags="web"),
     "vms[0] (vmid 8001, phoenix-docker-01): tags: must be a list ([...]), not the string \"web\""),
    (lambda d: d["vms"][0].update(on_boot="yes"),
     "vms[0] (vmid 8001, phoenix-docker-01): on_boot: must be true or false, not the string \"yes\""),
    (lambda d: d["vms"][0].update(cores=0), "cores: must be at least 1, not the number 0"),
    (lambda d: d["vms"][0].update(cores=1000), "cores: must be at most 512, not the number 1000"),
    (lambda d: d["vms"][0].update(name=""), "name: must not be empty"),
    (lambda d: d["vms"][0].update(storage="1bad"), 'storage: "1bad" is not a Proxmox storage id'),
    (lambda d: d["vms"][0].update(disk_interface="ide0"),
     'disk_interface: "ide0" is not a disk interface such as scsi0, virtio0 or sata0'),
    (lambda d: d["vms"][0].update(features=[5]),
     'features[0]: expected a feature name or {"name": ..., "params": {...}}'),
    (lambda d: d["vms"][0].update(features=[{"name": "docker", "parms": {}}]),
     "features[0].parms: is not a known field (did you mean 'params'?)"),
    (lambda d: d["vms"][0].update(features=[{"name": "docker", "params": {"user": 1.5}}]),
     "features[0]: feature 'docker' parameter 'user': must be a string, not a number with a decimal point"),
    (lambda d: d["zfs"][0].update(properties={}), "zfs[0]: properties: must have at least 1 entry"),
    (lambda d: d["images"]["ubuntu-24.04"].pop("url"), "images.ubuntu-24.04: url: is required"),
    (lambda d: d["images"]["ubuntu-24.04"].update(checksum="crc:00"),
     'checksum: "crc:00" is not ALGORITHM:HEXDIGEST'),
    (lambda d: d.pop("vms"), "vms: is required"),
])
def test_schema_errors_in_plain_words(doc, change, expected):
    change(doc)
    found = problems(doc)
    assert any(expected in p for p in found), found
    assert not any("is not of type" in p or "does not match" in p or "None" in p for p in found), found


@pytest.mark.parametrize("field,path", [
    ("vmid", ("vms", 0)), ("cores", ("vms", 0)), ("clone_from", ("vms", 0)), ("memory_mb", ("defaults",)),
    ("vlan", ("vms", 0, "network_config")), ("timeout_s", ("vms", 0, "guest_agent")),
])
def test_whole_number_written_as_float_is_rejected_everywhere(doc, field, path):
    target = doc
    for part in path:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[field] = {"vmid": 8001.0, "clone_from": 9000.0, "memory_mb": 2048.0}.get(field, 20.0)
    msg = only_problem(doc)
    # clone_from also takes a template name: "a whole number or a string"
    assert f"{field}: must be a whole number" in msg and "(a number with a decimal point): write" in msg


def test_float_vmid_in_a_file_is_a_message_not_a_traceback(doc, tmp_path):
    text = json.dumps(doc).replace('"vmid": 8001', '"vmid": 8001.0', 1)
    (tmp_path / "c.json").write_text(text)
    result = run_cli("validate", str(tmp_path / "c.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "vms[0] (phoenix-docker-01): vmid: must be a whole number, not 8001.0" in result.stderr


def test_duplicate_keys_at_any_depth_are_rejected(doc, tmp_path):
    text = json.dumps(doc)
    # a key repeated inside a VM and inside a nested object ...
    text = text.replace('"vmid": 8001,', '"vmid": 8001, "cores": 2,', 1)
    text = text.replace('"ip": "10.0.0.101/24"', '"ip": "10.0.0.101/24", "ip": "10.0.0.9/24"', 1)
    # ... and a "vms" array before the real one (JSON keeps the last: this VM would be destroyed)
    text = '{"vms": [' + json.dumps(doc["vms"][1]) + "], " + text[1:]
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = [str(p) for p in info.value.problems]
    assert "vms: the key 'vms' appears 2 times in the same object; JSON keeps only the last one" in found[0]
    assert any(p.startswith("vms[0] (vmid 8001, phoenix-docker-01): cores: the key 'cores' appears 2 times")
               for p in found), found
    assert any(": network_config.ip: the key 'ip' appears 2 times" in p for p in found), found


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_rejected(doc, tmp_path, literal):
    text = json.dumps(doc).replace('"cores": 4', f'"cores": {literal}', 1)
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = [str(p) for p in info.value.problems]
    assert found == [f"vms[0] (vmid 8001, phoenix-docker-01): cores: {literal} is not a number JSON allows "
                     "(no NaN, Infinity or numbers beyond 1.8e308)"], found


def test_zfs_resource_name_collision_and_property_set_twice(doc):
    doc["zfs"] = [
        {"node": "pve", "dataset": "tank/vm-a", "properties": {"compression": "lz4"}},
        {"node": "pve", "dataset": "tank-vm/a", "properties": {"compression": "zstd"}},
        {"node": "pve", "dataset": "tank/vm-a", "properties": {"atime": "off", "compression": "off"}},
    ]
    found = problems(doc)
    assert found == [
        "zfs[1]: properties.compression: compression of tank-vm/a on node pve and zfs[0] (compression of "
        "tank/vm-a on node pve) get the same resource name 'zfs-pve-tank-vm-a-compression' ('/' becomes '-'): "
        "Pulumi cannot manage both",
        "zfs[2]: properties.compression: compression of tank/vm-a on node pve is already set by zfs[0]: "
        "set each property of a dataset once",
    ], found


def test_zfs_resource_name_is_the_one_the_stack_registers():
    import inspect

    from phoenix.resources import stack
    from phoenix.zfs import zfs_resource_name

    assert zfs_resource_name("pve", "tank/vm-a", "compression") == "zfs-pve-tank-vm-a-compression"
    assert "zfs_resource_name(entry.node, entry.dataset, prop)" in inspect.getsource(stack.build_stack)


@pytest.mark.parametrize("ip", ["dhcp", "DHCP", "auto", "fd00::5/64", ""])
def test_ip_must_be_static_ipv4(doc, ip):
    doc["vms"][0]["network_config"]["ip"] = ip
    msg = only_problem(doc)
    assert "network_config.ip:" in msg and "every VM gets a static IPv4 address with prefix" in msg
    assert "DHCP and IPv6 are not supported" in msg


def test_ipv6_gateway_says_ipv6_is_not_supported(doc):
    doc["vms"][0]["network_config"]["gateway"] = "fd00::1"
    assert "'fd00::1' is not an IPv4 address (IPv6 is not supported)" in only_problem(doc)


@pytest.mark.parametrize("tz,hint", [("Europe/Berln", "did you mean 'Europe/Berlin'?"),
                                     ("Mars/Olympus", "is not a timezone of the IANA database"),
                                     ("../../etc/passwd", "is not a timezone")])
def test_unknown_timezone_is_rejected(doc, tz, hint):
    doc["vms"][0]["timezone"] = tz
    msg = only_problem(doc)
    assert msg.startswith("vms[0] (vmid 8001, phoenix-docker-01): timezone:") and hint in msg


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_known_timezones_are_accepted(doc, tz):
    doc["vms"][0]["timezone"] = tz
    assert build_config(doc).vm(8001).timezone == tz


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
        "vms[2] (third): network_config.ip",  # its other fields are checked too
        "zfs[0]: properties.compression",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected), found


def test_a_vm_with_schema_problems_still_gets_its_other_fields_checked(doc):
    doc["vms"][0].update(vmid=8001.0, cores="four", timezone="Mars/Base")
    doc["vms"][0]["network_config"].update(ip="dhcp", vlan=None)
    doc["vms"][1].update(tags="web", image=5)
    found = problems(doc)
    assert found == [
        "vms[0] (phoenix-docker-01): cores: must be a whole number, not the string \"four\"",
        "vms[0] (phoenix-docker-01): network_config.vlan: must be a whole number, not null",
        "vms[0] (phoenix-docker-01): vmid: must be a whole number, not 8001.0 (a number with a decimal point): "
        "write 8001",
        "vms[1] (vmid 8002, phoenix-web-01): image: must be a string (text in double quotes), not the number 5",
        "vms[1] (vmid 8002, phoenix-web-01): tags: must be a list ([...]), not the string \"web\"",
        "vms[0] (phoenix-docker-01): timezone: 'Mars/Base' is not a timezone of the IANA database "
        "(e.g. UTC or Europe/Berlin)",
        "vms[0] (phoenix-docker-01): network_config.ip: 'dhcp': every VM gets a static IPv4 address with prefix, "
        "e.g. 10.0.0.50/24 (DHCP and IPv6 are not supported: the address is written into the VM's "
        "network-config and is how Pulumi reaches it)",
    ], found


def test_unreadable_and_broken_json(tmp_path):
    with pytest.raises(ConfigFileError, match="no such file"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "vms": [\n    {"vmid": 1,}\n  ]\n}\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(broken)
    assert "not valid JSON: line 3, column 16: a comma before a closing } or ] (JSON allows no trailing comma)" \
        in str(info.value)
    assert '{"vmid": 1,}' in str(info.value)
    for text, hint in (("{'vms': []}", "expected a key in double quotes"),
                       ('{"vms": [] "x": 1}', "a comma is missing"),
                       ('{"vms": []} {}', "more text after the end"),
                       ('{"vms": [], "defaults": {"timezone": "a\tb"}}', "a line break or tab inside a string")):
        broken.write_text(text)
        with pytest.raises(ConfigFileError, match=hint):
            load_config(broken)


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phoenix", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def test_cli_validate_ok(example_config_path):
    result = run_cli("validate", str(example_config_path))
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
    assert len(lines) == 3 and f"error: 2 problem(s) in {path}; nothing was created." == lines[-1]
    assert all(line.startswith(f"error: {path}: vms[") for line in lines[:-1])
    assert "Traceback" not in result.stderr


def test_cli_validate_unreadable_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text("{oops")
    for path in (tmp_path / "bad.json", tmp_path / "none.json", tmp_path):
        result = run_cli("validate", str(path))
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


AK_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINE+UEg8YNDlya0Dx3jsOlscJwK+HjcL5Gj7S0KwlVoN"


def test_authorized_keys_takes_a_json_list_or_one_string_alike(doc):
    """docs/ssh.md writes `keys` as a list; the one-string form keeps working, and both give the
    script the same lines (so switching forms changes nothing on the VM)."""
    lines = [f"{AK_KEY} a", f'from="10.0.0.0/8",no-pty {AK_KEY} b']
    doc["vms"][0]["features"] = [{"name": "authorized-keys", "params": {"keys": lines}}]
    as_list = build_config(doc).vm(8001).features[0]
    doc["vms"][0]["features"] = [{"name": "authorized-keys", "params": {"keys": "\n".join(lines)}}]
    assert build_config(doc).vm(8001).features[0] == as_list
    assert as_list.params == {"keys": "\n".join(lines)}


@pytest.mark.parametrize("keys, expected", [
    ({"a": 1}, "parameter 'keys': must be a string or a list of strings, not an object"),
    ([AK_KEY, 7], "parameter 'keys': every list item must be a string, not int"),
    (None, "parameter 'keys': must be a string or a list of strings, not null"),
    ([f"{AK_KEY[:40]} cut"], "parameter 'keys': line 1: the ssh-ed25519 key data is cut short"),
])
def test_a_bad_keys_value_does_not_hide_the_entrys_other_problems(doc, keys, expected):
    doc["vms"][0]["features"] = [{"name": "authorized-keys",
                                  "params": {"keys": keys, "user": "Bad User", "colour": "blue"}}]
    found = problems(doc)
    assert len(found) == 3, found
    assert any(expected in p for p in found), found
    assert any("unknown parameter 'colour'" in p for p in found)
    assert any("parameter 'user': 'Bad User' does not match" in p for p in found)
    assert all(p.startswith("vms[0] (vmid 8001, phoenix-docker-01): features[0]: ") for p in found)
    assert not any("missing required parameter" in p for p in found)


def test_a_list_where_one_string_belongs_is_named(doc):
    doc["vms"][0]["features"] = [{"name": "docker", "params": {"user": ["a", "b"]}}]
    assert only_problem(doc).endswith("feature 'docker' parameter 'user': must be a string, not a list")


def test_an_image_without_checksum_is_refused_naming_both_choices(doc):
    del doc["images"]["ubuntu-24.04"]["checksum"]
    message = only_problem(doc)
    assert message.startswith("images.ubuntu-24.04: checksum: is required: \"sha256:<digest>\"")
    assert '"unverified" to download it without verification' in message


def test_an_unverified_image_is_valid_and_validate_says_so_every_time(doc, tmp_path):
    doc["images"]["ubuntu-24.04"]["checksum"] = "unverified"
    image = build_config(doc).images["ubuntu-24.04"]
    assert (image.checksum_algorithm, image.checksum) == (None, None)  # nothing for PVE to check
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    result = run_cli("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        'warning: images.ubuntu-24.04: "checksum": "unverified": the node downloads '
        "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img without verifying "
        "it (give sha256:<digest> from its SHA256SUMS)"]
    doc["images"]["ubuntu-24.04"]["checksum"] = "sha256:" + "ab" * 32
    path.write_text(json.dumps(doc))
    verified = run_cli("validate", str(path))
    assert verified.returncode == 0 and verified.stderr == ""


# --- edits policy (contract C2) -----------------------------------------------------------

@pytest.mark.parametrize("given, policy", [
    ({}, "in-place"),
    ({"edits": "seed-only"}, "seed-only"),
    ({"edits": "rebuild"}, "rebuild"),
    ({"recreate_on_cloud_init_change": True}, "rebuild"),  # the old spelling
    ({"recreate_on_cloud_init_change": False}, "in-place"),
    ({"edits": "rebuild", "recreate_on_cloud_init_change": True}, "rebuild"),
    ({"edits": "in-place", "recreate_on_cloud_init_change": False}, "in-place"),
])
def test_edits_policy_and_its_old_spelling(doc, given, policy):
    doc["vms"][0].update(given)
    vm = build_config(doc).vms[0]
    assert vm.edits == policy
    assert vm.recreate_on_cloud_init_change is (policy == "rebuild")
    assert vm.converges_in_place is (policy == "in-place")


def test_edits_from_defaults_and_without_sudo(doc):
    doc["defaults"]["edits"] = "seed-only"
    doc["vms"][1]["edits"] = "in-place"
    doc["vms"][1]["user"] = {**doc["vms"][1].get("user", {}), "sudo": False}
    config = build_config(doc)
    assert config.vms[0].edits == "seed-only"
    # in-place needs the admin user's sudo: without it edits wait for a rebuild, as seed-only
    assert config.vms[1].edits == "in-place" and not config.vms[1].converges_in_place


@pytest.mark.parametrize("given", [
    {"edits": "in-place", "recreate_on_cloud_init_change": True},
    {"edits": "seed-only", "recreate_on_cloud_init_change": True},
    {"edits": "rebuild", "recreate_on_cloud_init_change": False},
])
def test_edits_contradicting_its_old_spelling_is_an_error(doc, given):
    doc["vms"][0].update(given)
    doc["vms"][1]["edits"] = "sometimes"
    found = sorted(problems(doc))  # all problems at once
    assert len(found) == 2, found
    assert found[0].startswith("vms[0] (vmid 8001, phoenix-docker-01): edits: ")
    assert "contradicts \"recreate_on_cloud_init_change\"" in found[0] and "keep only" in found[0]
    assert found[1] == ('vms[1] (vmid 8002, phoenix-web-01): edits: must be one of "in-place", '
                        '"seed-only", "rebuild", not the string "sometimes"')


def test_a_vms_own_spelling_wins_over_the_other_in_defaults(doc):
    doc["defaults"]["edits"] = "seed-only"
    doc["vms"][0]["recreate_on_cloud_init_change"] = True
    doc["vms"][1]["edits"] = "in-place"
    doc["defaults"]["recreate_on_cloud_init_change"] = False
    config = build_config(doc)
    assert [vm.edits for vm in config.vms] == ["rebuild", "in-place"]


def test_converge_is_not_a_feature_to_list(doc):
    doc["vms"][0]["features"] = ["docker", "converge"]
    message = only_problem(doc)
    assert "features[1]" in message and "Phoenix's own in-place step" in message
