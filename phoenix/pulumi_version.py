"""The oldest Pulumi CLI Phoenix supports: the one place that holds the number.

scripts/up.sh reads MIN_PULUMI_CLI from this file (sed), `python -m phoenix up` and
`python -m phoenix doctor` import it; README and docs/lifecycle.md name it.

Why 3.254.0 and not 3.207.0 (the first CLI with `replaceWith`, which readiness and features need
to follow a rebuilt VM): 3.254.0 fixes dangling `replaceWith` references in journaled state, and
every rebuild and every removal of a VM goes through those references. Both CLIs take
`pulumi preview --save-plan` and `pulumi up --plan` without PULUMI_EXPERIMENTAL (the `--plan`
flag is only hidden: pkg/cmd/pulumi/operations/up.go:771-778 at v3.207.0, :932-940 at v3.254.0;
preview writes the plan whenever --save-plan is given, also with --json:
pkg/cmd/pulumi/operations/preview.go:487,527-543 at v3.207.0).
"""

from __future__ import annotations

import re
import subprocess

MIN_PULUMI_CLI = "3.254.0"
VERSION_TIMEOUT_S = 30


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`v3.254.0` / `3.254.0-alpha.x` -> (3, 254, 0); anything else -> None."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def version_problem(text: str | None) -> str | None:
    """None when `pulumi version` printed a supported CLI, else what is wrong (one line)."""
    found = parse_version(text or "")
    if found is None or found < parse_version(MIN_PULUMI_CLI):  # type: ignore[operator]
        shown = (text or "").strip() or "(unknown version)"
        return (f"Pulumi CLI {shown} is too old: {MIN_PULUMI_CLI} or later is needed "
                "(replaceWith without dangling references; see README, Prerequisites)")
    return None


def cli_version(binary: str = "pulumi") -> str | None:
    """What `pulumi version` prints, or None when the CLI cannot be run."""
    try:
        done = subprocess.run([binary, "version"], capture_output=True, text=True, check=False,
                              timeout=VERSION_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
