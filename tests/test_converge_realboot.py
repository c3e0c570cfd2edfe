"""Real boot (`-m realboot`, root, qemu under TCG): a running VM converges in place.

One guest of the `debian-bookworm-agent` image (the fast path: agent baked in, no apt at first
boot), booted from VM 8102's seed. Then its config is edited — a small package from Debian's
mirror, admin keys (one with options), a timezone — and the converge step runs over SSH through
the Feature provider, exactly as `pulumi up` would run it (inputs from
`phoenix.resources.converge.converge_params`): no reboot, real apt, dpkg, timedatectl. Checked in the
guest with `dpkg -s`, the user's authorized_keys and `timedatectl`; then a second run changes
nothing and makes no apt call; then a real dpkg lock held by another process and a package that
does not exist fail with apt's own cause.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.config import load_config
from phoenix.features.provider import FeatureProvider
from phoenix.localboot.run import LocalBoot, booted, resolve_image
from phoenix.remote.errors import SshError
from phoenix.resources.converge import converge_params

pytestmark = pytest.mark.realboot

CONFIG = Path(__file__).parent / "data" / "realboot_vms.json"
FAST_VMID = 8102
PACKAGE = "hello"  # ~60 kB from Debian's mirror, no dependencies beyond libc
ADMIN_WITH_OPTIONS = ('from="10.0.0.0/8",no-agent-forwarding ssh-ed25519 '
                      "AAAAC3NzaC1lZDI1NTE5AAAAIC3yqQUgijZbO8zW4N+/9STP1+YVY4y8HaMpnZPHOVFm new@admin")


def _progress(message: str) -> None:
    print(message, flush=True)


@pytest.fixture(scope="module")
def guest() -> Iterator[LocalBoot]:
    image = resolve_image("debian-bookworm-agent", log=_progress)
    vm = load_config(CONFIG).vm(FAST_VMID)
    assert vm.converges_in_place and not vm.packages and vm.timezone is None
    with booted(vm, image, log=_progress) as boot:
        assert boot.readiness_error is None, boot.readiness_error.message
        yield boot


def _props(boot: LocalBoot, **edits) -> dict:
    edited = dataclasses.replace(boot.vm, **edits)
    props = boot.feature_props("converge", converge_params(edited, boot.key.public_line))
    return {**props, "provider_version": "1", "exit_code": None, "stdout_tail": None,
            "changes": None, "marker": None}


def _sh(boot: LocalBoot, command: str) -> str:
    with boot.ssh() as session:
        return session.run(command, timeout_s=120, check=False).stdout


def test_packages_keys_and_timezone_converge_without_a_reboot(guest: LocalBoot) -> None:
    boot_id = _sh(guest, "cat /proc/sys/kernel/random/boot_id")
    assert _sh(guest, f"dpkg-query -W -f='${{Status}}' {PACKAGE} 2>&1; echo") .strip() != \
        "install ok installed"
    user = dataclasses.replace(guest.vm.user, ssh_authorized_keys=(ADMIN_WITH_OPTIONS,))
    props = _props(guest, packages=(PACKAGE,), user=user, timezone="Europe/Berlin")
    provider = FeatureProvider()

    started = time.monotonic()
    created = provider.create(props)
    took = time.monotonic() - started
    _progress(f"converge (apt-get update + install {PACKAGE}, keys, timezone): {took:.1f} s")
    assert created.outs["changes"] == 3

    assert "Status: install ok installed" in _sh(guest, f"dpkg -s {PACKAGE}")
    keys = _sh(guest, "cat ~/.ssh/authorized_keys").splitlines()
    assert keys == [ADMIN_WITH_OPTIONS, guest.key.public_line]  # exactly the list + Phoenix's
    assert _sh(guest, "timedatectl show -p Timezone --value").strip() == "Europe/Berlin"
    assert _sh(guest, "readlink /etc/localtime").strip().endswith("zoneinfo/Europe/Berlin")
    assert _sh(guest, "cat /proc/sys/kernel/random/boot_id") == boot_id  # no reboot

    # a second run: nothing changes, no apt call at all
    history = _sh(guest, "wc -c < /var/log/apt/history.log")
    started = time.monotonic()
    again = provider.update(created.id, created.outs, {**props, "triggers": ["again"]}).outs
    _progress(f"converge again (no change): {time.monotonic() - started:.1f} s")
    assert again["changes"] == 0
    assert _sh(guest, "wc -c < /var/log/apt/history.log") == history
    assert not provider.diff(created.id, created.outs, props).changes


def test_a_dpkg_lock_held_by_another_process_fails_with_apts_cause(guest: LocalBoot) -> None:
    hold = ("nohup sudo -n python3 -c 'import fcntl, time; f = open(\"/var/lib/dpkg/lock-frontend\", \"w\"); "
            "fcntl.lockf(f, fcntl.LOCK_EX); open(\"/tmp/phx-locked\", \"w\").close(); "
            "time.sleep(40)' >/dev/null 2>&1 & "
            "for i in $(seq 50); do [ -e /tmp/phx-locked ] && break; sleep 0.2; done; echo held")
    assert _sh(guest, hold).strip() == "held"
    props = _props(guest, packages=(PACKAGE, "sl"))
    props["params"]["lock_timeout_s"] = "5"
    with pytest.raises(SshError) as info:
        FeatureProvider().create(props)
    text = str(info.value)
    _progress(text)
    assert "installing sl failed (apt-get exit 100)" in text
    assert "Could not get lock /var/lib/dpkg/lock-frontend" in text and "(python3)" in text
    assert "held the lock for more than 5 s" in text


def test_a_package_that_does_not_exist_fails_with_apts_cause(guest: LocalBoot) -> None:
    props = _props(guest, packages=("nosuchpkg-phoenix",))
    with pytest.raises(SshError) as info:
        FeatureProvider().create(props)
    text = str(info.value)
    assert "E: Unable to locate package nosuchpkg-phoenix" in text


def test_timezone_without_timedatectl_writes_localtime_and_timezone(guest: LocalBoot) -> None:
    """Where timedatectl is missing, the step writes what cloud-init's Debian distro class
    writes: the /etc/localtime link and /etc/timezone (timedatectl made non-executable here)."""
    assert _sh(guest, "sudo -n chmod -x /usr/bin/timedatectl && echo off").strip() == "off"
    try:
        created = FeatureProvider().create(_props(guest, timezone="Asia/Tokyo"))
        assert "timezone Europe/Berlin -> Asia/Tokyo" in created.outs["stdout_tail"]
    finally:
        _sh(guest, "sudo -n chmod +x /usr/bin/timedatectl")
    assert _sh(guest, "readlink /etc/localtime").strip() == "/usr/share/zoneinfo/Asia/Tokyo"
    assert _sh(guest, "cat /etc/timezone").strip() == "Asia/Tokyo"
    assert _sh(guest, "timedatectl show -p Timezone --value").strip() == "Asia/Tokyo"
