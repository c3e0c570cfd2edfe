"""Fast checks of `phoenix boot`'s user-facing side: usage errors, the report and its checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from phoenix.config import load_config
from phoenix.localboot import cli
from phoenix.localboot.report import BootReport, FeatureOutcome
from phoenix.localboot.run import LocalBoot, LocalBootError, make_run_key, resolve_image

CONFIG = Path(__file__).parent / "data" / "realboot_vms.json"
GIB = 1024**3


def _args(**overrides: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["8101", "--file", str(CONFIG), "--image", "debian-bookworm"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_unknown_vmid_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_args(vmid=9999)) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no VM with vmid 9999" in err and "8101, 8102" in err and "Traceback" not in err


def test_missing_config_file_is_a_usage_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_args(file=str(tmp_path / "nope.json"))) == cli.EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_missing_image_file_names_the_built_in_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_args(image="/nonexistent/disk.img")) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no such file" in err and "debian-bookworm-agent" in err


def test_bad_numbers_are_usage_errors() -> None:
    assert cli.run(_args(disk_gb=0)) == cli.EXIT_USAGE
    assert cli.run(_args(timeout=-1.0)) == cli.EXIT_USAGE


def test_initrd_without_kernel_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"")
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"")
    with pytest.raises(LocalBootError, match="need --kernel"):
        resolve_image(str(disk), initrd=str(initrd))
    image = resolve_image(str(disk), kernel=str(initrd), append="console=ttyS0")
    assert image.kernel == initrd and image.append == "console=ttyS0"


def test_run_key_is_a_fresh_ed25519_key_whose_private_half_stays_out_of_repr() -> None:
    first, second = make_run_key(), make_run_key()
    assert first.public_line.startswith("ssh-ed25519 ") and first.public_line != second.public_line
    assert "PRIVATE" not in repr(first)


def _boot_with_report() -> LocalBoot:
    vm = load_config(CONFIG).vm(8101)
    report = BootReport(vm=vm.label, image="test", accelerator="tcg",
                        addresses=["10.0.2.15"])
    return LocalBoot(vm, guest=None, transport=None, key=make_run_key(),  # type: ignore[arg-type]
                     report=report, log=lambda _: None)


def test_facts_that_match_the_config_pass() -> None:
    boot = _boot_with_report()
    boot._apply_facts(f"root_fs={int(5.8 * GIB)}\nroot_disk={6 * GIB}\n"
                      "route=default via 10.0.2.2 dev ens3 proto static\ndns=10.0.2.3\n")
    assert boot.report.passed, boot.report.failures
    assert boot.report.dns_servers == ["10.0.2.3"]


def test_facts_that_do_not_match_fail_with_what_was_found() -> None:
    boot = _boot_with_report()
    boot.report.addresses = ["10.0.2.99"]
    boot._apply_facts(f"root_fs={2 * GIB}\nroot_disk={6 * GIB}\n"
                      "route=default via 10.0.2.1 dev ens3\ndns=1.1.1.1\n")
    failures = "\n".join(boot.report.failures)
    assert "did not grow" in failures
    assert "static address 10.0.2.15/24 not applied (guest has: 10.0.2.99)" in failures
    assert "default route via 10.0.2.2 not applied" in failures
    assert "DNS server(s) 10.0.2.3 not applied (guest uses: 1.1.1.1)" in failures


def test_report_text_and_json() -> None:
    report = BootReport(vm="vms[0] (vmid 1, a)", image="img", accelerator="tcg",
                        seconds_to_agent=31.2, cloud_init_status="done",
                        features=[FeatureOutcome("docker", ok=True, changed=False)])
    assert report.render_text().endswith("PASSED")
    assert "docker           ok, unchanged" in report.render_text()
    report.fail("feature docker failed: exit 3")
    report.console_tail = "kernel panic"
    text = report.render_text()
    assert "FAILED:\n  - feature docker failed: exit 3" in text and "| kernel panic" in text
    data = json.loads(report.to_json())
    assert data["passed"] is False and data["seconds_to_agent"] == 31.2
