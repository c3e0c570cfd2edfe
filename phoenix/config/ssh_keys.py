"""Public key lines as sshd reads them: `[OPTIONS] TYPE BASE64 [COMMENT]`, the blob parsed.

One parser for every place that takes a public key (`user.ssh_authorized_keys`, the
`authorized-keys` feature's `keys`, `render --extra-key`), so a key cut short, a blob of another
type or an options field that sshd would refuse is caught before a VM gets it.

What sshd does, read in openssh-portable:
- `authfile.c` `sshkey_advance_past_options`: the options field runs to the first space or tab
  outside double quotes (`\\"` inside quotes is an escaped quote); an unterminated quote fails.
- `auth-options.c` `sshauthopt_parse`: options are comma-separated, each a known flag or a known
  `name="value"` (`opt_dequote`: the value is in double quotes, `\\"` the only escape); an
  unknown option or trailing garbage refuses the whole line.
- `sshkey.c` `sshkey_from_blob_internal`: the blob is SSH wire format (RFC 4251 strings and
  mpints) starting with the key type, which must match the line's type; trailing bytes fail.

A line that could break out of itself (CR, LF, NUL or any other control character) is refused:
the line ends up in authorized_keys and in cloud-init YAML.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

# Key types sshd accepts in authorized_keys (OpenSSH 8.x-9.x; ssh-dss is disabled by default
# since 9.8 and not offered).
SSH_KEY_TYPES = frozenset({
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
})

# auth-options.c: the flags and the options that take a quoted value.
OPTION_FLAGS = frozenset({
    "agent-forwarding", "no-agent-forwarding", "cert-authority", "no-port-forwarding",
    "port-forwarding", "no-pty", "pty", "no-user-rc", "user-rc", "no-x11-forwarding",
    "x11-forwarding", "no-touch-required", "touch-required", "verify-required", "restrict",
})
OPTION_VALUES = frozenset({
    "command", "environment", "expiry-time", "from", "permitlisten", "permitopen",
    "principals", "tunnel",
})

_EC_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
RSA_MIN_BITS = 1024  # sshd's SSH_RSA_MINIMUM_MODULUS_SIZE


# The example config ships this instead of a key: a key that is not the user's must never reach
# a VM by default. `phoenix init --admin-key FILE.pub` replaces it in the file.
KEY_PLACEHOLDER = "<your SSH public key: phoenix init --admin-key ~/.ssh/id_ed25519.pub writes it here>"
FIX_PLACEHOLDER = ".venv/bin/python -m phoenix init --admin-key ~/.ssh/id_ed25519.pub"


def is_placeholder(value: object) -> bool:
    """A `<...>` value: the example's stand-in for something only the user can supply."""
    return isinstance(value, str) and value.strip().startswith("<") and value.strip().endswith(">")


class KeyLineError(ValueError):
    """Why a line is not a usable public key line (the message never repeats the key)."""


@dataclass(frozen=True)
class PublicKeyLine:
    options: str  # "" or the options field as written, e.g. 'from="10.0.0.0/8",no-pty'
    key_type: str
    blob_b64: str
    comment: str

    @property
    def key(self) -> str:
        """`TYPE BASE64`: the key itself, what identifies it whatever its options and comment."""
        return f"{self.key_type} {self.blob_b64}"

    def line(self) -> str:
        """The normalised line: single spaces between fields."""
        return " ".join(p for p in (self.options, self.key_type, self.blob_b64, self.comment) if p)


def parse_public_key_line(line: str, allow_options: bool = True) -> PublicKeyLine:
    """The parsed line; raises KeyLineError saying what is wrong."""
    if not isinstance(line, str):
        raise KeyLineError(f"expected a string, got {type(line).__name__}")
    if any(ch in line for ch in "\r\n"):
        raise KeyLineError("an SSH public key must be a single line")
    if any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7F for ch in line):
        raise KeyLineError("control characters are not allowed in a public key line")
    if "PRIVATE KEY" in line:
        raise KeyLineError("this is a private key, not a public key line "
                           "(never put private keys in the config)")
    text = line.strip()
    options = ""
    first = text.split(None, 1)[0] if text else ""
    if first and first not in SSH_KEY_TYPES and allow_options:
        options, text = _options_field(text)
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise KeyLineError("not an SSH public key line (expected '[options] TYPE BASE64 [comment]')")
    key_type, blob_b64 = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type not in SSH_KEY_TYPES:
        raise KeyLineError(f"unknown SSH key type {key_type[:40]!r} "
                           f"(expected one of {', '.join(sorted(SSH_KEY_TYPES))})")
    _check_blob(key_type, blob_b64)
    return PublicKeyLine(options, key_type, blob_b64, comment)


