"""Feature catalog, the Docker and authorized-keys scripts, and the Feature provider's
create/diff/update/read/delete, against a real sshd (see ssh_fixtures.py).

Docker cannot be installed on this host, so the Docker feature runs with CLEARLY NAMED
STAND-INS first on the session's PATH: `apt-get` (records its arguments; "installing"
docker.io drops a stand-in `docker` next to itself). /usr/local/bin (which holds a real docker
client on some machines) is left off PATH. Groups and users are real: the test creates
`phx<run>-dev` and `phx<run>-dev-ops` and the `docker` group, and removes them afterwards
(the group only if it did not exist).
The real install runs in the qemu guest (test_localboot_realboot.py).
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from host_hygiene import run_user_name
from ssh_fixtures import TEST_USER, host_users, keygen, reset_authorized_keys, running_sshd

from phoenix.features.catalog import FEATURES, FeatureError, check_feature
from phoenix.features.provider import FeatureProvider, run_fingerprint
from phoenix.remote import SshError, SshTarget, run_script

# One name the prefix of the other, as "dev" and "dev-ops": a group check by word match mixes them up.
DEV, DEV_OPS = run_user_name("dev"), run_user_name("dev-ops")

STANDIN_APT_GET = """\
#!/bin/sh
# STAND-IN for apt-get (tests only): records its arguments; "install docker.io" puts a
# stand-in docker command next to this script, as the real package would put /usr/bin/docker.
echo "$*" >> "$(dirname "$0")/apt-get.log"
case "$*" in
  *" install "*docker.io*)
    cat > "$(dirname "$0")/docker" <<'EOS'
#!/bin/sh
# STAND-IN for docker (tests only)
echo "Docker version 0.0.0-standin, build test"
EOS
    chmod 755 "$(dirname "$0")/docker" ;;
