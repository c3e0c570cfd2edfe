"""`data_disks` in the config: the model, the holder vmid rule, and every bad input reported at
once with the VM and the field, before anything is created (docs/data.md)."""

from __future__ import annotations

import pytest

from phoenix.config import ConfigError, build_config

DOCKER = {"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"}
BACKUPS = {"name": "backups", "size_gb": 500, "mount": "/srv/backups", "storage": "tank", "filesystem": "xfs"}


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(doc)
    return [str(p) for p in info.value.problems]


def test_the_issue_s_example_builds_the_model(doc):
    doc["vms"][0]["data_disks"] = [DOCKER, BACKUPS]
    vm = build_config(doc).vm(8001)
    docker, backups = vm.data_disks
    # storage defaults to the VM's storage; filesystem to ext4
    assert (docker.name, docker.size_gb, docker.mount, docker.storage, docker.filesystem) == \
        ("docker", 100, "/var/lib/docker", "local-zfs", "ext4")
    assert (backups.storage, backups.filesystem, backups.serial) == ("tank", "xfs", "phx-backups")
    assert vm.data_vmid == 108001  # vmid + 100000
    assert build_config(doc).vm(8002).data_vmid is None  # no data disks, no holder


def test_data_vmid_overrides_the_derived_holder_vmid(doc):
    doc["vms"][0].update(data_disks=[DOCKER], data_vmid=7001)
    assert build_config(doc).vm(8001).data_vmid == 7001


BAD_DISKS = [
    ({"name": "Docker_1", "size_gb": 1, "mount": "/srv/a"}, "data_disks[0].name",
     "'Docker_1' is not a data disk name"),
    ({"name": "a-very-long-disk-name", "size_gb": 1, "mount": "/srv/a"}, "data_disks[0].name", "1-16 of a-z"),
    ({"name": "d", "size_gb": 0, "mount": "/srv/a"}, "data_disks[0].size_gb", "0 is not a size"),
    ({"name": "d", "size_gb": -5, "mount": "/srv/a"}, "data_disks[0].size_gb", "-5 is not a size"),
    ({"name": "d", "size_gb": 1, "mount": "srv/a"}, "data_disks[0].mount", "not an absolute path"),
    ({"name": "d", "size_gb": 1, "mount": "/"}, "data_disks[0].mount", "would hide the system"),
    ({"name": "d", "size_gb": 1, "mount": "/var"}, "data_disks[0].mount", "would hide the system"),
    ({"name": "d", "size_gb": 1, "mount": "/home"}, "data_disks[0].mount", "would hide the system"),
    ({"name": "d", "size_gb": 1, "mount": "/usr/local"}, "data_disks[0].mount", "inside /usr"),
    ({"name": "d", "size_gb": 1, "mount": "/etc"}, "data_disks[0].mount", "inside /etc"),
    ({"name": "d", "size_gb": 1, "mount": "/boot/efi"}, "data_disks[0].mount", "inside /boot"),
    ({"name": "d", "size_gb": 1, "mount": "/srv/../etc"}, "data_disks[0].mount", "not a plain path"),
    ({"name": "d", "size_gb": 1, "mount": "/srv/my data"}, "data_disks[0].mount", "no spaces"),
    ({"name": "d", "size_gb": 1, "mount": "/srv/x\ny"}, "data_disks[0].mount", "no spaces"),
    ({"name": "d", "size_gb": 1, "mount": "/srv/a", "filesystem": "btrfs"}, "data_disks[0].filesystem",
     "'btrfs' is not one of ext4, xfs"),
]


@pytest.mark.parametrize(("disk", "field", "message"), BAD_DISKS, ids=[b[2][:30] for b in BAD_DISKS])
def test_bad_data_disk_names_the_vm_and_the_field(doc, disk, field, message):
    doc["vms"][0]["data_disks"] = [disk]
    found = problems(doc)
    assert len(found) == 1, found
    assert found[0].startswith(f"vms[0] (vmid 8001, phoenix-docker-01): {field}: "), found
    assert message in found[0]


def test_duplicate_names_and_mounts_and_nesting(doc):
    doc["vms"][0]["data_disks"] = [
        {"name": "a", "size_gb": 1, "mount": "/srv/a"},
        {"name": "a", "size_gb": 1, "mount": "/srv/b"},
        {"name": "c", "size_gb": 1, "mount": "/srv/a"},
        {"name": "d", "size_gb": 1, "mount": "/srv/b/inner"},
    ]
    found = problems(doc)
    assert any("data_disks[1].name: 'a' is already the name of data_disks[0]" in p for p in found)
    assert any("data_disks[2].mount: '/srv/a' is already the mount of data_disks[0]" in p for p in found)
    assert any("data_disks[3].mount" in p and "nested" in p for p in found)
    assert len(found) == 3, found


def test_wrong_types_are_schema_problems_and_the_rest_is_still_checked(doc):
    doc["vms"][0]["data_disks"] = [{"name": "d", "size_gb": "big", "mount": "/srv/a"}]
    doc["vms"][0]["name"] = "bad_name"
    found = problems(doc)
    assert any("data_disks[0].size_gb" in p for p in found), found
    assert any(": name: " in p and "hostname" in p for p in found), found


def test_holder_vmid_collisions_all_at_once(doc):
    doc["vms"][0]["data_disks"] = [DOCKER]
    doc["vms"][1]["vmid"] = 108001  # the derived holder vmid of vms[0]
    doc["vms"][1]["data_disks"] = [{"name": "x", "size_gb": 1, "mount": "/srv/x"}]
    doc["vms"][1]["data_vmid"] = 9000  # the template vms[0] clones
    found = problems(doc)
    assert any(p.startswith("vms[0] (vmid 8001, phoenix-docker-01): vmid: the holder of the data disks gets "
                            "vmid 108001 (vmid + 100000), which is already used by vms[1] (vmid 108001, "
                            "phoenix-web-01): set data_vmid") for p in found), found
    assert any(p.startswith("vms[1] (vmid 108001, phoenix-web-01): data_vmid: ") and "9000" in p
               and "template" in p for p in found), found


def test_two_vms_cannot_share_a_holder(doc):
    doc["vms"][0].update(data_disks=[DOCKER], data_vmid=7001)
    doc["vms"][1].update(data_disks=[DOCKER], data_vmid=7001)
    found = problems(doc)
    assert len(found) == 1 and "vms[1]" in found[0] and "already holds the data disks of vms[0]" in found[0]


def test_holder_vmid_out_of_range(doc):
    doc["vms"][0].update(vmid=999950000, data_disks=[DOCKER])
    found = problems(doc)
    assert any("above PVE's 999999999: set data_vmid" in p for p in found), found


def test_every_problem_at_once(doc):
    doc["vms"][0]["data_disks"] = [{"name": "X", "size_gb": 0, "mount": "/etc/x", "filesystem": "zfs"}]
    doc["vms"][1]["data_disks"] = [{"name": "ok", "size_gb": 1, "mount": "relative"}]
    found = problems(doc)
    fields = sorted(p.split(": ")[1] for p in found)
    assert fields == ["data_disks[0].filesystem", "data_disks[0].mount", "data_disks[0].mount",
                      "data_disks[0].name", "data_disks[0].size_gb"], found
