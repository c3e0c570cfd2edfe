"""SSH to VMs and Proxmox nodes with paramiko: pinned host keys, key text auth, scripts on stdin.

Public API: `SshTarget`, `connect`, `run_script`, `CommandResult`, `SshError`, `redact`,
`Redactor`, `public_key_line`, `load_private_key`, `parse_pinned_keys`.
"""

from phoenix.remote.errors import Redactor, SshError, redact
from phoenix.remote.hostkeys import check_host_key_lines, parse_pinned_keys
from phoenix.remote.keys import PrivateKeyError, fingerprint, load_private_key, public_key_line
from phoenix.remote.ssh import CommandResult, SshSession, SshTarget, connect, run_script

__all__ = [
    "CommandResult", "PrivateKeyError", "Redactor", "SshError", "SshSession", "SshTarget",
    "check_host_key_lines", "connect", "fingerprint", "load_private_key", "parse_pinned_keys",
    "public_key_line", "redact", "run_script",
]
