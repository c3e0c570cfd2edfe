"""ZFS rules of the config layer: dataset names, property names and values, and the Pulumi
resource name of one property setting. The config loader checks with them; the ZFS provider
(phoenix/zfs) and the stack use them too, so the config layer imports nothing above it.

Values reach the node shell-quoted anyway; the checks exist so a typo fails at load time with a
message, not on the node halfway through a `pulumi up`, and so a name can never be read as an
option (`-r`) or name a snapshot (`pool/ds@snap`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_COMPONENT = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
_DATASET = re.compile(rf"^[A-Za-z][A-Za-z0-9_.:-]*(/{_COMPONENT})*$")
_USER_PROPERTY = re.compile(r"^[a-z0-9_.-]+:[a-z0-9_.:-]+$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50, "E": 2**60}

_ON_OFF = ("on", "off")
_COMPRESSION = (
    "on", "off", "lzjb", "zle", "lz4", "gzip", *(f"gzip-{n}" for n in range(1, 10)),
    "zstd", *(f"zstd-{n}" for n in range(1, 20)), "zstd-fast",
    *(f"zstd-fast-{n}" for n in (*range(1, 11), 20, 30, 40, 50, 60, 70, 80, 90, 100, 500, 1000)),
)


def parse_size(value: str) -> int | None:
    """Bytes in a ZFS size ("128K", "1.5G", "131072"); None when it is not a size."""
    match = _SIZE.match(value.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _enum(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}"
    return check


def _size(minimum: int = 0, power_of_two: bool = False, allow_none: bool = False,
          maximum: int | None = None) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if allow_none and value == "none":
            return None
        size = parse_size(value)
        if size is None:
            return "expected a size such as 128K or 10G" + (" or none" if allow_none else "")
        if size < minimum or (maximum is not None and size > maximum):
            return f"size out of range ({minimum}..{maximum if maximum else 'unbounded'} bytes)"
        if power_of_two and size & (size - 1):
            return "expected a power of two"
        return None
    return check


def _mountpoint(value: str) -> str | None:
    if value in ("none", "legacy") or value.startswith("/"):
        return None
    return "expected an absolute path, none or legacy"


# Settable native properties this tool manages, with a value check each. Others (creation-
# time ones like volblocksize, read-only ones like used) are refused on purpose.
NATIVE_PROPERTIES: dict[str, Callable[[str], str | None]] = {
    "compression": _enum(*_COMPRESSION),
    "atime": _enum(*_ON_OFF),
    "relatime": _enum(*_ON_OFF),
    "readonly": _enum(*_ON_OFF),
    "sync": _enum("standard", "always", "disabled"),
    "xattr": _enum("on", "off", "sa", "dir"),
    "dedup": _enum("on", "off", "verify", "sha256", "sha256,verify", "sha512",
                   "sha512,verify", "skein", "skein,verify", "blake3", "blake3,verify"),
    "checksum": _enum("on", "off", "fletcher2", "fletcher4", "sha256", "sha512", "skein",
                      "edonr", "blake3"),
    "primarycache": _enum("all", "none", "metadata"),
    "secondarycache": _enum("all", "none", "metadata"),
    "logbias": _enum("latency", "throughput"),
    "copies": _enum("1", "2", "3"),
    "recordsize": _size(512, power_of_two=True, maximum=16 * 2**20),
    "special_small_blocks": _size(0, maximum=16 * 2**20),
    "quota": _size(allow_none=True),
    "refquota": _size(allow_none=True),
    "reservation": _size(allow_none=True),
    "refreservation": _size(allow_none=True),
    "acltype": _enum("off", "noacl", "nfsv4", "posix", "posixacl"),
    "snapdir": _enum("hidden", "visible"),
    "canmount": _enum("on", "off", "noauto"),
    "mountpoint": _mountpoint,
    "redundant_metadata": _enum("all", "most", "some", "none"),
    "dnodesize": _enum("legacy", "auto", "1k", "2k", "4k", "8k", "16k"),
}
SIZE_PROPERTIES = {"recordsize", "special_small_blocks", "quota", "refquota", "reservation",
                   "refreservation"}


def check_zfs_property(dataset: str, prop: str, value: str) -> list[str]:
    """Problems with one `zfs` config entry (dataset, property, value); empty when usable."""
    problems: list[str] = []
    if not isinstance(dataset, str) or not _DATASET.match(dataset) or len(dataset) > 255 \
            or "//" in dataset or dataset.endswith("/"):
        problems.append(f"dataset {dataset!r}: expected POOL[/NAME...] (letters, digits, "
                        "_ . : -; no snapshots '@' or bookmarks '#')")
    if not isinstance(prop, str) or not prop:
        problems.append(f"property {prop!r}: expected a property name")
        return problems
    if not isinstance(value, str) or not value or len(value) > 1024 \
            or any(ord(c) < 32 or ord(c) == 127 for c in value):
        problems.append(f"{prop}: value {value!r} must be 1-1024 printable characters")
        return problems
    if ":" in prop:
        if not _USER_PROPERTY.match(prop):
            problems.append(f"user property {prop!r}: expected lower-case 'module:name'")
    elif prop in NATIVE_PROPERTIES:
        problem = NATIVE_PROPERTIES[prop](value)
        if problem:
            problems.append(f"{prop}={value!r}: {problem}")
    else:
        problems.append(f"property {prop!r} is not one this tool sets (known: "
                        f"{', '.join(sorted(NATIVE_PROPERTIES))}, or a user property 'x:y')")
    return problems


def normalize(prop: str, value: str) -> str:
    """The form `zfs get -p` prints, so desired and actual compare equal (128K == 131072)."""
    if prop in SIZE_PROPERTIES and value != "none":
        size = parse_size(value)
        if size is not None:
            return str(size)
    if prop in ("quota", "refquota", "reservation", "refreservation") and value in ("none", "0"):
        return "0"  # `zfs get -p` prints 0 for none
    return value


def zfs_resource_name(node: str, dataset: str, prop: str) -> str:
    """The Pulumi resource name of one ZFS property setting. Stable across runs: changing it would
    make Pulumi delete and re-create the setting. The loader rejects two settings that would get
    the same name (Pulumi refuses a duplicate URN, and '/' folds into '-', so `tank/vm-a` and
    `tank-vm/a` collide)."""
    return f"zfs-{node}-{dataset.replace('/', '-')}-{prop}"
