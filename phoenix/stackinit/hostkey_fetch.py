"""Read a node's SSH host keys over the network, for the user to confirm before they are pinned.

What comes back is only what the server *claims*: a man in the middle would show his own key.
So the keys are shown with their SHA256 fingerprints (compare with `ssh-keygen -lf
/etc/ssh/ssh_host_ed25519_key.pub` on the node's console) and pinned only after a yes, or when
the fingerprint the user gave on the command line matches. Nothing is trusted silently.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import paramiko

from phoenix.remote.keys import fingerprint
from phoenix.remote.ssh import NOT_SSH_HINT, is_banner_error, quiet_paramiko

# One handshake per type, strongest first; paramiko verifies all three.
HOST_KEY_ALGORITHMS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")
FETCH_TIMEOUT_S = 10.0


class HostKeyFetchError(Exception):
    pass


@dataclass(frozen=True)
class FetchedHostKey:
    line: str  # "ssh-ed25519 AAAA..." (what hostKeys holds)
    fingerprint: str  # "SHA256:..."


def fetch_host_keys(host: str, port: int = 22, timeout_s: float = FETCH_TIMEOUT_S) -> list[FetchedHostKey]:
    """Every host key the server offers among HOST_KEY_ALGORITHMS (no login is attempted)."""
    quiet_paramiko()
    found: list[FetchedHostKey] = []
    last_error = ""
    for algorithm in HOST_KEY_ALGORITHMS:
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise HostKeyFetchError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.get_security_options().key_types = [algorithm]
            # A server sends its identification at once (RFC 4253 4.2): no need to wait long.
            transport.banner_timeout = min(timeout_s, 5.0)
            transport.handshake_timeout = timeout_s
            transport.start_client(timeout=timeout_s)
            key = transport.get_remote_server_key()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            last_error = str(exc) or type(exc).__name__
            if is_banner_error(last_error):  # not an SSH server: the other types would wait too
                raise HostKeyFetchError(f"{host}:{port}: {NOT_SSH_HINT}") from None
            continue  # the server has no key of this type
        finally:
            transport.close()
        line = f"{key.get_name()} {key.get_base64()}"
        if all(f.line != line for f in found):
            found.append(FetchedHostKey(line, fingerprint(key)))
    if not found:
        raise HostKeyFetchError(f"{host}:{port} offered no usable SSH host key ({last_error})")
    return found
