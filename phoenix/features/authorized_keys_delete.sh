# Delete script of "authorized-keys": remove the managed block, keep every other line.
set -euo pipefail
user="${PHOENIX_USER:-}"
if [ -z "$user" ]; then user="${PHOENIX_SSH_USER:-}"; fi
begin="# BEGIN phoenix managed keys (do not edit inside this block)"
end="# END phoenix managed keys"
home="$(getent passwd "$user" | cut -d: -f6)" || true
file="$home/.ssh/authorized_keys"
if [ -z "$home" ] || [ ! -f "$file" ] || ! grep -qxF "$begin" "$file"; then
    echo "authorized-keys: no managed block for '$user'; nothing to remove"
    exit 0
fi
tmp="$(mktemp "$home/.ssh/.authorized_keys.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
sed "/^$begin\$/,/^$end\$/d" "$file" > "$tmp"
chown --reference="$file" "$tmp"
chmod --reference="$file" "$tmp"
mv -f "$tmp" "$file"
trap - EXIT
echo "authorized-keys: removed the managed block from $file"
