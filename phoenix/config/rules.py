"""Semantic rules the JSON Schema cannot express. Each returns a message or None."""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import zoneinfo

from phoenix.config.ssh_keys import public_key_problem

_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DEB_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PVE_TAG = re.compile(r"^[a-z0-9_][a-z0-9_+.-]*$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_SHELL = re.compile(r"^/[A-Za-z0-9_./-]+$")

RESERVED_USERS = frozenset({"root", "daemon", "bin", "sys", "nobody", "sshd"})


def hostname_problem(name: str) -> str | None:
    if not _HOST_LABEL.match(name):
        return (f"{name!r} is not a valid hostname: use 1-63 letters, digits and '-', "
                "not starting or ending with '-'")
    if name.isdigit():
        return f"{name!r} is not a valid hostname: it cannot be all digits"
    return None


def domain_problem(domain: str) -> str | None:
    labels = domain.rstrip(".").split(".")
    if len(domain) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"{domain!r} is not a valid DNS domain"
    return None


def ssh_public_key_problem(line: str) -> str | None:
    """`[options] TYPE BASE64 [comment]` with the blob parsed, as sshd reads it (ssh_keys.py)."""
    return public_key_problem(line)


def package_problem(name: str) -> str | None:
    if not _DEB_PACKAGE.match(name):
        return (f"{name!r} is not a package name (lowercase letters, digits, '+', '-', '.'; "
                "optionally '=VERSION')")
    return None


def user_problem(name: str) -> str | None:
    if not _UNIX_USER.match(name):
        return f"{name!r} is not a valid user name (lowercase, digits, '_' and '-', at most 32)"
    if name in RESERVED_USERS:
        return f"{name!r} is a system account; root login is off on every VM, pick another user"
    return None


def tag_problem(tag: str) -> str | None:
    if not _PVE_TAG.match(tag):
        return f"{tag!r} is not a valid Proxmox tag (lowercase letters, digits, '_', '-', '+', '.')"
    return None


def mac_problem(mac: str) -> str | None:
    if not _MAC.match(mac):
        return f"{mac!r} is not a MAC address (xx:xx:xx:xx:xx:xx)"
    if int(mac[:2], 16) & 1:
        return f"{mac!r} is a multicast address; a NIC needs a unicast one"
    return None


@functools.lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    # The IANA database of this machine (/usr/share/zoneinfo), or the `tzdata` package where the
    # system has none; the guest's own database has the same names.
    return frozenset(zoneinfo.available_timezones())


def timezone_problem(tz: str) -> str | None:
    """An IANA timezone name, e.g. Europe/Berlin or UTC (what cloud-init's `timezone` sets)."""
    zones = _timezones()
    if tz in zones:
        return None
    close = difflib.get_close_matches(tz, sorted(zones), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "e.g. UTC or Europe/Berlin"
    return f"{tz!r} is not a timezone of the IANA database ({hint})"


def shell_problem(shell: str) -> str | None:
    return None if _SHELL.match(shell) else f"{shell!r} is not an absolute path to a shell"


STATIC_IPV4_ONLY = ("every VM gets a static IPv4 address with prefix, e.g. 10.0.0.50/24 "
                    "(DHCP and IPv6 are not supported: the address is written into the VM's "
                    "network-config and is how Pulumi reaches it)")


def parse_interface(value: str) -> tuple[ipaddress.IPv4Interface | None, str | None]:
    """Parse `A.B.C.D/NN`; returns (interface, problem)."""
    if value.strip().lower() in ("dhcp", "dhcp4", "dhcp6", "auto", "") or ":" in value:
        return None, f"{value!r}: {STATIC_IPV4_ONLY}"
    if "/" not in value:
        return None, f"{value!r} needs a prefix length, e.g. {value}/24"
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as exc:
        return None, f"{value!r} is not an IPv4 address with prefix: {exc}"
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        kind = "network" if iface.ip == net.network_address else "broadcast"
        return None, f"{iface.ip} is the {kind} address of {net}; pick a host address"
    return iface, None


def parse_address(value: str) -> tuple[ipaddress.IPv4Address | None, str | None]:
    try:
        return ipaddress.IPv4Address(value), None
    except ValueError:
        v6 = " (IPv6 is not supported)" if ":" in value else ""
        return None, f"{value!r} is not an IPv4 address{v6}"


def derived_mac(vmid: int) -> str:
    """A stable, locally administered unicast MAC for a VM: 02:50:48 ('PH') + the vmid's low 24 bits.

    The network-config matches the NIC by this MAC, so it must not change between runs.
    """
    low = vmid & 0xFFFFFF
    return f"02:50:48:{low >> 16:02x}:{(low >> 8) & 0xFF:02x}:{low & 0xFF:02x}"
