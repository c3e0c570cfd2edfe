"""`phoenix doctor` for data disks, against fakepve (tests/test_doctor.py's cluster and stand-in
stack): data storages take disk images, the holder vmid is free or this stack's holder, a holder
never runs, and a node change with local data is refused with the way to do it."""

from __future__ import annotations

import json

import pytest
from test_doctor import cluster, doctor, sshd, stack  # noqa: F401 (fixtures)

from phoenix.config import build_config
from phoenix.doctor.privileges import required

DISKS = [{"name": "docker", "size_gb": 100, "mount": "/var/lib/docker"},
         {"name": "backups", "size_gb": 500, "mount": "/srv/backups", "storage": "tank"}]


@pytest.fixture
def data_file(tmp_path, doc):
    doc["vms"][0]["data_disks"] = DISKS
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    return path


def _tank(pve, content="images", shared=0):
    pve.storages["tank"] = {"type": "zfspool", "active": 1, "content": content, "files": set(),
                            "pool": "tank/data", "shared": shared}


def test_a_cluster_ready_for_data_disks_passes(cluster, sshd, tmp_path, monkeypatch, data_file, capsys):  # noqa: F811
    pve, token = cluster
    _tank(pve)
    stack(tmp_path, monkeypatch, pve, token, sshd, data_file)
    code, problems, text = doctor(capsys)
    assert (code, problems) == (0, []), text
    assert "data holders" in text


def test_data_storage_missing_or_without_images(cluster, sshd, tmp_path, monkeypatch, data_file, capsys):  # noqa: F811
    pve, token = cluster
    _tank(pve, content="iso,backup")
    stack(tmp_path, monkeypatch, pve, token, sshd, data_file)
    code, problems, _ = doctor(capsys)
    assert code == 1
    assert ("storage tank: does not allow content 'images', needed for data disk 'backups' of VM 8001 "
            "(data_disks[1].storage) -> fix: pvesm set tank --content backup,images,iso") in problems, problems


def test_holder_vmid_taken_by_something_else(cluster, sshd, tmp_path, monkeypatch, data_file, capsys):  # noqa: F811
    pve, token = cluster
    _tank(pve)
    pve.add_vm(108001, "someones-db", node="pve", status="running")
    stack(tmp_path, monkeypatch, pve, token, sshd, data_file)
    code, problems, _ = doctor(capsys)
    assert code == 1
    (problem,) = [p for p in problems if p.startswith("data holder")]
    assert problem.startswith("data holder 108001 of VM 8001: vmid 108001 is taken by qemu 'someones-db' on pve, "
                              "which is not this VM's data holder -> fix: set data_vmid of VM 8001")


def test_the_stacks_own_holder_is_fine_but_must_not_run(cluster, sshd, tmp_path, monkeypatch, data_file,  # noqa: F811
                                                         capsys):
    pve, token = cluster
    _tank(pve)
    holder = pve.add_vm(108001, "phoenix-docker-01-data", node="pve", status="stopped",
                        config={"tags": "phoenix;phoenix-data"})
    stack(tmp_path, monkeypatch, pve, token, sshd, data_file)
    assert doctor(capsys)[:2] == (0, [])
    holder.status = "running"
    code, problems, _ = doctor(capsys)
    assert code == 1 and problems == [
        "data holder 108001 of VM 8001: is running: a holder must never run (its disks are the VM's) "
        "-> fix: qm stop 108001; do not start it again"]


def test_node_change_with_local_data_is_refused_with_the_way_to_do_it(cluster, sshd, tmp_path, monkeypatch,  # noqa: F811
                                                                       doc, capsys):
    pve, token = cluster
    _tank(pve, shared=0)
    pve.add_node("pve2")
    pve.add_vm(108001, "phoenix-docker-01-data", node="pve2", status="stopped",
               config={"tags": "phoenix;phoenix-data"})
    doc["vms"][0]["data_disks"] = DISKS
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    stack(tmp_path, monkeypatch, pve, token, sshd, path)
    code, problems, _ = doctor(capsys)
    (problem,) = [p for p in problems if p.startswith("data holder")]
    assert "is on pve2, VM 8001 is to be on pve" in problem and "local storage local-zfs, tank" in problem
    assert "qm migrate 108001 pve" in problem and "owned by another vmid" in problem
    # on shared storage the VM migrates and the holder need not move: no finding
    pve.storages["local-zfs"]["shared"] = 1
    pve.storages["tank"]["shared"] = 1
    code, problems, _ = doctor(capsys)
    assert not [p for p in problems if p.startswith("data holder")], problems


def test_privileges_for_the_holder_and_the_data_storages(doc):
    doc["vms"][0]["data_disks"] = DISKS
    needs = required(build_config(doc), 9)
    assert {"VM.Allocate", "VM.Config.Disk", "VM.Audit"} <= set(needs["/vms/108001"])
    assert set(needs["/storage/tank"]) == {"Datastore.AllocateSpace", "Datastore.Audit"}
