"""scripts/setup-test-env.sh installs only the fast suite's packages with --fast, everything
without. Run with CLEARLY NAMED STAND-INS first on PATH: `dpkg-query` (answers "not installed"),
`apt-get` (records its arguments, installs nothing), and a virtualenv python whose `-m pip` is
recorded; nothing is installed on the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STANDINS = {
    "dpkg-query": "#!/bin/sh\n# STAND-IN for dpkg-query (tests only): nothing is installed\nexit 1\n",
    "apt-get": '#!/bin/sh\n# STAND-IN for apt-get (tests only): records its arguments\necho "$*" >> "$LOG"\n',
}
REALBOOT_ONLY = {"qemu-system-x86", "qemu-utils", "debootstrap", "fdisk", "e2fsprogs", "genisoimage"}


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup-test-env.sh", proj / "scripts")
    # STAND-IN for the cloud-init 25.1 fetch (its own test is the fast suite's schema check).
    (proj / "scripts" / "fetch-cloud-init.sh").write_text('echo "fetch-cloud-init $*" >> "$LOG"\n')
    (proj / "requirements-dev.txt").write_text("")
    bin_dir = tmp_path / "standin-bin"
    bin_dir.mkdir()
    for name, text in STANDINS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    venv_bin = proj / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(
        f'#!/bin/sh\n# STAND-IN for the virtualenv python (tests only)\necho "$*" >> "$LOG"\n'
        f'[ "$1" = "-m" ] && [ "$2" = "pip" ] && exit 0\nexec {sys.executable} "$@"\n')
    (venv_bin / "python").chmod(0o755)
    return proj, bin_dir


def installed_packages(project, *args: str) -> set[str]:
    proj, bin_dir = project
    log = proj / "calls.log"
    done = subprocess.run(["bash", str(proj / "scripts" / "setup-test-env.sh"), *args],
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    assert any("-m pip install -q --disable-pip-version-check -r requirements-dev.txt" in ln for ln in lines)
    assert "fetch-cloud-init trixie" in lines  # both suites check seeds with cloud-init 25.1 too
    installs = [ln for ln in lines if ln.startswith("install ")]
    assert len(installs) == 1
    return {word for word in installs[0].split() if not word.startswith("-")} - {"install"}


def test_fast_installs_only_what_the_fast_suite_needs(project):
    if os.geteuid() != 0:
        pytest.skip("the script installs apt packages only as root")
    fast = installed_packages(project, "--fast")
    assert fast == {"cloud-init", "openssh-server", "openssh-client", "sudo", "python3-venv", "debian-archive-keyring"}
    assert not fast & REALBOOT_ONLY


def test_without_fast_the_real_boot_packages_come_too(project):
    if os.geteuid() != 0:
        pytest.skip("the script installs apt packages only as root")
    full = installed_packages(project)
    assert REALBOOT_ONLY <= full and "cloud-init" in full
