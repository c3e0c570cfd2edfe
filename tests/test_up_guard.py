"""The rebuild guard (phoenix/up/guard.py) and `python -m phoenix up`, end to end through
scripts/up.sh with the STAND-IN Pulumi CLI, whose `preview --json` prints a PreviewDigest shaped
as pulumi's pkg/display/json.go:31-77 (v3.254.0) defines it (`steps[].op`, `urn`, `oldState`,
`newState`, `replaceReasons`, `detailedDiff`), filled per step as pkg/backend/display/json.go
`getPreviewMetadataStep` does. The steps are what the engine would plan; the stand-in adds the
three steps of a delete-first replacement for each `--replace URN`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi_standin import StandinPulumi
from test_up_script import complete_config, host_key_line, project, up  # noqa: F401 (fixture)

from phoenix.up import guard

ROOT = Path(__file__).resolve().parents[1]
PARENT = "phoenix:index:Vm"
VM_T = "proxmoxve:index/vmLegacy:VmLegacy"


def urn(name: str, typ: str = VM_T, parent: str = PARENT) -> str:
    return f"urn:pulumi:dev::phoenix-hypervisor::{parent}${typ}::{name}"


def vm_state(vmid: int, *, clone: int | None = None, file_id: str | None = None, **extra) -> dict:
    inputs = {"vmId": vmid, "nodeName": "pve", "description": "Managed by Phoenix", **extra,
              "disks": [{"interface": "scsi0", "size": 32, **({"fileId": file_id} if file_id else {})}]}
    if clone is not None:
        inputs["clone"] = {"vmId": clone, "full": True, "nodeName": "pve", "retries": 3}
    return {"urn": urn(f"vm-{vmid}-vm"), "type": VM_T, "custom": True, "id": str(vmid), "inputs": inputs}


def step(op: str, name: str, old: dict | None, new: dict | None = None, reasons=(), typ: str = VM_T) -> dict:
    return {"op": op, "urn": urn(name, typ), "provider": "", "oldState": old, "newState": new or old,
            "replaceReasons": list(reasons) or None, "detailedDiff": {r: {"kind": "update-replace",
                                                                          "inputDiff": True} for r in reasons}}


def replace_steps(name: str, old: dict, new: dict, reasons) -> list[dict]:
    """A delete-first replacement as the engine emits it (step.go OpReplace, OpDeleteReplaced,
    OpCreateReplacement)."""
    return [step(op, name, old, new, reasons) for op in ("replace", "delete-replaced", "create-replacement")]


# ---- the guard on its own


def test_a_vm_replaced_because_of_its_source_is_refused_with_the_engines_reasons():
    old, new = vm_state(8001, clone=9000), vm_state(8001, clone=9100)
    refusals = guard.check({"steps": replace_steps("vm-8001-vm", old, new, ["clone"])})
    assert [r.line() for r in refusals] == [
        "VM 8001 (vm-8001-vm): would be replaced (deleted, then made again), because of: clone; "
        "to rebuild it: scripts/up.sh --rebuild 8001"]
    assert guard.check({"steps": replace_steps("vm-8001-vm", old, new, ["clone"])}, rebuild=[8001]) == []


def test_opt_in_counts_as_named_only_when_the_digest_is_the_only_reason():
    old, new = vm_state(8001, clone=9000), vm_state(8001, clone=9000)
    digest_only = {"steps": replace_steps("vm-8001-vm", old, new, ["description"])}
    assert guard.check(digest_only, opted_in=[8001]) == []
    assert len(guard.check(digest_only)) == 1  # not opted in: refused
    with_source = {"steps": replace_steps("vm-8001-vm", old, new, ["description", "clone"])}
    (refusal,) = guard.check(with_source, opted_in=[8001])
    assert refusal.reasons == ("description", "clone")
    assert refusal.line().endswith("--rebuild 8001 (or, to leave it as it is this time: --keep 8001)")


def test_deletes_of_vms_templates_and_data_need_delete():
    steps = [step("delete", "vm-8003-vm", vm_state(8003, clone=9000)),
             step("delete", "template-9000-vm", vm_state(9000, file_id="local:iso/a.img")),
             step("delete", "vm-8004-data", {"inputs": {"vmId": 8004}}, typ=VM_T),
             step("delete", "vm-8005-data-disk1", {"inputs": {}}, typ="proxmoxve:index/other:Thing"),
             step("delete", "vm-8003-user-data", {"inputs": {}}, typ="proxmoxve:index/fileLegacy:FileLegacy")]
    refused = {(r.vmid, r.name) for r in guard.check({"steps": steps})}
    assert refused == {(8003, "vm-8003-vm"), (9000, "template-9000-vm"), (8004, "vm-8004-data"),
                       (8005, "vm-8005-data-disk1")}  # a snippet is not the VM's data
    assert guard.check({"steps": steps}, delete=[8003, 9000, 8004, 8005]) == []
    # a rebuild is not a delete: --rebuild does not allow removing a VM
    assert len(guard.check({"steps": steps[:1]}, rebuild=[8003])) == 1


def test_a_replacement_that_would_boot_a_blank_disk_is_refused_even_when_named():
    """Issue 18 case 1: an ignored source path the old inputs lack is removed from the new ones
    (PropertyPath.Reset): a VM with neither clone nor fileId. Never start that rebuild."""
    old, blank = vm_state(8001, file_id="local:iso/u.img"), vm_state(8001)
    (refusal,) = guard.check({"steps": replace_steps("vm-8001-vm", old, blank, ["disks"])}, rebuild=[8001])
    assert "neither a clone nor an image" in refusal.line()
    # a source being made in the same up (a new image file: unknown in the preview) is a source
    unknown = vm_state(8001, file_id=guard.UNKNOWN)
    assert guard.check({"steps": replace_steps("vm-8001-vm", old, unknown, ["disks"])}, rebuild=[8001]) == []


def test_a_data_holder_is_blank_on_purpose_and_its_removal_says_the_data_stays():
    """A data holder (contract C1, phoenix/resources/data_disks.py) is a VmLegacy with blank
    volumes and no clone: creating one is not a blank-disk VM; removing it (retain_on_delete)
    needs --delete and says the data stays on PVE."""
    holder = {"urn": urn("vm-8001-data"), "type": VM_T, "inputs": {
        "vmId": 108001, "started": False, "disks": [{"interface": "scsi1", "size": 100}]}}
    assert guard.check({"steps": [step("create", "vm-8001-data", None, holder)]}) == []
    (refusal,) = guard.check({"steps": [step("delete", "vm-8001-data", holder)]})
    assert "its data disks stay on PVE" in refusal.line() and "--delete 8001" in refusal.line()


def test_other_resources_and_updates_pass():
    steps = [step("update", "vm-8001-vm", vm_state(8001, clone=9000)),
             *[step(op, "vm-8001-user-data", {"inputs": {}}, reasons=["sourceRaw"],
                    typ="proxmoxve:index/fileLegacy:FileLegacy")
               for op in ("replace", "delete-replaced", "create-replacement")],
             step("same", "vm-8002-vm", vm_state(8002, file_id="local:iso/u.img")),
             step("create", "vm-8009-vm", None, vm_state(8009, clone=9000))]
    assert guard.check({"steps": steps}) == []


@pytest.mark.parametrize("digest", [{"steps": {}}, {"steps": [{"op": "same"}]}, {"steps": ["x"]}])
def test_a_digest_it_does_not_understand_is_an_error_not_a_pass(digest):
    with pytest.raises(guard.PreviewUnreadable):
        guard.check(digest)


def test_a_source_switch_that_is_ignored_is_named_with_the_command():
    steps = [step("same", "vm-8001-vm", vm_state(8001, file_id="local:iso/u-1a2b3c4d.img")),
             step("same", "vm-8002-vm", vm_state(8002, clone=9000))]
    notes = guard.source_changes({"steps": steps}, {8001: "clone 9000", 8002: "clone 9000"})
    assert notes == ["VM 8001 (vm-8001-vm) was made from image u-1a2b3c4d.img, the config now names "
                     "clone 9000: nothing to apply until it is rebuilt (scripts/up.sh --rebuild 8001)"]


# ---- end to end: scripts/up.sh -> python -m phoenix up -> the stand-in CLI


@pytest.fixture
def pulumi(tmp_path, pulumi_private_key) -> StandinPulumi:
    standin = StandinPulumi.create(tmp_path, config=complete_config(pulumi_private_key, host_key_line()))
    state = standin.state
    state["deployment"] = {"version": 3, "deployment": {"resources": [
        vm_state(8001, clone=9000), vm_state(8002, file_id="local:iso/x.img")]}}
    standin.state_file.write_text(json.dumps(state))
    return standin


def set_steps(pulumi: StandinPulumi, steps: list[dict], **more) -> None:
    state = pulumi.state
    state["preview_steps"] = steps
    state.update(more)
    pulumi.state_file.write_text(json.dumps(state))


def ups(pulumi: StandinPulumi) -> list[list[str]]:
    return [c for c in pulumi.calls if c[:1] == ["up"]]


def test_up_sh_refuses_an_unnamed_rebuild_and_applies_nothing(project, pulumi):  # noqa: F811
    old = vm_state(8001, clone=9000)
    set_steps(pulumi, replace_steps("vm-8001-vm", old, vm_state(8001, clone=9000, nodeName="pve"),
                                    ["initialization"]))
    done = up(project, pulumi, PULUMI_CONFIG_PASSPHRASE="pw")
    assert done.returncode == 1, done.stderr
    assert ("error: VM 8001 (vm-8001-vm): would be replaced (deleted, then made again), because of: "
            "initialization; to rebuild it: scripts/up.sh --rebuild 8001") in done.stderr
    assert "nothing was applied" in done.stderr
    assert ups(pulumi) == []
    preview = next(c for c in pulumi.calls if c[:1] == ["preview"])
    assert preview[:4] == ["preview", "--json", "--stack", "dev"] and "--save-plan" in preview
    # unchanged resources and every replacement step are in the JSON only when asked for
    # (pkg/backend/display/display.go shouldShow)
    assert "--show-sames" in preview and "--show-replacement-steps" in preview


def test_up_sh_rebuild_replaces_the_named_vm_with_its_current_source(project, pulumi):  # noqa: F811
    set_steps(pulumi, [step("same", "vm-8001-vm", vm_state(8001, clone=9000))])
    done = subprocess.run(["bash", str(project / "scripts" / "up.sh"), "--rebuild", "8001", "--yes"],
                          cwd="/", env=pulumi.env({"PATH": "/usr/bin:/bin", "HOME": str(project),
                                                   "PULUMI_CONFIG_PASSPHRASE": "pw"}),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    vm_urn = urn("vm-8001-vm")
    (preview,) = [c for c in pulumi.calls if c[:1] == ["preview"]]
    (applied,) = ups(pulumi)
    plan = preview[preview.index("--save-plan") + 1]
    assert preview[preview.index("--replace") + 1] == vm_urn
    assert applied == ["up", "--stack", "dev", "--plan", plan, "--replace", vm_urn, "--yes"]
    # the program of both runs was told which VM is rebuilt (contract C3)
    env = dict(zip(map(tuple, pulumi.calls), pulumi.state["phoenix_env"], strict=True))
    assert env[tuple(preview)]["PHOENIX_REBUILD"] == "8001" and env[tuple(applied)]["PHOENIX_REBUILD"] == "8001"
    # the features of the VM being rebuilt run no delete script (case 6)
    assert env[tuple(applied)]["PHOENIX_REPLACING"] == "8001"


def run_phoenix_up(project: Path, pulumi: StandinPulumi, *args: str) -> subprocess.CompletedProcess:  # noqa: F811
    env = pulumi.env({"PATH": "/usr/bin:/bin", "HOME": str(project), "PULUMI_CONFIG_PASSPHRASE": "pw"})
    return subprocess.run([sys.executable, "-m", "phoenix", "up", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_delete_of_a_removed_vm_needs_delete(project, pulumi):  # noqa: F811
    set_steps(pulumi, [step("delete", "vm-8003-vm", vm_state(8003, clone=9000))])
    refused = run_phoenix_up(project, pulumi)
    assert refused.returncode == 1 and ups(pulumi) == []
    assert "VM 8003 (vm-8003-vm): would be deleted; to delete it: scripts/up.sh --delete 8003" \
        in refused.stderr
    done = run_phoenix_up(project, pulumi, "--delete", "8003", "--yes")
    assert done.returncode == 0, done.stderr
    assert len(ups(pulumi)) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--rebuild", "8009"], "--rebuild 8009: no VM with vmid 8009 in phoenix_vm_configs.json"),
    (["--delete", "8001"], "--delete 8001: VM 8001 is still in phoenix_vm_configs.json: remove its entry first"),
    (["--rebuild", "abc"], "argument --rebuild: a VMID is a whole number, not 'abc'"),
])
def test_naming_a_vm_that_cannot_be_meant_could_not_start(project, pulumi, args, message):  # noqa: F811
    done = run_phoenix_up(project, pulumi, *args)
    assert done.returncode == 2 and message in done.stderr
    assert not [c for c in pulumi.calls if c[:1] in (["preview"], ["up"])]


def test_rebuild_of_a_vm_not_yet_made_could_not_start(project, pulumi):  # noqa: F811
    state = pulumi.state
    state["deployment"]["deployment"]["resources"] = []
    pulumi.state_file.write_text(json.dumps(state))
    done = run_phoenix_up(project, pulumi, "--rebuild", "8001")
    assert done.returncode == 2 and "VM 8001 is not in the stack's state yet" in done.stderr


def test_a_failed_preview_applies_nothing(project, pulumi):  # noqa: F811
    set_steps(pulumi, [], preview_rc=255)
    done = run_phoenix_up(project, pulumi, "--yes")
    assert done.returncode == 1 and ups(pulumi) == []
    assert "error: STAND-IN preview failure" in done.stderr
    assert "`pulumi preview` failed; nothing was applied" in done.stderr


def test_phoenix_up_refuses_a_cli_older_than_the_minimum(project, pulumi):  # noqa: F811
    state = pulumi.state
    state["version"] = "v3.207.0"
    pulumi.state_file.write_text(json.dumps(state))
    done = run_phoenix_up(project, pulumi)
    assert done.returncode == 2 and "Pulumi CLI v3.207.0 is too old: 3.254.0 or later" in done.stderr
    assert not [c for c in pulumi.calls if c[:1] in (["preview"], ["up"])]


def test_a_source_change_is_a_warning_and_nothing_is_rebuilt(project, pulumi):  # noqa: F811
    set_steps(pulumi, [step("same", "vm-8001-vm", vm_state(8001, file_id="local:iso/x.img"))])
    done = run_phoenix_up(project, pulumi, "--yes")
    assert done.returncode == 0, done.stderr
    assert ("warning: VM 8001 (vm-8001-vm) was made from image x.img, the config now names clone 9000: "
            "nothing to apply until it is rebuilt (scripts/up.sh --rebuild 8001)") in done.stderr


def test_a_digest_whose_definition_changed_is_not_taken_as_an_edit():
    """Case 2's upgrade: the digest left the stack's key out from this version on, so every
    opted-in VM's description changes once. That is not the user's edit: refused, with --keep."""
    old = vm_state(8001, clone=9000, description="Managed\ncloud-init sha256:aa (recreate_on_cloud_init_change: true)")
    new = vm_state(8001, clone=9000,
                   description="Managed\ncloud-init config sha256:bb (recreate_on_cloud_init_change: true)")
    (refusal,) = guard.check({"steps": replace_steps("vm-8001-vm", old, new, ["description"])}, opted_in=[8001])
    assert "scripts/up.sh --keep 8001" in refusal.line()
    newer = vm_state(8001, clone=9000,
                     description="Managed\ncloud-init config sha256:cc (recreate_on_cloud_init_change: true)")
    assert guard.check({"steps": replace_steps("vm-8001-vm", new, newer, ["description"])}, opted_in=[8001]) == []


def test_an_in_place_move_of_the_boot_disk_is_refused():
    """Case 9: bpg cannot change the boot disk's interface in place ("cannot delete boot disk")."""
    old = vm_state(8001, clone=9000)
    new = vm_state(8001, clone=9000)
    new["inputs"]["disks"][0]["interface"] = "virtio0"
    (refusal,) = guard.check({"steps": [step("update", "vm-8001-vm", old, new)]})
    assert "boot disk to another interface" in refusal.line() and "--rebuild 8001" in refusal.line()
    # named: the VM is replaced (--replace), not updated
    assert guard.check({"steps": replace_steps("vm-8001-vm", old, new, [])}, rebuild=[8001]) == []


