"""Rotating the key Pulumi uses to reach a VM, without rebuilding it.

cloud-init writes authorized_keys once, at first boot; afterwards the only way in is SSH
itself. The order makes a lock-out impossible: add the new key (logged in with the old one),
prove the new key logs in, and only then remove the old key (logged in with the new one).
"""

from __future__ import annotations

import dataclasses

from phoenix.remote.keys import load_private_key, public_key_line
from phoenix.remote.ssh import ProgressFn, SshTarget, connect

# Keys are matched on their base64 blob (field-wise), so options ("from=...") and comments do
# not matter; the file keeps its mode and is replaced atomically.
_ADD = """\
set -eu
dir="$HOME/.ssh"; f="$dir/authorized_keys"
[ -d "$dir" ] || mkdir -m 700 "$dir"
[ -e "$f" ] || { touch "$f"; chmod 600 "$f"; }
if awk -v b="$BLOB" '{for (i = 1; i <= NF; i++) if ($i == b) found = 1} END {exit !found}' "$f"
then echo "rotate: new key already authorized"
else printf '%s\\n' "$LINE" >> "$f"; echo "rotate: new key added"
fi
"""
_REMOVE = """\
set -eu
f="$HOME/.ssh/authorized_keys"
tmp="$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
awk -v b="$BLOB" '{keep = 1; for (i = 1; i <= NF; i++) if ($i == b) keep = 0} keep' "$f" > "$tmp"
removed=$(( $(wc -l < "$f") - $(wc -l < "$tmp") ))
chmod --reference="$f" "$tmp"
mv -f "$tmp" "$f"
trap - EXIT
echo "rotate: removed $removed line(s) with the old key"
"""


def rotate_key(target: SshTarget, new_private_key: str, comment: str = "phoenix-pulumi",
               progress: ProgressFn | None = None) -> str:
    """Replace the key `target` logs in with by `new_private_key` in the login user's
    ~/.ssh/authorized_keys. Returns the new public key line. Safe to run again after a
    failure at any step (each step checks first)."""
    new_key = load_private_key(new_private_key)
    old_key = load_private_key(target.private_key)
    new_line = public_key_line(new_private_key, comment)
    if new_key.get_base64() == old_key.get_base64():
        raise ValueError("the new key is the old key")
    with connect(target, progress) as session:
        session.run(_ADD, env={"BLOB": new_key.get_base64(), "LINE": new_line}, timeout_s=60)
    new_target = dataclasses.replace(target, private_key=new_private_key,
                                     secrets=(*target.secrets, target.private_key))
    with connect(new_target, progress) as session:  # proves the new key works
        session.run(_REMOVE, env={"BLOB": old_key.get_base64()}, timeout_s=60)
    return new_line
