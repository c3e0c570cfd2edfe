"""The converge step (`edits: "in-place"`, phoenix/features/converge.sh) through the Feature
provider, against a real sshd (ssh_fixtures.py).

apt and dpkg cannot install on this host, so they are CLEARLY NAMED STAND-INS first on the
session's PATH, speaking apt's own words (apt-pkg/contrib/fileutl.cc `GetLock`: "Could not get
lock %s. It is held by process %d (%s)"; apt-private/private-install.cc / cacheset.cc: "Unable to
locate package %s"): `dpkg-query` answers from a small database file, `apt-get` "installs" into
it, honours `-o DPkg::Lock::Timeout=N` against a lock file that the test holds from another
process with flock(1), and `timedatectl` keeps its zone in a file. A guard directory after the
stand-ins refuses to run the real apt-get/timedatectl. Users, homes and authorized_keys are
real, and logins with the converged keys go through the real sshd (key options included).
Real apt, dpkg and timedatectl run in the qemu guest: test_converge_realboot.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ssh_fixtures import TEST_USER, keygen, reset_authorized_keys, running_sshd

from phoenix.features.catalog import FEATURES, check_feature
from phoenix.features.provider import FeatureProvider
from phoenix.remote import SshError, SshTarget, run_script

GUARD = """\
#!/bin/sh
# GUARD (tests only): the stand-in is missing; the real command must never run from a test.
echo "test guard: the stand-in $(basename "$0") is missing; refusing" >&2
exit 97
"""

STANDIN_DPKG_QUERY = r"""#!/bin/bash
# STAND-IN for dpkg-query (tests only): `-W -f=FORMAT NAME` from "$dir/dpkg-db" (NAME VERSION).
dir="$(dirname "$0")"
name="${@: -1}"
line="$(grep -m1 "^$name " "$dir/dpkg-db" 2>/dev/null)"
if [ -z "$line" ]; then echo "dpkg-query: no packages found matching $name" >&2; exit 1; fi
printf 'ii |%s' "${line#* }"
"""

STANDIN_APT_GET = r"""#!/bin/bash
# STAND-IN for apt-get (tests only): records its arguments in apt-get.log; `install` adds the
# packages to dpkg-db (version 1.0-standin) unless one is listed in "unknown"; waits for the
# dpkg lock ("$dir/dpkg.lock", flock) as long as -o DPkg::Lock::Timeout says.
dir="$(dirname "$0")"
echo "$*" >> "$dir/apt-get.log"
wait_s=0; args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) case "$2" in DPkg::Lock::Timeout=*) wait_s="${2#*=}";; esac; shift 2;;
    -*) shift;;
    *) args+=("$1"); shift;;
  esac
done
case "${args[0]}" in
  update) echo "Reading package lists... Done (stand-in)"; exit 0;;
  install) ;;
  *) echo "E: stand-in knows only update/install" >&2; exit 100;;
esac
exec 9>"$dir/dpkg.lock"
if ! flock -w "$wait_s" 9; then
  holder="$(cat "$dir/dpkg.lock.holder" 2>/dev/null || echo 0)"
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process $holder (apt-get)" >&2
  echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?" >&2
  exit 100
fi
for p in "${args[@]:1}"; do
  if grep -qx "${p%%=*}" "$dir/unknown" 2>/dev/null; then
    echo "E: Unable to locate package ${p%%=*}" >&2; exit 100
  fi
done
for p in "${args[@]:1}"; do
  name="${p%%=*}"; version="1.0-standin"; [ "$p" = "$name" ] || version="${p#*=}"
  echo "Setting up $name ($version) ... (stand-in)"
  echo "$name $version" >> "$dir/dpkg-db"
done
"""

STANDIN_TIMEDATECTL = r"""#!/bin/sh
# STAND-IN for timedatectl (tests only): the zone lives in "$dir/timezone".
dir="$(dirname "$0")"
case "$1" in
  show) cat "$dir/timezone" 2>/dev/null || echo "Etc/UTC";;
  set-timezone) echo "$2" > "$dir/timezone"; echo "$2" >> "$dir/timedatectl.log";;
  *) exit 1;;