def test_a_vm_made_from_a_template_this_up_deletes_is_refused():
    """A rebuild never starts without its source: not even when both are named."""
    steps = [step("delete", "template-9000-vm", vm_state(9000, file_id="local:iso/u.img")),
             *replace_steps("vm-8001-vm", vm_state(8001, clone=9000), vm_state(8001, clone=9000), ["clone"])]
    refusals = guard.check({"steps": steps}, rebuild=[8001], delete=[9000])
    assert [r.line() for r in refusals] == [
        "VM 8001 (vm-8001-vm): would be cloned from VM 9000, which this up deletes, because of: clone; "
        "keep the template until no VM is made from it; nothing was deleted"]


def test_no_plan_applies_without_the_plan_but_still_guards(project, pulumi):  # noqa: F811
    """--no-plan: for a CLI whose (experimental) update plan refuses what the preview allowed.
    The preview is still checked; `pulumi up` then runs without --plan, and says so."""
    set_steps(pulumi, [step("same", "vm-8001-vm", vm_state(8001, clone=9000))])
    done = run_phoenix_up(project, pulumi, "--no-plan", "--yes")
    assert done.returncode == 0, done.stderr
    (preview,) = [c for c in pulumi.calls if c[:1] == ["preview"]]
    assert "--save-plan" not in preview
    assert ups(pulumi) == [["up", "--stack", "dev", "--yes"]]
    assert "warning: --no-plan" in done.stderr
    # and a refusal stays a refusal
    old, new = vm_state(8001, clone=9000), vm_state(8001, clone=9100)
    set_steps(pulumi, replace_steps("vm-8001-vm", old, new, ["clone"]))
    refused = run_phoenix_up(project, pulumi, "--no-plan", "--yes")
    assert refused.returncode == 1 and "nothing was applied" in refused.stderr
    assert len(ups(pulumi)) == 1
