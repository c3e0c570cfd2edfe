"""Fast checks of the local-boot harness: qemu command line, image cache keys, seed ISO."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.localboot import image, qemu
from phoenix.localboot.run import console_causes
from phoenix.localboot.seed import make_seed_iso


def _spec(**changes: object) -> qemu.BootSpec:
    spec = qemu.BootSpec(
        name="vm8001",
        disk=Path("/images/disk.qcow2"),
        seed_iso=Path("/run/seed.iso"),
        mac_address="52:54:00:aa:bb:cc",
        guest_ip=ipaddress.IPv4Interface("10.0.2.15/24"),
        gateway=ipaddress.IPv4Address("10.0.2.2"),
        dns=("10.0.2.3",),
    )
    return replace(spec, **changes)


def _argv(spec: qemu.BootSpec, accel: str = "tcg") -> list[str]:
    return qemu.qemu_argv(spec, overlay=Path("/w/disk.qcow2"), ssh_port=40022,
                          qga_socket=Path("/w/qga.sock"), serial_log=Path("/w/console.log"),
                          accel=accel)


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_argv_forwards_ssh_to_the_static_address_and_sets_the_mac() -> None:
    argv = _argv(_spec(guest_ip=ipaddress.IPv4Interface("10.0.2.50/24")))
    assert _option(argv, "-netdev") == ["user,id=n0,hostfwd=tcp:127.0.0.1:40022-10.0.2.50:22"]
    assert "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc" in _option(argv, "-device")


def test_argv_disks_are_virtio_overlay_and_readonly_seed() -> None:
    drives = _option(_argv(_spec()), "-drive")
    assert drives[0].startswith("file=/w/disk.qcow2,if=virtio,format=qcow2")
    assert drives[1] == "file=/run/seed.iso,if=virtio,format=raw,readonly=on"


def test_argv_has_the_guest_agent_channel_proxmox_uses() -> None:
    argv = _argv(_spec())
    assert "socket,path=/w/qga.sock,server=on,wait=off,id=qga0" in _option(argv, "-chardev")
    assert "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0" in _option(argv, "-device")
    assert _option(argv, "-serial") == ["file:/w/console.log"]


def test_argv_direct_kernel_boot_only_with_a_kernel() -> None:
    cloud_image = _argv(_spec())
    assert "-kernel" not in cloud_image and "-append" not in cloud_image
    direct = _argv(_spec(kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd.img"),
                         append="root=LABEL=rootfs ro console=ttyS0"))
    assert _option(direct, "-kernel") == ["/k/vmlinuz"]
    assert _option(direct, "-initrd") == ["/k/initrd.img"]
    assert _option(direct, "-append") == ["root=LABEL=rootfs ro console=ttyS0"]


def test_argv_accelerator_and_cpu() -> None:
    assert (_option(_argv(_spec(), "tcg"), "-accel"), _option(_argv(_spec(), "tcg"), "-cpu")) \
        == (["tcg"], ["max"])
    assert _option(_argv(_spec(), "kvm"), "-cpu") == ["host"]


def test_other_subnet_is_put_on_the_user_network() -> None:
    spec = _spec(guest_ip=ipaddress.IPv4Interface("10.0.0.101/24"),
                 gateway=ipaddress.IPv4Address("10.0.0.1"), dns=("10.0.0.1", "10.0.0.53"))
    # DNS equal to the gateway cannot be served by slirp; the next in-subnet server is used.
    assert qemu.user_net_options(spec) == ["net=10.0.0.0/24", "host=10.0.0.1", "dns=10.0.0.53"]
    assert qemu.user_net_options(_spec()) == []


def test_choose_accel_never_picks_the_paravirtual_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "real_kvm_available", lambda: False)
    assert qemu.choose_accel("auto") == "tcg"
    monkeypatch.setattr(qemu, "real_kvm_available", lambda: True)
    assert qemu.choose_accel("auto") == "kvm"
    assert qemu.choose_accel("tcg") == "tcg"
    with pytest.raises(qemu.QemuError):
        qemu.choose_accel("hvf")


def test_cache_key_changes_with_the_recipe_and_only_then() -> None:
    base = image.RECIPES["debian-bookworm"]
    assert base.cache_key() == image.ImageRecipe(name="debian-bookworm").cache_key()
    assert base.cache_key() != image.RECIPES["debian-bookworm-agent"].cache_key()
    assert base.cache_key() != replace(base, steps_version=base.steps_version + 1).cache_key()
    assert base.cache_key() != replace(base, mirror="http://mirror.example/debian").cache_key()


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("PHOENIX_CACHE_DIR", str(tmp_path))
    recipe = image.RECIPES["debian-bookworm"]
    assert image.image_dir(recipe) == tmp_path / "images" / f"debian-bookworm-{recipe.cache_key()}"
    monkeypatch.delenv("PHOENIX_CACHE_DIR")
    assert image.cache_dir() == Path.home() / ".cache" / "phoenix"


def test_cached_image_is_reused_and_a_partial_one_is_not(tmp_path: Path) -> None:
    recipe = image.RECIPES["debian-bookworm"]
    directory = image.image_dir(recipe, tmp_path)
    directory.mkdir(parents=True)
    (directory / "disk.qcow2").write_bytes(b"x")
    (directory / "vmlinuz").write_bytes(b"x")
    assert image.cached_image(recipe, tmp_path) is None  # no initrd: an unfinished entry
    (directory / "initrd.img").write_bytes(b"x")
    found = image.ensure_image("debian-bookworm", log=lambda _: None, root=tmp_path)
    assert found.disk == directory / "disk.qcow2" and found.kernel == directory / "vmlinuz"


def test_unknown_image_name_is_a_clear_error() -> None:
    with pytest.raises(image.ImageBuildError, match="known: debian-bookworm"):
        image.ensure_image("debian-sid", log=lambda _: None)


def test_seed_iso_is_a_cidata_volume_with_the_three_files(tmp_path: Path) -> None:
    if shutil.which("genisoimage") is None or shutil.which("isoinfo") is None:
        pytest.fail("genisoimage and isoinfo are required (Debian package genisoimage)")
    iso = make_seed_iso(tmp_path / "seed.iso", user_data="#cloud-config\nhostname: a\n",
                        meta_data="instance-id: i-1\n", network_config="version: 2\n")
    header = subprocess.run(["isoinfo", "-d", "-i", str(iso)], check=False, capture_output=True, text=True)
    assert "Volume id: cidata" in header.stdout
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], check=False, capture_output=True,
                             text=True).stdout.split()
    assert sorted(listing) == ["/meta-data", "/network-config", "/user-data"]
    user_data = subprocess.run(["isoinfo", "-R", "-x", "/user-data", "-i", str(iso)],
                               check=False, capture_output=True, text=True).stdout
    assert user_data == "#cloud-config\nhostname: a\n"


def test_overlay_is_larger_than_the_image(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is required (Debian package qemu-utils)")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"], check=True)
    qemu.create_overlay(base, tmp_path / "run.qcow2", 6)
    info = qemu.image_info(tmp_path / "run.qcow2")
    assert info["virtual-size"] == 6 * 1024**3
    assert Path(info["backing-filename"]) == base.resolve()


def test_one_recipe_per_guest_generation_differing_only_in_the_suite() -> None:
    for agent in (False, True):
        old = image.RECIPES[image.image_name("bookworm", agent=agent)]
        new = image.RECIPES[image.image_name("trixie", agent=agent)]
        assert (old.suite, new.suite) == ("bookworm", "trixie")
        assert replace(old, name=new.name, suite="trixie") == new
    assert image.RECIPES["debian-trixie-agent"].extra_packages == ("qemu-guest-agent",)
    with pytest.raises(image.ImageBuildError, match="unknown suite 'sid'"):
        image.image_name("sid", agent=False)


def test_console_causes_name_the_console_lines_or_say_there_are_none() -> None:
    console = ("[  OK  ] Started systemd-networkd.service\n"
               "phoenix: guest agent: installing qemu-guest-agent from the package mirror ...\n"
               "Err:1 http://deb.debian.org/debian bookworm InRelease\n"
               "  Could not connect to deb.debian.org:80 (151.101.2.132), connection timed out\n"
               "E: Unable to locate package qemu-guest-agent\n"
               "phoenix: guest agent: FAILED to install qemu-guest-agent (exit 100)\n")
    text = console_causes(console)
    assert text.startswith("\nThe guest's serial console says:\n")
    assert "  Could not connect to deb.debian.org:80" in text
    assert "  E: Unable to locate package qemu-guest-agent" in text
    assert "Started systemd-networkd" not in text
    assert "names no apt, network or cloud-init error" in console_causes("[  OK  ] booted\n")