esac
"""


GUARD_APT_GET = """\
#!/bin/sh
# GUARD (tests only): reached only when the stand-in apt-get in the sshd's directory is gone
# (e.g. removed by another run's cleanup). The real apt-get must never run from a test.
echo "test guard: the stand-in apt-get is missing; refusing to run the real apt-get" >&2
exit 97
"""


def guarded_path(tmp_path_factory) -> str:
    """Session PATH for the docker feature's tests: after the stand-in directory, a guard
    directory whose `apt-get` refuses, then the system directories. /usr/local/bin (a real
    docker client on some machines) stays off it. Once, on a shared machine, a stand-in
    directory vanished mid-test and the script installed docker.io on the host for real."""
    guard = tmp_path_factory.mktemp("apt-guard")
    (guard / "apt-get").write_text(GUARD_APT_GET)
    (guard / "apt-get").chmod(0o755)
    return f"{guard}:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    yield from running_sshd(["root", TEST_USER], path=guarded_path(tmp_path_factory))


@pytest.fixture
def docker_host(sshd):
    """Users DEV / DEV_OPS, group docker with only DEV_OPS, stand-in apt-get."""
    with host_users("dev", "dev-ops"):
        yield from _docker_group(sshd)


def _docker_group(sshd):
    group_existed = subprocess.run(["getent", "group", "docker"], check=False,
                                   capture_output=True).returncode == 0
    if not group_existed:
        subprocess.run(["groupadd", "--system", "docker"], check=True)
    for user in (DEV, DEV_OPS):
        subprocess.run(["gpasswd", "-d", user, "docker"], check=False, capture_output=True)
    subprocess.run(["gpasswd", "-a", DEV_OPS, "docker"], check=True, capture_output=True)
    apt_get = sshd.standin_bin / "apt-get"
    apt_get.write_text(STANDIN_APT_GET)
    apt_get.chmod(0o755)
    yield sshd
    for name in ("apt-get", "apt-get.log", "docker"):
        (sshd.standin_bin / name).unlink(missing_ok=True)
    for user in (DEV, DEV_OPS):
        subprocess.run(["gpasswd", "-d", user, "docker"], check=False, capture_output=True)
    if not group_existed:
        subprocess.run(["groupdel", "docker"], check=False)


def props_for(server, feature: str, params: dict[str, str], user: str = "root",
              marker_dir: Path | None = None) -> dict:
    spec = FEATURES[feature]
    return {
        "host": "127.0.0.1", "port": server.port, "username": user,
        "private_key": server.client_key, "host_keys": [server.host_key_line],
        "feature": feature, "params": params, "triggers": [],
        # Logged in as root: no sudo, whose secure_path would drop the stand-in PATH entry.
        "sudo": False if user == "root" else None,
        "connect_timeout_s": 10, "run_timeout_s": 60,
        "marker_dir": str(marker_dir or server.workdir / "markers"),
        "script_hash": spec.script_hash(), "provider_version": "1",
        "exit_code": None, "stdout_tail": None, "changes": None, "marker": None,
    }


def groups_of(user: str) -> list[str]:
    return subprocess.run(["id", "-nG", user], check=True, capture_output=True,
                          text=True).stdout.split()


# --- catalog --------------------------------------------------------------------------------

def test_check_feature_reports_every_problem():
    assert check_feature("docker", {}) == []
    assert check_feature("docker", {"user": "dev-ops"}) == []
    assert "unknown feature 'dockr'" in check_feature("dockr", {})[0]
    problems = check_feature("docker", {"user": "Dev Ops", "colour": "blue"})
    assert any("unknown parameter 'colour'" in p for p in problems)
    assert any("parameter 'user'" in p and "'Dev Ops'" in p for p in problems)
    assert check_feature("authorized-keys", {}) == [
        "feature 'authorized-keys': missing required parameter 'keys'"]
    bad = check_feature("authorized-keys", {"keys": "ssh-ed25519 AAAAC3Nz x\nnot a key"})
    assert bad == ["feature 'authorized-keys' parameter 'keys': line 1: the key data is not an SSH "
                   "public key (cut short?)",
                   "feature 'authorized-keys' parameter 'keys': line 2: unknown SSH key type 'not' (expected "
                   "one of ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, "
                   "sk-ecdsa-sha2-nistp256@openssh.com, sk-ssh-ed25519@openssh.com, ssh-ed25519, ssh-rsa)"]
    assert check_feature("docker", {"package": "docker-ce"})[0].endswith("is not one of docker.io")


def test_resolve_fills_defaults_and_rejects_bad_params():
    assert FEATURES["docker"].resolve({"user": "dev"}) == {"user": "dev", "package": "docker.io"}
    with pytest.raises(FeatureError):
        FEATURES["docker"].resolve({"user": "$(reboot)"})


def test_script_hash_covers_the_delete_script():
    spec = FEATURES["authorized-keys"]
    assert len(spec.script_hash()) == 64
    assert spec.script_hash() != FEATURES["docker"].script_hash()


# --- the Docker feature ---------------------------------------------------------------------

def test_seed_group_check_is_fooled_by_dev_ops(docker_host):
    # Why the original plan's check had to go: only DEV_OPS is in the group, yet it says DEV is.
    seed = subprocess.run(["bash", "-c", f'getent group docker | grep -q "\\b{DEV}\\b"'],
                          check=False)
    assert seed.returncode == 0
    assert "docker" not in groups_of(DEV)


def test_docker_feature_installs_once_then_changes_nothing(docker_host):
    provider = FeatureProvider()
    props = props_for(docker_host, "docker", {"user": DEV})
    group_before = subprocess.run(["getent", "group", "docker"], check=True, capture_output=True,
                                  text=True).stdout

    first = provider.create(props)
    outs = first.outs
    assert outs["exit_code"] == 0 and outs["changes"] == 2  # install + membership
    assert "installing docker.io" in outs["stdout_tail"]
    assert f"added user {DEV} to group docker" in outs["stdout_tail"]
    apt_log = (docker_host.standin_bin / "apt-get.log").read_text().splitlines()
    assert any(line.endswith("update -q") for line in apt_log)
    assert any(line.endswith("install -y -q docker.io") for line in apt_log)
    assert "docker" in groups_of(DEV) and "docker" in groups_of(DEV_OPS)
    group_after_first = subprocess.run(["getent", "group", "docker"], check=True,
                                       capture_output=True, text=True).stdout
    assert group_after_first != group_before

    # The same run again (a changed trigger forces it): nothing changes, and it says so.
    second = provider.update(first.id, outs, {**props, "triggers": ["again"]}).outs
    assert second["exit_code"] == 0 and second["changes"] == 0
    assert "docker: nothing to change" in second["stdout_tail"]
    assert "already installed (Docker version 0.0.0-standin" in second["stdout_tail"]
    assert f"user {DEV} already in group docker" in second["stdout_tail"]
    assert (docker_host.standin_bin / "apt-get.log").read_text().splitlines() == apt_log
    assert subprocess.run(["getent", "group", "docker"], check=True, capture_output=True,
                          text=True).stdout == group_after_first


def test_docker_feature_for_a_missing_user_fails_clearly(docker_host):
    props = props_for(docker_host, "docker", {"user": "phxnobody"})
    with pytest.raises(SshError) as info:
        FeatureProvider().create(props)
    assert info.value.step == "run" and info.value.exit_code == 3
    assert "user 'phxnobody' does not exist" in str(info.value)


def test_docker_feature_defaults_to_the_ssh_user(docker_host):
    # Logged in as root: "root" joins the group (root exists everywhere).
    try:
        outs = FeatureProvider().create(props_for(docker_host, "docker", {})).outs
        assert "docker" in groups_of("root")
        assert "added user root to group docker" in outs["stdout_tail"]
    finally:
        subprocess.run(["gpasswd", "-d", "root", "docker"], check=False, capture_output=True)


# --- the provider's lifecycle ---------------------------------------------------------------

def test_unchanged_inputs_diff_to_nothing_and_param_change_is_an_update(docker_host):
    provider = FeatureProvider()
    props = props_for(docker_host, "docker", {"user": DEV})
    created = provider.create(props)
    same = provider.diff(created.id, created.outs, props)
    assert same.changes is False
    changed = provider.diff(created.id, created.outs, {**props, "params": {"user": DEV_OPS}})
    assert changed.changes is True and changed.replaces == []
    new_script = provider.diff(created.id, created.outs, {**props, "script_hash": "0" * 64})
    assert new_script.changes is True and new_script.replaces == []
    other = provider.diff(created.id, created.outs, {**props, "feature": "authorized-keys"})
    assert other.replaces == ["feature"]


def test_read_reports_the_marker_and_a_lost_marker_reruns(docker_host):
    provider = FeatureProvider()
    props = props_for(docker_host, "docker", {"user": DEV})
    created = provider.create(props)
    marker_file = Path(props["marker_dir"]) / created.id
    assert marker_file.read_text().strip() == created.outs["marker"]
    assert created.outs["marker"] == run_fingerprint("docker", props["script_hash"],
                                                     {"user": DEV, "package": "docker.io"})
    read = provider.read(created.id, created.outs)
    assert read.outs["marker"] == created.outs["marker"]
    assert provider.diff(created.id, read.outs, props).changes is False

    marker_file.unlink()  # someone rebuilt the VM's disk, or cleaned /var/lib
    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["marker"] == ""
    assert provider.diff(created.id, refreshed.outs, props).changes is True
    rerun = provider.update(created.id, refreshed.outs, props).outs
    assert rerun["changes"] == 0 and marker_file.exists()

    logins = _accepted_logins(docker_host)
    provider.delete(created.id, rerun)
    # No delete script: nothing to undo, so no connection; the marker (a true record) stays.
    assert _accepted_logins(docker_host) == logins and marker_file.exists()


def _accepted_logins(server) -> int:
    return server.stderr_path.read_text().count("Accepted publickey")


def test_a_new_private_key_alone_updates_state_without_running(docker_host, monkeypatch):
    provider = FeatureProvider()
    props = props_for(docker_host, "docker", {"user": DEV})
    created = provider.create(props)

    def no_connection(*_a, **_k):
        raise AssertionError("update connected although only the key changed")

    monkeypatch.setattr("phoenix.features.provider.connect", no_connection)
    news = {**props, "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnew\n"}
    outs = provider.update(created.id, created.outs, news).outs
    assert outs["private_key"] == news["private_key"] and outs["marker"] == created.outs["marker"]


def test_check_reports_bad_params_as_failures():
    result = FeatureProvider().check({}, {"feature": "docker", "params": {"user": "A B"},
                                          "script_hash": FEATURES["docker"].script_hash()})
    assert [f.property for f in result.failures] == ["params"]


# --- the authorized-keys feature (key rotation without a rebuild) ---------------------------

def test_authorized_keys_feature_rotates_admin_keys(sshd, tmp_path):
    auth = reset_authorized_keys(TEST_USER, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPreExisting cloud-init-key\n")
    key_a, public_a = keygen(tmp_path / "admin_a")
    key_b, public_b = keygen(tmp_path / "admin_b")
    provider = FeatureProvider()
    props = props_for(sshd, "authorized-keys", {"keys": public_a, "user": TEST_USER})
    try:
        created = provider.create(props)
        assert created.outs["changes"] == 1
        text = auth.read_text()
        assert "PreExisting cloud-init-key" in text and public_a in text
        assert oct(auth.stat().st_mode & 0o777) == "0o600"
        login_a = SshTarget("127.0.0.1", TEST_USER, key_a, (sshd.host_key_line,), port=sshd.port)
        assert run_script(login_a, "echo in-with-a").stdout == "in-with-a\n"

        again = provider.update(created.id, created.outs, {**props, "triggers": ["x"]}).outs
        assert again["changes"] == 0 and "nothing to change" in again["stdout_tail"]

        rotated = provider.update(created.id, again, {**props, "params": {
            "keys": public_b, "user": TEST_USER}}).outs
        assert rotated["changes"] == 1
        text = auth.read_text()
        assert public_b in text and public_a not in text and "PreExisting" in text
        with pytest.raises(SshError) as info:
            run_script(login_a, "true")
        assert info.value.step == "auth"
        login_b = SshTarget("127.0.0.1", TEST_USER, key_b, (sshd.host_key_line,), port=sshd.port)
        assert run_script(login_b, "echo in-with-b").stdout == "in-with-b\n"

        provider.delete(created.id, rotated)
        assert auth.read_text() == textwrap.dedent("""\
            ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPreExisting cloud-init-key
            """)
    finally:
        auth.unlink(missing_ok=True)


def test_diff_and_update_compare_declared_inputs_only(monkeypatch):
    """`__provider` (and any key that is not an input) is never a reason to run the script."""
    props = {"host": "192.0.2.5", "port": 22.0, "username": "u", "private_key": "k",
             "host_keys": ["ssh-ed25519 AAAA"], "feature": "docker", "params": {"user": "-"},
             "sudo": None, "triggers": ["vm-id"], "connect_timeout_s": 300.0,
             "run_timeout_s": 1800.0, "marker_dir": "/var/lib/phoenix/features",
             "script_hash": FEATURES["docker"].script_hash(), "provider_version": "1"}
    marker = run_fingerprint("docker", props["script_hash"],
                             {"user": "-", "package": "docker.io"}, ["vm-id"])
    olds = {**props, "__provider": "blob-protocol-4", "marker": marker, "exit_code": 0,
            "stdout_tail": "", "changes": 0, "engine_added": "x"}
    news = {**props, "__provider": "blob-protocol-5"}
    provider = FeatureProvider()
    assert provider.diff("id", olds, news).changes is False

    def no_connection(*_a, **_k):
        raise AssertionError("update connected although no input changed")

    monkeypatch.setattr("phoenix.features.provider.connect", no_connection)
    monkeypatch.setattr("phoenix.remote.provider_glue.connect", no_connection)
    assert provider.update("id", olds, news).outs["marker"] == marker
    newer = {**news, "provider_version": "2"}
    assert provider.diff("id", olds, newer).changes is True  # recorded...
    assert provider.update("id", olds, newer).outs["provider_version"] == "2"  # ...not run


def test_the_real_apt_get_is_out_of_reach_without_the_stand_in(sshd):
    """Without docker_host's stand-in (e.g. removed under a running test), apt-get is the
    guard: the docker script fails instead of installing packages on the test machine."""
    target = SshTarget("127.0.0.1", "root", sshd.client_key, (sshd.host_key_line,),
                       port=sshd.port)
    with pytest.raises(SshError) as info:
        run_script(target, "apt-get install -y docker.io")
    assert info.value.exit_code == 97
    assert "refusing to run the real apt-get" in "\n".join(info.value.stderr_tail)


def test_a_vm_being_rebuilt_keeps_its_admin_keys_when_the_features_are_deleted_first(sshd, tmp_path, monkeypatch):
    """Issue 18 case 6: released CLIs run the features' delete before the VM's in a delete-first
    rebuild. For a VM in PHOENIX_REPLACING (set by `python -m phoenix up`) no delete script runs,
    so a VM whose delete then fails still has its admin keys."""
    auth = reset_authorized_keys(TEST_USER, "")
    _, public_a = keygen(tmp_path / "admin_a")
    provider = FeatureProvider()
    props = {**props_for(sshd, "authorized-keys", {"keys": public_a, "user": TEST_USER}), "triggers": ["8001"]}
    try:
        created = provider.create(props)
        assert public_a in auth.read_text()
        monkeypatch.setenv("PHOENIX_REPLACING", "8002,8001")
        provider.delete(created.id, created.outs)
        assert public_a in auth.read_text()  # kept
        monkeypatch.setenv("PHOENIX_REPLACING", "8002")  # another VM is rebuilt: undo as usual
        provider.delete(created.id, created.outs)
        assert public_a not in auth.read_text()
    finally:
        auth.unlink(missing_ok=True)
