"""Every VmLegacy argument the program sends, against what bpg reads back (no perpetual diff).

bpg/terraform-provider-proxmox, commit d6bd1ffe (July 2026), read functions in
proxmoxtf/resource/vm/. Each row: the argument, what bpg does on read, and the rule the program
must follow so that a `preview` right after `up` shows no change. The test builds the program for
every VM shape the config can produce and checks each rule.

| argument | bpg on read (file:line) | rule |
|---|---|---|
| disks[].ssd | sent only off virtio (disk/disk.go:232); read `false` if absent (disk.go:500) | only off virtio |
| disks[].iothread | sent only off sata/ide (disk.go:236); read `false` if absent (disk.go:476) | false on sata |
| disks[].discard | read back as PVE stores it (disk.go:506-510) | "on" or "ignore" only |
| disks[].fileFormat | Optional+Computed (disk/schema.go:110-116) | not sent (PVE's answer kept) |
| tags | split, trimmed, sorted (vm.go:5744-5753); order-blind DiffSuppress (vm.go:1523) | sorted, unique |
| networkDevices[].macAddress | as PVE stores it (network/network.go:157) | one fixed case (upper) |
| networkDevices[].vlanId | 0 when PVE has no tag (network.go:161) | omit when no VLAN (never 0) |
| cpu.type | PVE's value, "qemu64" when absent (vm.go:4705-4709) | always sent |
| initialization.interface | DiffSuppress when the plan has "" (vm.go:848-856) | not sent |
| agent.timeout / waitForIp | kept from state (vm.go:4424-4451) | any |
| nodeName | follows the VM's node (vm.go:4306-4322) | migrate = true (vm.go:1781) |
| clone.* | ForceNew, not read back (vm.go:605-633) | in ignore_changes |
"""

from __future__ import annotations

import copy

import pytest
from pulumi_harness import run_program

from phoenix.config import build_config

VM = "proxmoxve:index/vmLegacy:VmLegacy"


def shapes(doc: dict) -> list[tuple[str, dict]]:
    clone, image = doc["vms"][0], doc["vms"][1]
    out = []
    for iface in ("virtio0", "scsi0", "sata0"):
        for base, kind in ((clone, "clone"), (image, "image")):
            vm = copy.deepcopy(base)
            vm["disk_interface"] = iface
            out.append((f"{kind}-{iface}", vm))
    vlan = copy.deepcopy(clone)
    vlan["network_config"] = {**vlan["network_config"], "vlan": 30, "mac_address": "bc:24:11:aa:bb:cc"}
    vlan["tags"] = ["zeta", "alpha", "docker", "alpha"]
    out.append(("vlan-mac-tags", vlan))
    novlan = copy.deepcopy(image)
    novlan["network_config"] = {k: v for k, v in novlan["network_config"].items() if k != "vlan"}
    out.append(("no-vlan", novlan))
    return out


@pytest.fixture
def every_shape(doc, pulumi_private_key):
    vms = []
    for i, (label, vm) in enumerate(shapes(doc)):
        vm = dict(vm, vmid=8100 + i, name=f"shape-{i}")
        vm["network_config"] = {**vm["network_config"], "ip": f"10.0.0.{110 + i}/24"}
        vm["network_config"].pop("mac_address", None) if label != "vlan-mac-tags" else None
        vms.append(vm)
    doc["vms"] = vms
    run = run_program(build_config(doc), pulumi_private_key)
    return {reg.inputs["vmId"]: reg for reg in run.of_type(VM)}, [label for label, _ in shapes(doc)]


def test_every_vm_shape_reads_back_as_sent(every_shape):
    regs, labels = every_shape
    assert len(regs) == len(labels) == 8
    for vmid, reg in regs.items():
        args = reg.inputs
        (disk,) = args["disks"]
        iface = disk["interface"]
        where = f"vm {vmid} ({iface})"
        assert disk.get("ssd", False) is (not iface.startswith("virtio")), where
        assert disk.get("iothread", False) is (not iface.startswith(("sata", "ide"))), where
        assert disk["discard"] in ("on", "ignore") and "fileFormat" not in disk, where
        tags = args["tags"]
        assert tags == sorted(set(tags)) and all(t.strip() == t and t for t in tags), where
        (nic,) = args["networkDevices"]
        assert nic["macAddress"] == nic["macAddress"].upper(), where
        assert nic.get("vlanId") != 0, where
        assert args["cpu"]["type"], where
        assert "interface" not in args["initialization"], where
        assert args["migrate"] is True, where
        if "clone" in args:
            assert "clone" in reg.ignore_changes, where


def test_the_vlan_and_tags_shape(every_shape):
    regs, _ = every_shape
    vlan = regs[8106]
    assert vlan.inputs["networkDevices"][0]["vlanId"] == 30
    assert vlan.inputs["networkDevices"][0]["macAddress"] == "BC:24:11:AA:BB:CC"
    assert vlan.inputs["tags"] == ["alpha", "docker", "phoenix", "zeta"]
    assert "vlanId" not in regs[8107].inputs["networkDevices"][0]
