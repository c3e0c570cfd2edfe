"""The readiness probe: the one guest-agent command that answers everything the wait needs
once cloud-init is over (cloud-init's status, the SSH host keys, the IPv4 addresses), and the
parsing of its output and of the separate reads a guest without `sh` or `ip` gets instead.
Fixed text only: no value from the config reaches the guest. The pacing and the stages that
use it are in phoenix/readiness/wait.py.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from phoenix.readiness.transport import NetworkInterface

HOST_KEYS_ARGV = ("sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub")
CLOUD_INIT_STATUS_ARGV = ("cloud-init", "status")
PROBE_KEYS_LINE = "--- phoenix: ssh host keys ---"
PROBE_ADDRESSES_LINE = "--- phoenix: ipv4 addresses ---"
# Fixed text (no value from the config): cloud-init's status and exit code first, then what the
# wait reads once it is over. `ip -o -4 addr show` prints one line per address.
#
# The probe answers from cloud-init's own files instead of starting `cloud-init status` (a
# Python process: ~3 s of a vCPU under emulation (measured), a fraction of that under KVM, at every poll of a first
# boot) when those files leave no doubt, by cloud-init's own rules (cloudinit/cmd/status.py,
# get_running_status and get_status_details, 22.4 and 25.1): /run/cloud-init/enabled (made by
# the generator when cloud-init runs); "not started" before the first stage wrote status.json
# (cloud-init's own answer then: a poll in the first seconds of a boot, when an early agent
# answers, must not add a Python start to the busiest moment); "running" while result.json is
# missing, "done" once it is there. Only when nothing could make the real command say
# otherwise: no error list and no recoverable-error map started in status.json or result.json
# (both written with json indent=1, so a non-empty one is `"errors": [` or
# `"recoverable_errors": {` at a line's end; grep must answer "no match", not "cannot read") and
# no failed cloud-init unit (25.1 reports those as errors). Anything else asks
# `cloud-init status` itself, so errors and "degraded" are still named by cloud-init.
_RUN = "/run/cloud-init"
_QUIET = ("quiet() { grep -qE '\"(errors\": \\[|recoverable_errors\": \\{)$' \"$@\" 2>/dev/null; "
          "[ $? -eq 1 ] && ! systemctl is-failed --quiet cloud-init-local.service "
          "cloud-init.service cloud-init-network.service cloud-config.service "
          "cloud-final.service 2>/dev/null; }; ")
PROBE_SCRIPT = (
    _QUIET
    + f"if [ -e {_RUN}/enabled ] && [ ! -e {_RUN}/status.json ] && [ ! -e {_RUN}/result.json ]; "
    "then echo 'status: not started'; rc=0; "
    f"elif [ -e {_RUN}/enabled ] && [ -e {_RUN}/status.json ] && quiet {_RUN}/status.json; then "
    f"if [ ! -e {_RUN}/result.json ]; then echo 'status: running'; rc=0; "
    f"elif quiet {_RUN}/result.json; then echo 'status: done'; rc=0; "
    "else cloud-init status; rc=$?; fi; "
    "else cloud-init status; rc=$?; fi; "
    f"echo '{PROBE_KEYS_LINE}'; cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null; "
    f"echo '{PROBE_ADDRESSES_LINE}'; ip -o -4 addr show 2>/dev/null; exit $rc")
PROBE_ARGV = ("sh", "-c", PROBE_SCRIPT)
# sh's "command not found": cloud-init is not installed in the guest.
EXIT_NOT_FOUND = 127


def parse_cloud_init_status(stdout: str) -> str:
    """The value of the `status:` line of `cloud-init status` ("" if there is none)."""
    match = re.search(r"^status:\s*(.+?)\s*$", stdout, re.MULTILINE)
    return match.group(1).strip().lower() if match else ""


@dataclass(frozen=True)
class ProbeAnswer:
    """The probe's output split in its parts. keys/addresses are None when the guest printed
    nothing for them (no such files, no `ip`): the wait then reads them the separate way."""

    status_text: str
    host_keys: tuple[str, ...] | None
    addresses: tuple[str, ...] | None


_INET = re.compile(r"\sinet\s+(\d{1,3}(?:\.\d{1,3}){3})/\d{1,2}\s")


def parse_probe(stdout: str) -> ProbeAnswer:
    """Split the probe's stdout at its marker lines (see PROBE_SCRIPT)."""
    status_text, _, rest = stdout.partition(PROBE_KEYS_LINE)
    keys_text, _, addresses_text = rest.partition(PROBE_ADDRESSES_LINE)
    keys = parse_host_keys(keys_text)
    inet = [m.group(1) for line in addresses_text.splitlines()
            if (m := _INET.search(line + " "))]
    return ProbeAnswer(status_text, keys or None, _non_loopback_ipv4(inet) if inet else None)


def ipv4_addresses(interfaces: Sequence[NetworkInterface]) -> tuple[str, ...]:
    """Every IPv4 address of the guest except loopback ones, in interface order."""
    return _non_loopback_ipv4(address.address for interface in interfaces
                              for address in interface.addresses
                              if address.family.lower() == "ipv4")


def _non_loopback_ipv4(candidates) -> tuple[str, ...]:
    """The valid, non-loopback IPv4 addresses among candidates, first occurrence kept, in order."""
    found: list[str] = []
    for candidate in candidates:
        try:
            ip = ipaddress.IPv4Address(candidate)
        except ValueError:
            continue
        if not ip.is_loopback and str(ip) not in found:
            found.append(str(ip))
    return tuple(found)


_KEY_LINE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com)\s+([A-Za-z0-9+/]+={0,2})(?:\s.*)?$"
)
# How many length-prefixed fields each key blob holds (type name included): RFC 4253 6.6,
# RFC 5656 3.1, RFC 8709 4, OpenSSH PROTOCOL.u2f.
_KEY_FIELDS = {"ssh-ed25519": 2, "ssh-rsa": 3, "ecdsa-sha2-nistp256": 3, "ecdsa-sha2-nistp384": 3,
               "ecdsa-sha2-nistp521": 3, "sk-ssh-ed25519@openssh.com": 3,
               "sk-ecdsa-sha2-nistp256@openssh.com": 4}


def _blob_fields(raw: bytes) -> list[bytes] | None:
    """The length-prefixed fields of an SSH key blob, or None if it does not split exactly."""
    fields, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            return None
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        if pos + 4 + length > len(raw):
            return None
        fields.append(raw[pos + 4:pos + 4 + length])
        pos += 4 + length
    return fields


def parse_host_keys(text: str) -> tuple[str, ...]:
    """OpenSSH public key lines -> ("type base64", ...), comment dropped. A line is kept only if
    its blob splits exactly into the fields its type has and names that type, so a truncated
    read or a mangled line never becomes a pinned host key."""
    keys: list[str] = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line.strip())
        if not match:
            continue
        kind, blob = match.groups()
        try:
            fields = _blob_fields(base64.b64decode(blob, validate=True))
        except ValueError:
            continue
        if not fields or len(fields) != _KEY_FIELDS[kind] or fields[0] != kind.encode():
            continue
        key = f"{kind} {blob}"
        if key not in keys:
            keys.append(key)
    return tuple(keys)
