"""The Debian mirror this machine's own apt uses, for building local guest images
(phoenix/localboot/image.py) and fetching a newer cloud-init (scripts/fetch-cloud-init.sh):
users behind a local mirror or an apt proxy get theirs, not a hard-coded public one.

Read from /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line format, sources.list(5))
and *.sources (deb822 format; `Enabled: no` entries skipped). The first `deb` entry with
component `main` for a Debian suite (a codename or stable/testing/unstable, optionally -updates or
-backports; never -security) wins, main suites before -updates/-backports. `$PHOENIX_DEBIAN_MIRROR`
overrides it; with none found, http://deb.debian.org/debian.

Standard library only and runnable as a script (`python3 apt_mirror.py` prints the mirror), so
the shell script can use it before any virtualenv exists.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"  # package debian-archive-keyring
ENV_MIRROR = "PHOENIX_DEBIAN_MIRROR"
DEBIAN_SUITES = frozenset({
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
})


def _debian_suite_rank(suite: str) -> int | None:
    """0 for a main suite, 1 for -updates/-backports, None when not a Debian archive suite."""
    if suite in DEBIAN_SUITES:
        return 0
    base, dash, suffix = suite.rpartition("-")
    return 1 if dash and suffix in ("updates", "backports") and base in DEBIAN_SUITES else None


def _one_line_entries(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"^deb\s+\[[^\]]*\]", "deb", line)  # [signed-by=... arch=...]
        words = line.split()
        if len(words) >= 4:
            entries.append((words[1], [words[2]], words[3:]))
    return entries


def _deb822_entries(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
                continue
            name, sep, value = raw.partition(":")
            if sep:
                key = name.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return entries


def host_debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str | None:
    """The mirror URI of this machine's apt sources (no trailing slash), or None."""
    files: list[tuple[Path, bool]] = [(etc_apt / "sources.list", False)]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted((p, p.suffix == ".sources") for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    best: tuple[int, int, str] | None = None
    order = 0
    for path, deb822 in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for uri, suites, components in (_deb822_entries(text) if deb822 else _one_line_entries(text)):
            order += 1
            if "main" not in components or "security" in uri:
                continue
            ranks = [r for r in (_debian_suite_rank(s) for s in suites) if r is not None]
            if ranks and uri.startswith(("http://", "https://", "file:/")):
                candidate = (min(ranks), order, uri.rstrip("/"))
                best = candidate if best is None or candidate < best else best
    return best[2] if best else None


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """$PHOENIX_DEBIAN_MIRROR, else this machine's own Debian mirror, else deb.debian.org."""
    return (os.environ.get(ENV_MIRROR) or host_debian_mirror(etc_apt) or DEFAULT_MIRROR).rstrip("/")


if __name__ == "__main__":
    print(debian_mirror(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/etc/apt")))
