"""Data disks against fakepve, with PVE's owner rule put back into the fake: a rebuild (the
VM's destroy) keeps the holder's volumes; `phoenix data delete` deletes them only when asked
twice and nothing attaches them; `phoenix data list` shows retained holders.

fakepve 0.5's `qm destroy` frees every drive the VM references (fakepve/qemu.py `_qm_destroy`).
qemu-server frees only volumes the destroyed VM owns: src/PVE/QemuServer.pm `destroy_vm`
(line 1884 at e6352be6): `return if !$path || !$owner || ($owner != $vmid);`. The `owner_rule`
fixture makes the fake do that, or these tests would prove the wrong thing.
"""

from __future__ import annotations

import json
import time

import pytest
from test_doctor import cluster, sshd, stack  # noqa: F401 (fixtures)

from phoenix.cli import main
from phoenix.doctor.api import ClusterApi
from phoenix.readiness.pve import PveCredentials

HOLDER, VM = 108001, 8001
HOLDER_VOLUME, VM_VOLUME = "vm-108001-disk-0", "vm-8001-disk-0"


@pytest.fixture
def owner_rule(cluster, monkeypatch):  # noqa: F811
    """qemu-server's destroy_vm: a volume is freed only by the VM that owns it."""
    pve, _ = cluster
    original = pve._qm_free

    def free_if_owned(volid):
        vol = pve._qm_volume(volid)
        destroying = {vm.vmid for vm in pve.vms if vm.lock == "destroyed"}
        if vol is not None and destroying and vol.get("vmid") not in destroying:
            return  # owned by another VM: qemu-server skips it
        original(volid)

    monkeypatch.setattr(pve, "_qm_free", free_if_owned)
    return pve


def _volume(pve, name: str, owner: int) -> None:
    pve.storages["local-zfs"].setdefault("volumes", {})[name] = {
        "content": "images", "format": "raw", "size": 1 << 30, "vmid": owner, "ctime": 0}


def _deployed(pve) -> None:
    """What `pulumi up` leaves: the holder (stopped, tagged) owning the data volume, and the VM
    attaching it by path beside its own disk."""
    _volume(pve, HOLDER_VOLUME, HOLDER)
    _volume(pve, VM_VOLUME, VM)
    pve.add_vm(HOLDER, "phoenix-docker-01-data", node="pve", status="stopped", config={
        "tags": "phoenix;phoenix-data", "scsi0": f"local-zfs:{HOLDER_VOLUME},size=1G"})
    pve.add_vm(VM, "phoenix-docker-01", node="pve", status="stopped", config={
        "scsi0": f"local-zfs:{VM_VOLUME},size=1G",
        "scsi1": f"local-zfs:{HOLDER_VOLUME},serial=phx-docker,size=1G"})


def _api(pve, token) -> ClusterApi:
    return ClusterApi(PveCredentials(pve.url + "/", token, verify=True))


def _destroy(api: ClusterApi, vmid: int) -> None:
    upid = api.delete(f"nodes/pve/qemu/{vmid}")
    for _ in range(100):
        if (api.get(f"nodes/pve/tasks/{upid}/status") or {}).get("status") == "stopped":
            return
        time.sleep(0.05)
    raise AssertionError("destroy task did not finish")


def _volumes(pve) -> set[str]:
    return set(pve.storages["local-zfs"].get("volumes", {}))


def test_the_fake_needs_the_owner_rule(cluster):  # noqa: F811
    """Without the fixture the fake frees the holder's volume with the VM: unlike PVE."""
    pve, token = cluster
    _deployed(pve)
    _destroy(_api(pve, token), VM)
    assert HOLDER_VOLUME not in _volumes(pve)


def test_a_rebuild_destroys_the_vm_and_keeps_the_holders_volume(owner_rule, cluster):  # noqa: F811
    pve, token = cluster
    _deployed(pve)
    _destroy(_api(pve, token), VM)  # the delete-first half of a rebuild, `pulumi destroy` alike
    assert VM_VOLUME not in _volumes(pve) and HOLDER_VOLUME in _volumes(pve)
    assert pve.vm(HOLDER) is not None


@pytest.fixture
def data_cli(cluster, sshd, tmp_path, monkeypatch, doc, owner_rule):  # noqa: F811
    pve, token = cluster
    _deployed(pve)

    def run(*args: str, data_disks: bool = False) -> int:
        document = json.loads(json.dumps(doc))
        if data_disks:
            document["vms"][0]["data_disks"] = [{"name": "docker", "size_gb": 1, "mount": "/var/lib/docker"}]
        else:
            document["vms"].pop(0)  # the VM was removed from the file
        path = tmp_path / "vms.json"
        path.write_text(json.dumps(document))
        stack(tmp_path, monkeypatch, pve, token, sshd, path)
        return main(["data", *args])

    return pve, token, run


def test_delete_is_refused_while_anything_could_need_the_data(data_cli, capsys):
    pve, token, run = data_cli
    # the holder's vmid must be typed again
    assert run("delete", "8001", "--confirm", "8001") == 2
    assert "--confirm 8001 is not the holder of VM 8001's data (108001): nothing deleted" in capsys.readouterr().err
    # the VM still has data_disks in the file
    assert run("delete", "8001", "--confirm", "108001", data_disks=True) == 1
    assert "is still in" in capsys.readouterr().err
    # a VM still attaches the volume
    assert run("delete", "8001", "--confirm", "108001") == 1
    err = capsys.readouterr().err
    assert f"VM 8001 (phoenix-docker-01) attaches local-zfs:{HOLDER_VOLUME}" in err and "nothing deleted" in err
    # a running holder
    _destroy(_api(pve, token), VM)
    pve.vm(HOLDER).status = "running"
    assert run("delete", "8001", "--confirm", "108001") == 1
    assert "holder 108001 is running" in capsys.readouterr().err
    # not a holder this program made
    pve.vm(HOLDER).status = "stopped"
    pve.vm(HOLDER).config["tags"] = "db"
    assert run("delete", "8001", "--confirm", "108001") == 1
    assert "is not a data holder made by Phoenix" in capsys.readouterr().err
    assert HOLDER_VOLUME in _volumes(pve) and pve.vm(HOLDER) is not None


def test_delete_on_purpose_frees_the_holder_and_its_volumes(data_cli, capsys):
    pve, token, run = data_cli
    _destroy(_api(pve, token), VM)  # the VM is gone (removed from the file, `pulumi up`)
    assert run("list") == 0
    out = capsys.readouterr().out
    assert "108001" in out and "no (retained)" in out and f"local-zfs:{HOLDER_VOLUME}" in out
    assert run("delete", "8001", "--confirm", "108001") == 0
    assert f"deleted holder 108001 on pve and its volumes: local-zfs:{HOLDER_VOLUME}" in capsys.readouterr().out
    assert pve.vm(HOLDER) is None and HOLDER_VOLUME not in _volumes(pve)


def test_list_shows_holders_in_the_config(data_cli, capsys):
    _, _, run = data_cli
    assert run("list", data_disks=True) == 0
    out = capsys.readouterr().out
    assert "yes (VM 8001)" in out and "stopped" in out
