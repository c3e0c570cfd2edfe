# phoenix feature "authorized-keys": a managed block of public keys in a user's authorized_keys.
# Lines outside the block (cloud-init's keys, hand-added ones) are kept as they are. Rewrites
# the file only when the block differs, atomically (temp file + rename), keeping owner and mode.
# The last line is machine-read: PHOENIX_CHANGES=<n>.
set -euo pipefail

user="${PHOENIX_USER:-}"
if [ -z "$user" ]; then user="${PHOENIX_SSH_USER:-}"; fi
begin="# BEGIN phoenix managed keys (do not edit inside this block)"
end="# END phoenix managed keys"

home="$(getent passwd "$user" | cut -d: -f6)" || true
if [ -z "$home" ] || [ ! -d "$home" ]; then
    echo "authorized-keys: user '$user' has no home directory on this host" >&2
    exit 3
fi
group="$(id -gn "$user")"
dir="$home/.ssh"
file="$dir/authorized_keys"
if [ ! -d "$dir" ]; then
    install -d -m 0700 -o "$user" -g "$group" "$dir"
fi
[ -e "$file" ] || install -m 0600 -o "$user" -g "$group" /dev/null "$file"

desired="$(printf '%s\n' "$PHOENIX_KEYS" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | grep -v '^$' || true)"
current="$(sed -n "/^$begin\$/,/^$end\$/{/^#/d;p}" "$file")"
if [ "$current" = "$desired" ] && grep -qxF "$begin" "$file"; then
    echo "authorized-keys: $file already holds the $(printf '%s\n' "$desired" | wc -l) managed key(s); nothing to change"
    echo "PHOENIX_CHANGES=0"
    exit 0
fi

tmp="$(mktemp "$dir/.authorized_keys.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
sed "/^$begin\$/,/^$end\$/d" "$file" > "$tmp"
{ echo "$begin"; printf '%s\n' "$desired"; echo "$end"; } >> "$tmp"
chown "$user:$group" "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$file"
trap - EXIT
echo "authorized-keys: wrote $(printf '%s\n' "$desired" | wc -l) managed key(s) to $file"
echo "PHOENIX_CHANGES=1"
