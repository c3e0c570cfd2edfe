"""Pick the lines of a first-boot log that name why it failed.

A blind tail of /var/log/cloud-init-output.log often ends in cloud-init's own summary ("Failed to
run module ...", a traceback) while apt's one useful line ("E: Unable to locate package x") sits
dozens of lines above it. `cause_lines` keeps the lines that say *what* failed: apt and dpkg
errors, fetch and name-resolution failures, cloud-init's per-module failures and the
"phoenix:" lines the guest-agent install writes. cloud-init 22.4 leaves a missing package to
apt ("E: Unable to locate package x"); 25.1 leaves it out of apt's call and names it itself
("Failed to install the following packages: {'x'}", in `cloud-init status --long`). The same
patterns serve the guest's serial console when the agent never answered (`phoenix.localboot`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_CAUSE_LINES = 20
MAX_LINE_CHARS = 300

# Ordered by how directly a pattern names a cause; every line that matches any of them is kept,
# in log order.
CAUSE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"^E: ",                                   # apt: Unable to locate package, held packages, ...
    r"^W: (Failed to fetch|Some index files)",  # apt: mirror unreachable
    r"dpkg: (error|dependency problems)",
    r"Errors were encountered while processing",
    r"Sub-process .* returned an error code",
    r"(has no installation candidate|Unable to locate package|unmet dependencies)",
    r"^\S+ : (Depends|Pre-?Depends|Conflicts|Breaks): ",  # apt: which package blocks which
    r"(Temporary failure resolving|Could not resolve|Could not connect to|No route to host|"
    r"Network is unreachable|Connection timed out)",
    r"Could not get apt lock",
    r"Failed to (install packages|run module|upgrade packages|update package)",
    # cloud-init >= 24: unavailable packages are left out of apt's call and reported by name
    r"(Failure when attempting to install packages|Failed to install the following packages)",
    r"Running module \S+ .*failed",
    r"\bphoenix: .*(FAILED|failed|could not)",
    r"^\S*(resize2fs|growpart|mkfs)\S*: ",  # a failing disk command names itself
))
# cloud-init's timestamps and source prefixes, kept out of the short form of a line.
_NOISE = re.compile(r"^(\[\s*\d+\.\d+\]\s*)?([\w.-]+\[\d+\]:\s*)?")


def cause_lines(text: str | Iterable[str], limit: int = MAX_CAUSE_LINES) -> list[str]:
    """The lines that name a cause, in order, each once (the first `limit`: the first error is
    usually the cause, later ones its consequences)."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    found: list[str] = []
    for raw in lines:
        line = _NOISE.sub("", raw.rstrip(), count=1).strip()
        if not line or len(line) > 4 * MAX_LINE_CHARS:
            continue
        if any(pattern.search(line) for pattern in CAUSE_PATTERNS):
            short = line[:MAX_LINE_CHARS]
            if short not in found:
                found.append(short)
    return found[:limit]
