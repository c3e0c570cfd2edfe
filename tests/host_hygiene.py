"""What the tests leave on the host: a check at the end of the run that fails it if any user,
group, temporary file or process made by the run is still there (and then removes it).

Everything the fixtures make on the host carries the run's tag (the pytest process id):
users `phx<tag>-ssh`, `phx<tag>-dev`, ..., the sshd's directory `phoenix-sshd-<tag>-*`. So
runs side by side on one machine (CI and a developer, several worktrees) neither collide nor
flag each other's things. Only what carries this run's tag, and this run's child processes, is
removed. Untagged newcomers (a `phx*` user, a `phoenix-*` temp entry, the `docker` group) that
appear during the run cannot be told apart from another run's: under CI (CI=true, one run on
the machine) they fail the run too; elsewhere they are only reported.

Used by tests/conftest.py; a run of its own with `-p host_hygiene` (tests/test_host_hygiene.py).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RUN_TAG = str(os.getpid())
USER_PREFIX = "phx"
TEMP_PREFIX = "phoenix-"
WATCHED_GROUPS = ("docker",)  # made by the feature tests when missing


def run_user_name(role: str) -> str:
    """A login name for this run: phx<tag>-<role> (e.g. phx4242-dev, phx4242-dev-ops)."""
    return f"{USER_PREFIX}{RUN_TAG}-{role}"


def temp_prefix(kind: str) -> str:
    return f"{TEMP_PREFIX}{kind}-{RUN_TAG}-"


def _tag_of(name: str) -> str | None:
    match = re.match(rf"^(?:{USER_PREFIX}|{TEMP_PREFIX}[a-z]+-)(\d+)-", name)
    return match.group(1) if match else None


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


@dataclass
class HostSnapshot:
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    temp: set[str] = field(default_factory=set)

    @classmethod
    def take(cls) -> HostSnapshot:
        tmp = Path(tempfile.gettempdir())
        return cls({p.pw_name for p in pwd.getpwall()}, {g.gr_name for g in grp.getgrall()},
                   {p.name for p in tmp.iterdir() if p.name.startswith(TEMP_PREFIX)})


@dataclass
class Leftovers:
    users: list[str]
    groups: list[str]
    temp: list[Path]
    processes: dict[int, str]
    unattributed: list[str] = field(default_factory=list)  # new, untagged: ours or another run's

    def __bool__(self) -> bool:
        return bool(self.users or self.groups or self.temp or self.processes)

    def lines(self) -> list[str]:
        return ([f"user {u}" for u in self.users] + [f"group {g}" for g in self.groups]
                + [f"file {p}" for p in self.temp]
                + [f"process {pid}: {cmd}" for pid, cmd in sorted(self.processes.items())])


def leftovers(before: HostSnapshot, own_pid: int | None = None) -> Leftovers:
    now = HostSnapshot.take()
    tmp = Path(tempfile.gettempdir())
    new_users = sorted(u for u in now.users - before.users if u.startswith(USER_PREFIX))
    new_groups = sorted(g for g in now.groups - before.groups if g.startswith(USER_PREFIX) or g in WATCHED_GROUPS)
    new_temp = sorted(now.temp - before.temp)
    ours = lambda name: _tag_of(name) == RUN_TAG  # noqa: E731
    untagged = lambda name: _tag_of(name) is None  # noqa: E731
    unattributed = ([f"user {u}" for u in new_users if untagged(u)]
                    + [f"group {g}" for g in new_groups if untagged(g)]
                    + [f"file {tmp / n}" for n in new_temp if untagged(n)])
    processes = {pid: _cmdline(pid) for pid in _descendants(own_pid or os.getpid())}
    return Leftovers(sorted({u for u in now.users if ours(u)}), [g for g in new_groups if ours(g)],
                     [tmp / n for n in new_temp if ours(n)], processes, unattributed)


def remove(left: Leftovers) -> None:
    for pid in left.processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
    for user in left.users:
        subprocess.run(["userdel", "-r", user], check=False, capture_output=True)
    for group in left.groups:
        subprocess.run(["groupdel", group], check=False, capture_output=True)
    for path in left.temp:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


_BEFORE = pytest.StashKey[HostSnapshot]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_BEFORE] = HostSnapshot.take()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_BEFORE, None)
    if before is None:
        return
    left = leftovers(before)
    strict = os.environ.get("CI", "").lower() in ("1", "true")
    lines = []
    if left:
        lines += ["the tests left these on the host (now removed):", *(f"  {line}" for line in left.lines())]
    if left.unattributed:
        lines += [("new on the host during the run, not tagged: left by a test?" if strict else
                   "new on the host during the run, not tagged (another run's, or a test's leak?):"),
                  *(f"  {line}" for line in left.unattributed)]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    if left:
        remove(left)
    if left or (strict and left.unattributed):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