esac
"""

OPTIONS_OK = 'from="127.0.0.1",no-agent-forwarding,command="echo forced-by-option"'
OPTIONS_ELSEWHERE = 'from="10.9.9.9"'


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    guard = tmp_path_factory.mktemp("converge-guard")
    guard.chmod(0o755)
    for name in ("apt-get", "dpkg-query", "timedatectl"):
        (guard / name).write_text(GUARD)
        (guard / name).chmod(0o755)
    yield from running_sshd(["root", TEST_USER], path=f"{guard}:/usr/sbin:/usr/bin:/sbin:/bin")


@pytest.fixture
def host(sshd):
    """Fresh stand-ins and an empty authorized_keys of TEST_USER for each test."""
    bin_ = sshd.standin_bin
    for name, text in (("dpkg-query", STANDIN_DPKG_QUERY), ("apt-get", STANDIN_APT_GET),
                       ("timedatectl", STANDIN_TIMEDATECTL)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    (bin_ / "dpkg-db").write_text("bash 5.2-standin\n")
    for name in ("apt-get.log", "timezone", "timedatectl.log", "unknown", "dpkg.lock.holder"):
        (bin_ / name).unlink(missing_ok=True)
    auth = reset_authorized_keys(TEST_USER, "")
    state = sshd.workdir / f"converge-state-{time.monotonic_ns()}"
    yield bin_, auth, state
    auth.unlink(missing_ok=True)


def props(server, state: Path, **params: str) -> dict:
    spec = FEATURES["converge"]
    return {
        "host": "127.0.0.1", "port": server.port, "username": "root",
        "private_key": server.client_key, "host_keys": [server.host_key_line],
        "feature": "converge",
        "params": {"user": TEST_USER, "state_dir": str(state), **params},
        "triggers": [], "sudo": False,  # root: sudo's secure_path would drop the stand-ins
        "connect_timeout_s": 10, "run_timeout_s": 120,
        "marker_dir": str(server.workdir / "markers"),
        "script_hash": spec.script_hash(), "provider_version": "1",
        "exit_code": None, "stdout_tail": None, "changes": None, "marker": None,
    }


def apt_calls(bin_: Path) -> list[str]:
    log = bin_ / "apt-get.log"
    return log.read_text().splitlines() if log.exists() else []


def login(server, key: str) -> SshTarget:
    return SshTarget("127.0.0.1", TEST_USER, key, (server.host_key_line,), port=server.port,
                     connect_deadline_s=5)


def test_converge_is_internal_and_checks_its_params():
    assert not [p for p in check_feature("converge", {"packages": "htop jq=1.6-2.1"})]
    assert check_feature("converge", {"packages": "htop; reboot"})
    assert check_feature("converge", {"timezone": "../../etc/passwd"})
    assert "converge" not in check_feature("dockr", {})[0]  # not offered to the config


def test_packages_install_once_then_nothing_runs(sshd, host, monkeypatch):
    import phoenix.features.provider as provider_module

    warned: list[str] = []
    monkeypatch.setattr(provider_module, "pulumi_warn", warned.append)
    bin_, _auth, state = host
    _, login_public = keygen(sshd.workdir / f"login-{time.monotonic_ns()}")
    provider = FeatureProvider()
    first = props(sshd, state, packages="bash htop", keys=login_public, login_key=login_public)
    created = provider.create(first)
    assert created.outs["changes"] == 2  # keys written, htop installed (bash already was)
    calls = apt_calls(bin_)
    assert [c.split()[-1] for c in calls] == ["update", "htop"]
    install = calls[1]
    assert "-o DPkg::Lock::Timeout=300" in install and " -y" in f" {install}"
    assert "htop 1.0-standin" in (bin_ / "dpkg-db").read_text()

    # an unchanged up: the provider's diff is empty, nothing runs
    assert not provider.diff(created.id, created.outs, first).changes
    # run again anyway (a changed trigger): idempotent, no apt call at all
    again = provider.update(created.id, created.outs, {**first, "triggers": ["x"]}).outs
    assert again["changes"] == 0 and len(apt_calls(bin_)) == 2
    assert "all 2 package(s) already installed" in again["stdout_tail"]

    # one package added: only it is installed; one removed: left installed, and said so
    edited = {**first, "params": {**first["params"], "packages": "bash jq"}}
    assert provider.diff(created.id, again, edited).changes
    provider.update(created.id, again, edited)
    assert apt_calls(bin_)[-1].split()[-1] == "jq" and len(apt_calls(bin_)) == 4
    assert warned == ["[feature converge on 127.0.0.1] no longer in packages, left installed: "
                      "htop (remove by hand: sudo apt-get remove htop)"]
    assert "htop" in (bin_ / "dpkg-db").read_text()  # never removed


def test_a_package_that_does_not_exist_names_apts_cause(sshd, host):
    bin_, _auth, state = host
    (bin_ / "unknown").write_text("nosuchpkg-phoenix\n")
    _, login_public = keygen(sshd.workdir / f"login-{time.monotonic_ns()}")
    with pytest.raises(SshError) as info:
        FeatureProvider().create(props(sshd, state, packages="htop nosuchpkg-phoenix",
                                       keys=login_public, login_key=login_public))
    text = str(info.value)
    assert "installing htop nosuchpkg-phoenix failed (apt-get exit 100)" in text
    assert "E: Unable to locate package nosuchpkg-phoenix" in text
    assert "htop" not in (bin_ / "dpkg-db").read_text()


def test_apt_lock_held_by_another_process_is_waited_for_then_named(sshd, host):
    bin_, _auth, state = host
    _, login_public = keygen(sshd.workdir / f"login-{time.monotonic_ns()}")
    base = props(sshd, state, packages="htop", keys=login_public, login_key=login_public,
                 lock_timeout_s="3")
    provider = FeatureProvider()
    # another apt holds the lock for longer than the bound: the run fails after ~3 s, saying so
    # (its own session: flock's child `sleep` holds the lock too and must die with it)
    holder = subprocess.Popen(["flock", str(bin_ / "dpkg.lock"), "sleep", "30"],
                              start_new_session=True)
    try:
        time.sleep(0.3)
        (bin_ / "dpkg.lock.holder").write_text(str(holder.pid))
        started = time.monotonic()
        with pytest.raises(SshError) as info:
            provider.create(base)
        waited = time.monotonic() - started
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    text = str(info.value)
    assert 3 <= waited < 25, waited
    assert f"It is held by process {holder.pid} (apt-get)" in text
    assert "held the lock for more than 3 s" in text and "next `pulumi up` tries again" in text

    # a lock released within the bound: the install waits for it and goes through
    holder = subprocess.Popen(["flock", str(bin_ / "dpkg.lock"), "sleep", "1.5"])
    try:
        time.sleep(0.3)
        created = provider.create({**base, "params": {**base["params"], "lock_timeout_s": "20"}})
    finally:
        holder.wait()
    assert created.outs["changes"] >= 1 and "htop" in (bin_ / "dpkg-db").read_text()


def test_keys_become_exactly_the_list_with_options_and_phoenix_is_never_locked_out(sshd, host,
                                                                                    tmp_path):
    bin_, auth, state = host
    login_private, login_public = keygen(tmp_path / "phoenix")
    admin_private, admin_public = keygen(tmp_path / "admin")
    far_private, far_public = keygen(tmp_path / "far")
    block = ("# BEGIN phoenix managed keys (do not edit inside this block)\n"
             "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlockKeyOfTheFeature block@feature\n"
             "# END phoenix managed keys\n")
    auth.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHandAdded old@laptop\n" + block)
    keys = f"{OPTIONS_OK} {admin_public}\n{OPTIONS_ELSEWHERE} {far_public}"
    # the login key is left out of the list on purpose: the step adds it back
    provider = FeatureProvider()
    params = props(sshd, state, keys=keys, login_key=login_public)
    created = provider.create(params)
    text = auth.read_text()
    assert text == (f"{OPTIONS_OK} {admin_public}\n{OPTIONS_ELSEWHERE} {far_public}\n"
                    f"{login_public}\n" + block)  # hand-added key gone, feature's block kept
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    assert created.outs["changes"] == 1

    # the options reached sshd intact: command= forces the command, from= refuses elsewhere
    assert run_script(login(sshd, admin_private), "echo not-this").stdout == "forced-by-option\n"
    with pytest.raises(SshError) as refused:
        run_script(login(sshd, far_private), "true")
    assert refused.value.step == "auth"
    assert run_script(login(sshd, login_private), "echo phoenix-in").stdout == "phoenix-in\n"

    again = provider.update(created.id, created.outs, {**params, "triggers": ["y"]}).outs
    assert again["changes"] == 0 and auth.read_text() == text

    # an empty list still keeps Phoenix's own key (never locked out)
    emptied = {**params, "params": {**params["params"], "keys": ""}}
    provider.update(created.id, again, emptied)
    assert auth.read_text() == f"{login_public}\n" + block


def test_timezone_is_set_once(sshd, host):
    bin_, _auth, state = host
    _, login_public = keygen(sshd.workdir / f"login-{time.monotonic_ns()}")
    provider = FeatureProvider()
    params = props(sshd, state, keys=login_public, login_key=login_public,
                   timezone="Europe/Berlin")
    created = provider.create(params)
    assert (bin_ / "timezone").read_text().strip() == "Europe/Berlin"
    assert "timezone Etc/UTC -> Europe/Berlin" in created.outs["stdout_tail"]
    provider.update(created.id, created.outs, {**params, "triggers": ["z"]})
    assert (bin_ / "timedatectl.log").read_text().splitlines() == ["Europe/Berlin"]


def test_values_are_never_shell(sshd, host, tmp_path):
    """Key lines travel as environment, quoted: `$(...)` and quotes in a key's options or
    comment are text, not commands."""
    _bin, auth, state = host
    _, login_public = keygen(tmp_path / "phoenix")
    canary = tmp_path / "canary"
    evil = f'command="echo $(touch {canary})" {login_public.split(" ", 2)[0]} ' \
           f"{login_public.split(' ', 2)[1]} it's `touch {canary}`"
    FeatureProvider().create(props(sshd, state, keys=evil, login_key=login_public))
    assert not canary.exists()
    assert evil in auth.read_text().splitlines()


def test_an_unreachable_vm_fails_its_own_update_with_the_reason(sshd, host):
    _bin, _auth, state = host
    base = props(sshd, state, packages="htop")
    gone = {**base, "port": 1, "connect_timeout_s": 2}
    with pytest.raises(SshError) as info:
        FeatureProvider().update("id", {**base, "marker": "m"}, gone)
    assert info.value.step == "connect" and "127.0.0.1:1" in str(info.value)
    # refresh keeps the state; destroy opens no connection at all (no delete script)
    assert FeatureProvider().read("id", {**gone, "marker": "m"}).outs["marker"] == "m"
    FeatureProvider().delete("id", gone)


def test_a_first_boot_only_edit_warns_naming_the_vm_field_and_rebuild(sshd, host, monkeypatch):
    """network_config.dns cannot converge: the step's update says so (and changes nothing)."""
    import phoenix.features.provider as provider_module
    from phoenix.config import build_config
    from phoenix.features.first_boot_only import first_boot_only

    warned: list[str] = []
    monkeypatch.setattr(provider_module, "pulumi_warn", warned.append)
    _bin, _auth, state = host
    _, login_public = keygen(sshd.workdir / f"login-{time.monotonic_ns()}")
    doc = {"defaults": {"node": "pve", "user": {"name": "phoenix"},
                        "network_config": {"gateway": "10.0.0.1", "dns": ["10.0.0.1"]}},
           "vms": [{"vmid": 8001, "name": "web-01", "clone_from": 9000,
                    "network_config": {"ip": "10.0.0.5/24"}}]}
    before = first_boot_only(build_config(doc).vms[0])
    doc["vms"][0]["network_config"]["dns"] = ["10.0.0.53"]
    after = first_boot_only(build_config(doc).vms[0])
    old = props(sshd, state, keys=login_public, login_key=login_public, first_boot=before)
    provider = FeatureProvider()
    created = provider.create(old)
    new = {**old, "params": {**old["params"], "first_boot": after}}
    assert provider.diff(created.id, created.outs, new).changes
    logins = sshd.stderr_path.read_text().count("Accepted publickey")
    out = provider.update(created.id, created.outs, new).outs
    # recorded, not run: no login at all (a stopped VM cannot fail a warning-only edit)
    assert sshd.stderr_path.read_text().count("Accepted publickey") == logins
    assert out["params"]["first_boot"] == after and out["marker"] == created.outs["marker"]
    assert not provider.diff(created.id, out, new).changes
    assert warned == [
        'VM 8001 (web-01): network_config.dns changed to ["10.0.0.53"] but only the VM\'s first '
        "boot applies it; the running VM keeps its value until it is rebuilt: set \"edits\": "
        '"rebuild" (old spelling recreate_on_cloud_init_change: true), or `pulumi up --replace '
        "<the VM's URN>` (docs/edits.md)"]
