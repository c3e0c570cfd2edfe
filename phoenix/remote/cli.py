"""`python -m phoenix ssh ...`: key helpers for operators.

    ssh public-key   print the authorized_keys line of the private key on stdin (or
                     $PHOENIX_SSH_PRIVATE_KEY), e.g. `pulumi config get --path
                     phoenix-hypervisor:sshPrivateKey | python -m phoenix ssh public-key`
    ssh rotate       move a VM from the old key to a new one (see phoenix.remote.rotate)

Key texts are read from files or environment variables, never from the command line (argv is
visible to every local user). Exit 0: done; 1: the remote step failed; 2: a bad key, host key,
file or option (nothing was tried on the host). Messages start with `error: `.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from phoenix.cli_support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from phoenix.remote.errors import SshError
from phoenix.remote.hostkeys import HostKeyFormatError, check_host_key_lines
from phoenix.remote.keys import PrivateKeyError, load_private_key, public_key_line
from phoenix.remote.rotate import rotate_key
from phoenix.remote.ssh import SshTarget

KEY_ENV = "PHOENIX_SSH_PRIVATE_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ssh_command", required=True)
    pub = sub.add_parser("public-key", help="print the public key line of a private key")
    pub.add_argument("--comment", default="phoenix-pulumi")
    rot = sub.add_parser("rotate", help="replace the SSH key on one VM without rebuilding it")
    rot.add_argument("--host", required=True)
    rot.add_argument("--port", type=int, default=22)
    rot.add_argument("--user", required=True)
    rot.add_argument("--host-key", action="append", default=[],
                     help="pinned host key line 'TYPE BASE64' (repeatable)")
    rot.add_argument("--known-hosts", type=Path, help="known_hosts file with the host's key")
    rot.add_argument("--old-key-file", type=Path, help=f"default: ${KEY_ENV}")
    rot.add_argument("--new-key-file", type=Path, required=True)
    rot.add_argument("--timeout", type=float, default=60.0, help="connect deadline (s)")


def _read_key(path: Path | None) -> str:
    if path is not None:
        return _read_file(path, "key file")
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    if not sys.stdin.isatty():
        return sys.stdin.read()
    raise ValueError(f"no private key: pipe it on stdin, set ${KEY_ENV} or give a key file")


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except IsADirectoryError:
        raise ValueError(f"{what} {str(path)!r} is a directory, not a file") from None
    except FileNotFoundError:
        raise ValueError(f"{what} {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {str(path)!r}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def run(args: argparse.Namespace) -> int:
    # Inputs first: a mistake in them is a usage error (2) and nothing touches the host.
    try:
        if args.ssh_command == "public-key":
            print(public_key_line(_read_key(None), args.comment))
            return EXIT_OK
        if not 0 < args.port < 65536:
            raise ValueError(f"--port must be a TCP port (1-65535), not {args.port}")
        if not args.timeout > 0:
            raise ValueError(f"--timeout must be a number of seconds > 0, not {args.timeout:g}")
        host_keys = list(args.host_key)
        if args.known_hosts:
            host_keys.append(_read_file(args.known_hosts, "--known-hosts"))
        problems = check_host_key_lines(host_keys)
        if problems:
            raise ValueError("host keys: " + "; ".join(problems))
        target = SshTarget(args.host, args.user, _read_key(args.old_key_file), tuple(host_keys),
                           port=args.port, connect_deadline_s=args.timeout)
        new_key = _read_key(args.new_key_file)
        for which, text in (("old", target.private_key), ("new", new_key)):
            try:
                load_private_key(text)
            except PrivateKeyError as exc:
                raise PrivateKeyError(f"the {which} key: {exc}") from None
    except (PrivateKeyError, HostKeyFormatError, ValueError) as exc:
        return fail(exc, EXIT_USAGE)
    try:
        line = rotate_key(target, new_key, progress=lambda m: print(m, file=sys.stderr))
    except (SshError, OSError) as exc:
        return fail(exc, EXIT_FAILED)
    except ValueError as exc:  # e.g. the new key is the old key: checked before connecting
        return fail(exc, EXIT_USAGE)
    print(f"rotated: {args.user}@{args.host} now accepts {line}")
    return EXIT_OK
