"""Pinned host keys: parsed from "type base64" lines or known_hosts text, checked exactly.

Never trust-on-first-use: a server whose key is not pinned is refused with both fingerprints,
so a man in the middle (or a rebuilt VM whose keys nobody re-read) cannot be mistaken for the
host. Pins come from the readiness resource (keys read through the guest agent) or from config.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

import paramiko

from phoenix.remote.keys import fingerprint

# Key types paramiko can verify; the value lists the host-key algorithms that sign with it
# (RSA keys are offered under the SHA-2 signature names).
KEY_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


class HostKeyFormatError(ValueError):
    pass


@dataclass(frozen=True)
class PinnedKey:
    key_type: str
    blob: bytes  # the key's wire encoding (what the fingerprint hashes)

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")


def _parse_key(key_type: str, b64: str, where: str) -> PinnedKey:
    if key_type not in KEY_ALGORITHMS:
        raise HostKeyFormatError(f"{where}: unsupported host key type {key_type!r}")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise HostKeyFormatError(f"{where}: the key is not valid base64") from None
    # The blob starts with its own type name: catches a key pasted under the wrong type.
    try:
        embedded = paramiko.Message(blob).get_text()
    except Exception:  # noqa: BLE001 - any parse failure means a malformed blob
        raise HostKeyFormatError(f"{where}: the key blob is malformed") from None
    if embedded != key_type:
        raise HostKeyFormatError(f"{where}: key says {embedded!r}, line says {key_type!r}")
    return PinnedKey(key_type, blob)


def _host_matches(pattern_field: str, host: str, port: int) -> bool:
    names = {host if port == 22 else f"[{host}]:{port}"}
    for pattern in pattern_field.split(","):
        if pattern.startswith("|1|"):  # hashed entry: |1|salt|HMAC-SHA1(salt, name)
            try:
                _, _, salt_b64, hash_b64 = pattern.split("|")
                salt = base64.b64decode(salt_b64)
                want = base64.b64decode(hash_b64)
            except (ValueError, binascii.Error):
                continue
            for name in names:
                if hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), want):
                    return True
        elif pattern in names:
            return True
    return False


def parse_pinned_keys(entries: Iterable[str] | str, host: str | None = None,
                      port: int = 22) -> list[PinnedKey]:
    """Pinned keys from "type base64 [comment]" lines and/or known_hosts lines.

    `entries` is a list of lines or one text. known_hosts lines (with a host field) count only
    when they name `host` (plain, "[host]:port" or hashed); "@revoked" lines and
    "@cert-authority" lines are rejected, because silently ignoring them would weaken the pin.
    """
    lines: list[str] = []
    for entry in [entries] if isinstance(entries, str) else list(entries):
        lines.extend(entry.splitlines())
    pinned: list[PinnedKey] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"host key line {number}"
        fields = line.split()
        if fields[0].startswith("@"):
            raise HostKeyFormatError(f"{where}: {fields[0]} entries are not supported")
        if fields[0] in KEY_ALGORITHMS or fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
            if len(fields) < 2:
                raise HostKeyFormatError(f"{where}: expected 'TYPE BASE64 [comment]'")
            key_type, b64 = fields[0], fields[1]
        elif len(fields) < 3:
            raise HostKeyFormatError(f"{where}: expected 'HOSTS TYPE BASE64' (known_hosts)")
        elif host is None or _host_matches(fields[0], host, port):
            key_type, b64 = fields[1], fields[2]
        else:
            continue
        # A host also offering a type paramiko cannot verify (ssh-dss, sk-*) is fine as long
        # as another pin matches: skip it; with no usable pin left, connect refuses.
        if key_type in KEY_ALGORITHMS:
            pinned.append(_parse_key(key_type, b64, where))
    return pinned


def check_host_key_lines(entries: Iterable[str] | str) -> list[str]:
    """Problems in a config's pinned host keys (for validators); empty when usable."""
    try:
        keys = parse_pinned_keys(entries)
    except HostKeyFormatError as exc:
        return [str(exc)]
    return [] if keys else ["no host key given"]


def matches(pinned: Iterable[PinnedKey], server_key: paramiko.PKey) -> bool:
    blob = server_key.asbytes()
    return any(hmac.compare_digest(p.blob, blob) for p in pinned)


def mismatch_detail(pinned: list[PinnedKey], server_key: paramiko.PKey) -> str:
    expected = ", ".join(f"{p.key_type} {p.fingerprint}" for p in pinned) or "none"
    return (f"host key mismatch: server presented {server_key.get_name()} "
            f"{fingerprint(server_key)}, pinned: {expected}; refusing to continue")


def preferred_algorithms(pinned: Iterable[PinnedKey], available: Iterable[str]) -> list[str]:
    """Host-key algorithms to offer: only those of pinned types, so the server cannot pick
    a key type we have no pin for (which would look like a mismatch)."""
    wanted: list[str] = []
    for p in pinned:
        for algo in KEY_ALGORITHMS[p.key_type]:
            if algo not in wanted:
                wanted.append(algo)
    available = list(available)
    return [a for a in wanted if a in available]
