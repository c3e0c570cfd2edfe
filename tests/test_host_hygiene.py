"""The end-of-run check of host_hygiene.py, in a pytest run of its own: a test that leaves a
user, a temp directory and a process behind fails the run (and they are removed); a clean run
passes. Needs root (useradd)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

LEAKY = '''
import os, subprocess, tempfile

def test_leaves_things_behind():
    subprocess.run(["useradd", "-M", f"phx{os.getpid()}-leak"], check=True)
    tempfile.mkdtemp(prefix=f"phoenix-leak-{os.getpid()}-")
    subprocess.Popen(["sleep", "300"])
'''
CLEAN = '''
import os, subprocess, tempfile, shutil

def test_cleans_up():
    subprocess.run(["useradd", "-M", f"phx{os.getpid()}-tidy"], check=True)
    subprocess.run(["userdel", f"phx{os.getpid()}-tidy"], check=True)
    shutil.rmtree(tempfile.mkdtemp(prefix=f"phoenix-tidy-{os.getpid()}-"))
    subprocess.run(["true"], check=True)
'''


UNTAGGED = '''
import subprocess

def test_makes_an_untagged_user():
    subprocess.run(["useradd", "-M", "phxuntagged"], check=True)
'''


def inner_run(tmp_path: Path, body: str, ci: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=str(TESTS), CI=ci)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "host_hygiene", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_inner.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("useradd needs root")


def test_leftovers_fail_the_run_and_are_removed(as_root, tmp_path):
    done = inner_run(tmp_path, LEAKY)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout  # the test itself passed: only the check failed the run
    assert "the tests left these on the host (now removed):" in done.stdout
    lines = done.stdout.splitlines()
    leaked_user = next(line.split()[1] for line in lines if line.strip().startswith("user phx"))
    assert leaked_user.endswith("-leak")
    assert any(f"file {tempfile.gettempdir()}/phoenix-leak-" in line for line in lines)
    process = next(line for line in lines if line.strip().startswith("process ") and "sleep 300" in line)
    pid = int(process.split()[1].rstrip(":"))
    # removed afterwards
    assert subprocess.run(["id", leaked_user], capture_output=True, check=False).returncode != 0
    assert not list(Path(tempfile.gettempdir()).glob(f"phoenix-leak-{leaked_user[3:].split('-')[0]}-*"))
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_clean_run_passes(as_root, tmp_path):
    done = inner_run(tmp_path, CLEAN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left these on the host" not in done.stdout


@pytest.mark.parametrize("ci", ["true", ""])
def test_untagged_newcomers_fail_under_ci_and_are_reported_elsewhere(as_root, tmp_path, ci):
    try:
        done = inner_run(tmp_path, UNTAGGED, ci=ci)
        assert "new on the host during the run, not tagged" in done.stdout
        assert "  user phxuntagged" in done.stdout
        assert done.returncode == (1 if ci else 0), done.stdout
        # not removed: it may be another run's
        assert subprocess.run(["id", "phxuntagged"], capture_output=True, check=False).returncode == 0
    finally:
        subprocess.run(["userdel", "phxuntagged"], capture_output=True, check=False)