def public_key_problem(line: str, allow_options: bool = True) -> str | None:
    """None when `line` is a usable public key line, else why not (for the config checks)."""
    try:
        parse_public_key_line(line, allow_options)
    except KeyLineError as exc:
        return str(exc)
    return None


def _options_field(text: str) -> tuple[str, str]:
    """(options, rest) when `text` starts with an options field in front of a key type, else
    ("", text): then the first word is reported as an unknown key type."""
    first = text.split(None, 1)[0]
    try:
        options, rest = _split_options(text)
    except KeyLineError:
        if "=" in first or "," in first:
            raise
        return "", text
    if not rest.split()[:1] or rest.split()[0] not in SSH_KEY_TYPES:
        return "", text
    _check_options(options)
    return options, rest


def _split_options(text: str) -> tuple[str, str]:
    quoted = False
    i = 0
    while i < len(text) and (quoted or text[i] not in " \t"):
        if text[i] == "\\" and text[i + 1:i + 2] == '"':
            i += 1
        elif text[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise KeyLineError("the options field has an unterminated quote")
    return text[:i], text[i:].strip()


def _check_options(options: str) -> None:
    i = 0
    while i < len(options):
        name_end = i
        while name_end < len(options) and options[name_end] not in ',="':
            name_end += 1
        name = options[i:name_end].lower()
        if name in OPTION_FLAGS:
            i = name_end
        elif name in OPTION_VALUES:
            if options[name_end:name_end + 2] != '="':
                raise KeyLineError(f'option {name!r} needs a quoted value ({name}="...")')
            j = name_end + 2
            while j < len(options) and options[j] != '"':
                j += 2 if options[j] == "\\" and options[j + 1:j + 2] == '"' else 1
            if j >= len(options):
                raise KeyLineError(f"option {name!r}: unterminated quote")
            i = j + 1
        else:
            raise KeyLineError(f"unknown authorized_keys option {options[i:name_end][:40]!r} "
                               "(sshd would refuse the whole line)")
        if i == len(options):
            return
        if options[i] != ",":
            raise KeyLineError(f"options must be separated by ',' (at {options[i:i + 20]!r})")
        i += 1
    raise KeyLineError("the options field ends with ','")


def _check_blob(key_type: str, blob_b64: str) -> None:
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLineError("the key data is not valid base64") from None
    reader = _Wire(blob)
    try:
        embedded = reader.string()
        name = embedded.decode("ascii")
    except (_Short, UnicodeDecodeError):
        raise KeyLineError("the key data is not an SSH public key (cut short?)") from None
    if name != key_type:
        raise KeyLineError(f"the key data is a {name[:40]!r} key but the line says {key_type!r}")
    try:
        _check_fields(key_type, reader)
    except _Short:
        raise KeyLineError(f"the {key_type} key data is cut short (copy the whole line "
                           "from the .pub file)") from None
    if reader.left():
        raise KeyLineError(f"the {key_type} key data has {reader.left()} extra byte(s) at the end")


def _check_fields(key_type: str, reader: _Wire) -> None:
    if key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        if len(reader.string()) != 32:
            raise KeyLineError("an ed25519 key must hold 32 bytes")
    elif key_type == "ssh-rsa":
        exponent, modulus = reader.string(), reader.string()
        if not exponent.lstrip(b"\0") or not modulus.lstrip(b"\0"):
            raise KeyLineError("the RSA key has an empty exponent or modulus")
        bits = int.from_bytes(modulus, "big").bit_length()
        if bits < RSA_MIN_BITS:
            raise KeyLineError(f"the RSA key has {bits} bits; sshd refuses fewer than {RSA_MIN_BITS}")
    else:  # the ECDSA types: curve name, then the uncompressed point
        curve = reader.string().decode("ascii", "replace")
        expected = key_type.split("-")[2].split("@")[0]
        if curve != expected:
            raise KeyLineError(f"the key data names curve {curve[:20]!r}, the line {expected!r}")
        point = reader.string()
        if len(point) != _EC_POINT_BYTES[curve] or point[:1] != b"\x04":
            raise KeyLineError(f"the {curve} point is not a valid public key")
    if key_type.startswith("sk-"):
        reader.string()  # the FIDO application, e.g. "ssh:"


class _Short(Exception):
    pass


class _Wire:
    """RFC 4251 section 5 strings: uint32 length, then the bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise _Short
        (length,) = struct.unpack(">I", self.data[self.pos:self.pos + 4])
        start, self.pos = self.pos + 4, self.pos + 4 + length
        if self.pos > len(self.data):
            raise _Short
        return self.data[start:self.pos]

    def left(self) -> int:
        return len(self.data) - self.pos
