"""`python -m phoenix doctor` against fakepve (a real HTTP server speaking the PVE API, with API
tokens and ACLs) and a real sshd (tests/ssh_fixtures.py). The stack config comes from the
STAND-IN Pulumi CLI (tests/standin_pulumi/pulumi).

The cluster: tests/fakepve_cluster.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakepve import shapes
from fakepve_cluster import bridges, ready_cluster
from pulumi_standin import StandinPulumi
from readiness_fixtures import TOKEN_ID
from ssh_fixtures import TEST_USER, running_sshd

from phoenix.cli import main
from phoenix.doctor.privileges import held

STANDIN_ZFS = Path(__file__).with_name("ssh_standin_zfs.py")


@pytest.fixture(scope="module")
def sshd():
    """The node: sshd, with the zfs stand-in (tests/ssh_standin_zfs.py) holding the example's
    dataset."""
    for server in running_sshd([TEST_USER]):
        zfs = server.standin_bin / "zfs"
        shutil.copy(STANDIN_ZFS, zfs)
        zfs.chmod(0o755)
        state = server.standin_bin / "zfs-state.json"
        state.write_text(json.dumps({"quickOS": {}, "quickOS/vm-disks": {}}))
        state.chmod(0o666)
        yield server


@pytest.fixture
def cluster(fakepve, fakepve_cafile, monkeypatch):
    return fakepve, ready_cluster(fakepve, monkeypatch, fakepve_cafile)


@pytest.fixture
def vm_file(tmp_path, doc) -> Path:
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    return path


def stack(tmp_path, monkeypatch, pve, token, sshd, vm_file, **overrides) -> StandinPulumi:
    config = {
        "proxmoxve:endpoint": pve.url + "/",
        "proxmoxve:apiToken": token,
        "phoenix-hypervisor:vmConfigFile": str(vm_file),
        "phoenix-hypervisor:sshPrivateKey": sshd.client_key,
        "phoenix-hypervisor:sshUsername": TEST_USER,
        "phoenix-hypervisor:nodes": {"pve": {"address": "127.0.0.1", "port": sshd.port,
                                             "hostKeys": [sshd.host_key_line]}},
    }
    config.update(overrides)
    pulumi = StandinPulumi.create(tmp_path, config=config)
    for key, value in pulumi.env().items():
        if key in ("PATH", "FAKE_PULUMI_STATE"):
            monkeypatch.setenv(key, value)
    return pulumi


def doctor(capsys) -> tuple[int, list[str], str]:
    code = main(["doctor"])
    out = capsys.readouterr()
    # problems are failure lines: stderr, `error: ` (docs/cli.md); stdout holds only the result
    assert not any(line.startswith(("error:", "problem:")) for line in out.out.splitlines()), out.out
    problems = [line.removeprefix("error: ") for line in out.err.splitlines()
                if line.startswith("error: ") and not line.startswith("error: doctor: ")]
    return code, problems, out.out + out.err


def test_a_ready_cluster_passes(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    pve, token = cluster
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    code, problems, text = doctor(capsys)
    assert (code, problems) == (0, []), text
    assert "checks passed" in text


def test_every_problem_is_one_line_with_its_fix(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    pve, token = cluster
    pve.storages["local"]["content"] = "iso,vztmpl,backup"  # no snippets
    pve.vm(9000).config = {"agent": "0", "template": 1, "scsi0": "local-zfs:base-9000-disk-0,size=2G"}
    monkeypatch.setitem(shapes.FIXUPS, "/nodes/{node}/network", bridges({"iface": "vmbr0"}))
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    code, problems, text = doctor(capsys)
    assert code == 1
    assert ("storage local: does not allow content 'snippets', needed for cloud-init snippets of "
            "VM 8001 (snippet_storage) -> fix: pvesm set local --content backup,iso,snippets,vztmpl") in problems
    assert ("template 9000 on pve: has no cloud-init drive, so the VM gets no seed -> fix: "
            "qm set 9000 --ide2 local-zfs:cloudinit") in problems
    assert ("template 9000 on pve: has the QEMU guest agent option off (agent: 0) -> fix: "
            "qm set 9000 --agent enabled=1") in problems
    assert any(p.startswith("bridge vmbr0 on pve: is not VLAN aware, so VLAN 20 of VM 8001") for p in problems)
    assert len(problems) == 4, problems
    assert token.split("=", 1)[1] not in text


def test_missing_template_bridge_and_image_datastore(cluster, sshd, tmp_path, monkeypatch, doc, capsys):
    pve, token = cluster
    doc["vms"][0]["clone_from"] = 9100
    doc["vms"][1]["network_config"]["bridge"] = "vmbr9"
    doc["images"]["ubuntu-24.04"]["storage"] = "local-zfs"  # cloud images need content iso
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    stack(tmp_path, monkeypatch, pve, token, sshd, path)
    code, problems, _ = doctor(capsys)
    assert code == 1
    text = "\n".join(problems)
    assert "template 9100 on pve: cannot be read (Configuration file 'nodes/pve/qemu-server/9100.conf' " \
           "does not exist)" in text
    assert "bridge vmbr9 on pve: does not exist (VM 8002; bridges there: vmbr0)" in text
    assert "storage local-zfs: does not allow content 'iso', needed for cloud image 'ubuntu-24.04'" in text


def test_each_missing_privilege_is_named(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    pve, token = cluster
    everything = set(shapes.PRIVILEGES)
    # As PVE answers /access/permissions: each listed path carries its effective privileges.
    pve.acl = {TOKEN_ID: [("/", everything - {"VM.Clone", "Sys.Modify"}),
                          ("/vms/8001", everything - {"VM.GuestAgent.Unrestricted", "VM.Clone"})]}
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    code, problems, _ = doctor(capsys)
    assert code == 1
    lacks = sorted(p.split(": ", 1)[1].split(" -> ")[0] for p in problems if "lacks" in p)
    assert lacks == ["lacks Sys.Modify on /nodes/pve", "lacks VM.Clone on /vms/9000",
                     "lacks VM.GuestAgent.Unrestricted on /vms/8001"]
    assert any(f"pveum acl modify /vms/9000 --tokens '{TOKEN_ID}'" in p for p in problems)
    assert any("pveum role add PhoenixProvisioner --privs" in p for p in problems)


def test_a_refused_token_is_one_line_and_ssh_is_still_checked(cluster, sshd, tmp_path, monkeypatch,
                                                               vm_file, capsys):
    pve, token = cluster
    stack(tmp_path, monkeypatch, pve, token.replace("0b7c", "dead"), sshd, vm_file)
    code, problems, text = doctor(capsys)
    assert code == 1
    assert problems == [f"API: PVE refused the API token {TOKEN_ID} (401 authentication failure); "
                        "check proxmoxve:apiToken -> fix: fix the endpoint/token, then run the doctor again"]
    assert "dead" not in text


def test_ssh_with_a_wrong_pin_or_no_node_entry(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    pve, token = cluster
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF other"
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file, **{"phoenix-hypervisor:nodes": {
        "pve": {"address": "127.0.0.1", "port": sshd.port, "hostKeys": [other]}}})
    code, problems, _ = doctor(capsys)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith("node pve (ssh): ")
    assert "host key mismatch" in problems[0] and "re-pin it: python -m phoenix init --node pve" in problems[0]

    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file, **{"phoenix-hypervisor:nodes": {}})
    code, problems, _ = doctor(capsys)
    assert problems == ["node pve (ssh): no phoenix-hypervisor:nodes.pve entry: its address and host "
                        "key are unknown, so SSH to it cannot be checked (and bpg would trust any host key) "
                        "-> fix: python -m phoenix init --node pve --node-address ADDRESS"]


def test_ssh_key_not_authorized(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    from ssh_fixtures import keygen

    pve, token = cluster
    other_key, _ = keygen(tmp_path / "other")
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file, **{"phoenix-hypervisor:sshPrivateKey": other_key})
    code, problems, _ = doctor(capsys)
    assert code == 1 and len(problems) == 1
    assert "refused for user" in problems[0] and "python -m phoenix ssh public-key < KEYFILE" in problems[0]


def test_held_uses_the_nearest_listed_path():
    perms = {"/": {"VM.Audit": 1}, "/vms/9000": {"VM.Clone": 1}}
    assert held(perms, "/vms/9000") == {"VM.Clone"}
    assert held(perms, "/vms/8001") == {"VM.Audit"}
    assert held({}, "/storage/local") == set()


def test_pve8_needs_vm_monitor_for_the_agent(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    from fakepve import shapes as fake_shapes

    pve, token = cluster
    pve.version, pve.release_version = "8.4.1", "8.4"
    pve.acl = {TOKEN_ID: [("/", set(fake_shapes.PRIVILEGES) - {"VM.Monitor"})]}
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    code, problems, _ = doctor(capsys)
    lacks = sorted(p.split(": ", 1)[1].split(" -> ")[0] for p in problems if "lacks" in p)
    assert code == 1 and lacks == ["lacks VM.Monitor on /vms/8001", "lacks VM.Monitor on /vms/8002"]


def test_an_unreachable_endpoint_is_one_line(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    from ssh_fixtures import free_port

    pve, token = cluster
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file,
          **{"proxmoxve:endpoint": f"https://127.0.0.1:{free_port()}/"})
    code, problems, _ = doctor(capsys)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith("API: cannot reach https://127.0.0.1:")
    assert "check proxmoxve:endpoint" in problems[0]


def test_a_pulumi_cli_older_than_the_minimum_is_a_problem(cluster, sshd, tmp_path, monkeypatch, vm_file, capsys):
    """The same number as scripts/up.sh and `python -m phoenix up` (phoenix/pulumi_version.py)."""
    pve, token = cluster
    pulumi = stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    state = pulumi.state
    state["version"] = "v3.207.0"
    pulumi.state_file.write_text(json.dumps(state))
    code, problems, text = doctor(capsys)
    assert code == 1
    assert problems == ["Pulumi CLI: Pulumi CLI v3.207.0 is too old: 3.254.0 or later is needed (replaceWith "
                        "without dangling references; see README, Prerequisites) -> fix: "
                        "https://www.pulumi.com/docs/install/"], problems


def test_vmids_taken_by_someone_else_are_named_and_the_stacks_own_are_not(cluster, sshd, tmp_path,
                                                                         monkeypatch, vm_file, capsys):
    pve, token = cluster
    pve.add_vm(8001, "someones-db", node="pve", status="running")  # not ours: no phoenix tag
    pve.add_vm(8002, "phoenix-web-01", node="pve", status="running",
               config={"tags": "phoenix;web"})  # ours, from an earlier `pulumi up`
    stack(tmp_path, monkeypatch, pve, token, sshd, vm_file)
    code, problems, _ = doctor(capsys)
    assert code == 1
    assert problems == ["vmid 8001: is taken by VM 'someones-db' on pve (wanted for VM phoenix-docker-01; "
                        "not this stack's: no 'phoenix' tag or another name) -> fix: give VM "
                        "phoenix-docker-01 a free vmid in the config (pvesh get /cluster/nextid)"]


def test_a_zfs_dataset_the_node_does_not_have_is_named(cluster, sshd, tmp_path, monkeypatch, doc, capsys):
    pve, token = cluster
    doc["zfs"].append({"node": "pve", "dataset": "tank/nope", "properties": {"compression": "lz4"}})
    path = tmp_path / "vms.json"
    path.write_text(json.dumps(doc))
    stack(tmp_path, monkeypatch, pve, token, sshd, path)
    code, problems, _ = doctor(capsys)
    assert code == 1
    assert len(problems) == 1 and problems[0].startswith("zfs[1] tank/nope on pve: 127.0.0.1:")
    assert "dataset 'tank/nope' does not exist -> fix: set zfs[1].dataset to one of the node's datasets" \
        in problems[0]
