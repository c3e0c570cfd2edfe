"""Private keys given as text (a Pulumi secret), never as a path, and their public halves."""

from __future__ import annotations

import base64
import hashlib
import io

import paramiko

# Tried in this order; paramiko has no "any type from a string" loader.
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)


class PrivateKeyError(ValueError):
    """The private key text could not be used. The message never contains the key."""


# Pulumi's key must be unencrypted: the same key goes to the proxmoxve provider for snippet
# uploads, and bpg's SSH client parses it without a passphrase (`proxmox/ssh/client.go`,
# createSSHClientWithPrivateKey: ssh.ParsePrivateKey). The stack secret is encrypted at rest.
ENCRYPTED_KEY_MESSAGE = (
    "the SSH private key is encrypted (it has a passphrase); Pulumi needs an unencrypted key, "
    "because the proxmoxve provider cannot use a passphrase. Make an unencrypted copy and store "
    "that as the stack secret (it stays encrypted in the stack): `cp KEY /tmp/phoenix-key && "
    "ssh-keygen -p -N '' -f /tmp/phoenix-key && pulumi config set --secret "
    "phoenix-hypervisor:sshPrivateKey < /tmp/phoenix-key && shred -u /tmp/phoenix-key`, or "
    "make a key just for Pulumi: `ssh-keygen -t ed25519 -N '' -f phoenix-key`"
)


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an OpenSSH or PEM private key held in a string (ed25519, ecdsa or rsa)."""
    if not isinstance(text, str) or "PRIVATE KEY" not in text:
        raise PrivateKeyError("the SSH private key is not a PEM/OpenSSH private key text")
    # Keys pasted through `pulumi config set --secret` often lose their final newline or gain
    # CRLFs; paramiko's parser wants neither.
    normalized = text.replace("\r\n", "\n").strip() + "\n"
    problems: list[str] = []
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(normalized), password=passphrase)
        except paramiko.PasswordRequiredException:
            if passphrase is None:
                raise PrivateKeyError(ENCRYPTED_KEY_MESSAGE) from None
            raise PrivateKeyError("the SSH private key could not be decrypted with the passphrase") from None
        except (paramiko.SSHException, ValueError, TypeError) as exc:
            # Only the exception class: paramiko messages can quote key material.
            problems.append(f"{cls.__name__}: {type(exc).__name__}")
    raise PrivateKeyError("the SSH private key is not a supported type (" + "; ".join(problems) + ")")


def public_key_line(private_key: str, comment: str = "phoenix-pulumi") -> str:
    """The authorized_keys line ("ssh-ed25519 AAAA... comment") of a private key text."""
    key = load_private_key(private_key)
    line = f"{key.get_name()} {key.get_base64()}"
    return f"{line} {comment}" if comment else line


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint ("SHA256:base64-without-padding")."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
