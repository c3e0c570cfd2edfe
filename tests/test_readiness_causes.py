"""cause_lines: the lines of a first-boot log (or console) that name why it failed."""
# ruff: noqa: E501 (log samples are kept verbatim, long lines included)

from __future__ import annotations

from phoenix.readiness.causes import MAX_CAUSE_LINES, cause_lines

# Shaped like cloud-init 22.4's /var/log/cloud-init-output.log after a failed package install.
BAD_PACKAGE_LOG = """\
Cloud-init v. 22.4.2 running 'modules:config' at Wed, 02 Dec 2026 02:30:00 +0000. Up 40.1 seconds.
Hit:1 http://deb.debian.org/debian bookworm InRelease
Reading package lists...
Reading package lists...
Building dependency tree...
Reading state information...
E: Unable to locate package nosuchpkg
2026-12-02 02:30:01,000 - util.py[WARNING]: Failed to install packages: ['nosuchpkg']
2026-12-02 02:30:01,000 - cc_package_update_upgrade_install.py[WARNING]: 1 failed with exceptions, re-raising the last one
2026-12-02 02:30:01,001 - util.py[WARNING]: Running module package-update-upgrade-install (<module 'cloudinit.config.cc_package_update_upgrade_install'>) failed
Cloud-init v. 22.4.2 finished at Wed, 02 Dec 2026 02:30:09 +0000.
"""

FAILED_SCRIPT_LOG = """\
Setting up sysvinit-core (3.06-4) ...
dpkg: error processing package sysvinit-core (--configure):
 installed sysvinit-core package post-installation script subprocess returned error exit status 1
Errors were encountered while processing:
 sysvinit-core
E: Sub-process /usr/bin/dpkg returned an error code (1)
"""

NO_ROUTE_CONSOLE = """\
[   12.000000] cloud-init[301]: phoenix: guest agent: installing qemu-guest-agent from the package mirror (apt-get update, install) ...
[   35.000000] cloud-init[301]: Ign:1 http://deb.debian.org/debian bookworm InRelease
[   52.000000] cloud-init[301]: Err:1 http://deb.debian.org/debian bookworm InRelease
[   52.000000] cloud-init[301]:   Could not connect to deb.debian.org:80 (151.101.2.132), connection timed out
[   52.100000] cloud-init[301]: W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Could not connect to deb.debian.org:80 (151.101.2.132), connection timed out
[   52.200000] cloud-init[301]: W: Some index files failed to download. They have been ignored, or old ones used instead.
[   53.000000] cloud-init[301]: E: Unable to locate package qemu-guest-agent
[   53.100000] cloud-init[301]: phoenix: guest agent: FAILED to install qemu-guest-agent (exit 100): no agent
[   54.000000] systemd[1]: Started ssh.service - OpenBSD Secure Shell server.
"""


def test_a_missing_package_is_named():
    assert cause_lines(BAD_PACKAGE_LOG) == [
        "E: Unable to locate package nosuchpkg",
        "2026-12-02 02:30:01,000 - util.py[WARNING]: Failed to install packages: ['nosuchpkg']",
        "2026-12-02 02:30:01,001 - util.py[WARNING]: Running module package-update-upgrade-install "
        "(<module 'cloudinit.config.cc_package_update_upgrade_install'>) failed",
    ]


def test_a_failing_maintainer_script_is_named():
    causes = cause_lines(FAILED_SCRIPT_LOG)
    assert causes[0] == "dpkg: error processing package sysvinit-core (--configure):"
    assert "Errors were encountered while processing:" in causes
    assert causes[-1] == "E: Sub-process /usr/bin/dpkg returned an error code (1)"
    assert not any("Setting up" in line for line in causes)


def test_conflicting_packages_name_the_conflict():
    log = ("Reading state information...\n"
           "Some packages could not be installed. This may mean that you have\n"
           "The following packages have unmet dependencies:\n"
           " systemd-sysv : Conflicts: sysvinit-core but 3.06-4 is to be installed\n"
           " sysvinit-core : Conflicts: systemd-sysv but 252.39-1~deb12u2 is to be installed\n"
           "E: Unable to correct problems, you have held broken packages.\n")
    assert cause_lines(log) == [
        "The following packages have unmet dependencies:",
        "systemd-sysv : Conflicts: sysvinit-core but 3.06-4 is to be installed",
        "sysvinit-core : Conflicts: systemd-sysv but 252.39-1~deb12u2 is to be installed",
        "E: Unable to correct problems, you have held broken packages.",
    ]


def test_newer_cloud_init_names_the_package_it_left_out():
    # cloud-init 25.1: the package is never handed to apt; the log and `status --long` name it.
    log = ("Setting up htop (3.4.1-5) ...\n"
           "2026-12-02 02:52:35,113 - log_util.py[WARNING]: Failure when attempting to install "
           "packages: ['htop', 'phoenix-no-such-package']\n")
    status = ("status: error\nerrors:\n\t- ('package-update-upgrade-install', PackageInstallerError("
              "\"Failed to install the following packages: {'phoenix-no-such-package'}. See "
              "associated package manager logs for more details.\"))\n")
    assert cause_lines(log) == [log.splitlines()[1]]
    (line,) = cause_lines(status)
    assert "Failed to install the following packages: {'phoenix-no-such-package'}" in line


def test_console_lines_lose_their_prefix_and_name_the_unreachable_mirror():
    causes = cause_lines(NO_ROUTE_CONSOLE)
    assert causes[0] == ("Could not connect to deb.debian.org:80 (151.101.2.132), connection "
                         "timed out")
    assert "E: Unable to locate package qemu-guest-agent" in causes
    assert causes[-1].startswith("phoenix: guest agent: FAILED to install qemu-guest-agent")
    assert not any("installing qemu-guest-agent" in line or "Started ssh" in line
                   for line in causes)


def test_nothing_to_name_and_bounded_output():
    assert cause_lines("all fine\nSetting up htop (3.2.2-2) ...\n") == []
    many = "".join(f"E: error number {n}\n" for n in range(100))
    assert cause_lines(many) == [f"E: error number {n}" for n in range(MAX_CAUSE_LINES)]
    assert cause_lines("E: same\nE: same\n") == ["E: same"]
