"""`phoenix init --admin-key FILE.pub`: put the user's own public key where the example config
has its placeholder (`defaults.user.ssh_authorized_keys`), so the VMs' admin user takes this
key and no other.

Only `<...>` placeholder entries of `ssh_authorized_keys` lists are replaced, as text, so the
file keeps its layout and comments-by-convention; a file without placeholders is left alone
(the keys in it are the user's own choice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phoenix.config.ssh_keys import KeyLineError, is_placeholder, parse_public_key_line


class AdminKeyError(Exception):
    pass


def read_admin_key(path: str) -> str:
    """The public key line in `path` (a .pub file), parsed; raises AdminKeyError."""
    file = Path(path).expanduser()
    try:
        text = file.read_text().strip()
    except OSError as exc:
        raise AdminKeyError(f"--admin-key: cannot read {path}: {exc.strerror} (make a key: "
                            "ssh-keygen -t ed25519)") from None
    if "PRIVATE KEY" in text:
        raise AdminKeyError(f"--admin-key: {path} is a private key: give its .pub file") from None
    try:
        return parse_public_key_line(text, allow_options=False).line()
    except KeyLineError as exc:
        raise AdminKeyError(f"--admin-key: {path}: {exc}") from None


def placeholders(doc: Any) -> list[str]:
    """The distinct placeholder entries of every `user.ssh_authorized_keys` in the document."""
    found: list[str] = []
    users = [doc.get("defaults", {}).get("user", {})] if isinstance(doc, dict) else []
    if isinstance(doc, dict) and isinstance(doc.get("vms"), list):
        users += [vm.get("user", {}) for vm in doc["vms"] if isinstance(vm, dict)]
    for user in users:
        keys = user.get("ssh_authorized_keys", []) if isinstance(user, dict) else []
        for key in keys if isinstance(keys, list) else []:
            if is_placeholder(key) and key not in found:
                found.append(key)
    return found


def config_placeholders(config_file: Path) -> list[str]:
    try:
        return placeholders(json.loads(config_file.read_text()))
    except (OSError, ValueError):
        return []  # unreadable: validate and `init --check` say why


def write_admin_key(config_file: Path, key_line: str) -> int:
    """Replace the placeholders with `key_line`; -> how many distinct placeholders were replaced."""
    text = config_file.read_text()
    found = placeholders(json.loads(text))
    for placeholder in found:
        if json.dumps(placeholder) not in text:
            raise AdminKeyError(f"{config_file}: the placeholder {placeholder[:30]!r}... is written in a way "
                                "init cannot replace: put your public key there by hand")
        text = text.replace(json.dumps(placeholder), json.dumps(key_line))
    if found:
        json.loads(text)  # still JSON (a JSON string literal was swapped for another)
        config_file.write_text(text)
    return len(found)
