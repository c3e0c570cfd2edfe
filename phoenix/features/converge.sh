# phoenix step "converge" (edits: "in-place", docs/edits.md): bring a running VM to the config's
# packages, admin keys and timezone, without a rebuild. Idempotent: a second run changes nothing
# and makes no apt call. Every value arrives as an environment variable (never interpolated into
# shell text): PHOENIX_PACKAGES (space-separated, validated names, optional =VERSION),
# PHOENIX_KEYS (the admin user's key lines, one per line, opaque text: options allowed),
# PHOENIX_LOGIN_KEY (the key Phoenix logs in with: always kept), PHOENIX_TIMEZONE (empty: not
# managed), PHOENIX_USER (empty: the SSH login user), PHOENIX_LOCK_TIMEOUT_S (how long to wait
# for another apt/dpkg), PHOENIX_APT_TIMEOUT_S (one apt-get call's deadline).
# The last stdout line is machine-read: PHOENIX_CHANGES=<n>; lines `PHOENIX_WARNING: ...` become
# warnings of the run (the provider's _warnings_from). Failures print "converge: ..."
# lines on stderr naming the cause (apt's and dpkg's own E:/dpkg: lines).
set -euo pipefail

user="${PHOENIX_USER:-}"
if [ -z "$user" ]; then user="${PHOENIX_SSH_USER:-}"; fi
lock_timeout="${PHOENIX_LOCK_TIMEOUT_S:-300}"
apt_timeout="${PHOENIX_APT_TIMEOUT_S:-600}"
state_dir="${PHOENIX_STATE_DIR:-/var/lib/phoenix/converge}"
changes=0

fail() {  # first line: what failed; further arguments: the cause lines, as they were
    printf 'converge: %s\n' "$1" >&2
    shift
    [ "$#" -eq 0 ] || printf '%s\n' "$@" >&2
    exit 3
}

# ---- keys: the admin user's authorized_keys become exactly PHOENIX_KEYS (+ the login key).
# The `authorized-keys` feature's managed block is kept as it is (that feature owns it), so the
# two never fight: this step owns every line outside the block.
begin="# BEGIN phoenix managed keys (do not edit inside this block)"
end="# END phoenix managed keys"
converge_keys() {
    local home group dir file desired login_id current tmp
    home="$(getent passwd "$user" | cut -d: -f6)" || true
    if [ -z "$user" ] || [ -z "$home" ] || [ ! -d "$home" ]; then
        fail "keys: user '$user' has no home directory on this VM (user.name is applied only at first boot)"
    fi
    group="$(id -gn "$user")"
    dir="$home/.ssh"
    file="$dir/authorized_keys"
    desired="$(printf '%s\n' "${PHOENIX_KEYS:-}" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | grep -v '^$' || true)"
    # Never lock Phoenix out: its own key stays whatever the list says (matched on TYPE BASE64).
    login_id="$(printf '%s\n' "${PHOENIX_LOGIN_KEY:-}" | awk 'NF >= 2 { print $1 " " $2; exit }')"
    if [ -n "$login_id" ] && ! printf '%s\n' "$desired" | grep -qF -- "$login_id"; then
        desired="$(printf '%s\n%s\n' "$desired" "$PHOENIX_LOGIN_KEY" | grep -v '^$')"
    fi
    [ -d "$dir" ] || install -d -m 0700 -o "$user" -g "$group" "$dir"
    [ -e "$file" ] || install -m 0600 -o "$user" -g "$group" /dev/null "$file"
    current="$(sed "/^$begin\$/,/^$end\$/d" "$file")"
    if [ "$current" = "$desired" ]; then
        echo "converge: $file already holds the $(printf '%s\n' "$desired" | grep -c .) configured key(s)"
        return
    fi
    tmp="$(mktemp "$dir/.authorized_keys.XXXXXX")"
    printf '%s\n' "$desired" > "$tmp"
    sed -n "/^$begin\$/,/^$end\$/p" "$file" >> "$tmp"
    chown "$user:$group" "$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$file"
    echo "converge: wrote the $(printf '%s\n' "$desired" | grep -c .) configured key(s) to $file"
    changes=$((changes + 1))
}

# ---- timezone: timedatectl where it exists, else /etc/localtime + /etc/timezone.
has_timedatectl() {  # bash's `command -v` also reports a file that is not executable
    local path
    path="$(command -v timedatectl 2>/dev/null)" && [ -x "$path" ]
}
current_timezone() {
    local tz=""
    if has_timedatectl; then
        tz="$(timedatectl show -p Timezone --value 2>/dev/null || true)"
    fi
    if [ -z "$tz" ] && [ -L /etc/localtime ]; then
        tz="$(readlink /etc/localtime | sed 's|^.*zoneinfo/||')"
    fi
    if [ -z "$tz" ] && [ -r /etc/timezone ]; then
        tz="$(head -n1 /etc/timezone)"
    fi
    printf '%s' "$tz"
}
converge_timezone() {
    local tz="${PHOENIX_TIMEZONE:-}" now
    [ -n "$tz" ] || return 0
    case "$tz" in *..*|/*) fail "timezone: '$tz' is not a timezone name" ;; esac
    now="$(current_timezone)"
    if [ "$now" = "$tz" ]; then
        echo "converge: timezone is already $tz"
        return
    fi
    [ -f "/usr/share/zoneinfo/$tz" ] || fail "timezone: /usr/share/zoneinfo/$tz does not exist on this VM (is tzdata installed?)"
    if has_timedatectl; then
        local err
        err="$(timedatectl set-timezone "$tz" 2>&1)" || fail "timezone: timedatectl set-timezone $tz failed: $err"
    else  # no systemd tools: what cloud-init's Debian distro class writes
        ln -sfn "/usr/share/zoneinfo/$tz" /etc/localtime
        printf '%s\n' "$tz" > /etc/timezone
    fi
    echo "converge: timezone ${now:-unset} -> $tz"
    changes=$((changes + 1))
}

# ---- packages: install what is missing; never remove anything.
installed() {  # NAME[=VERSION]: installed (at that version)?
    local name="${1%%=*}" want="" status version
    case "$1" in *=*) want="${1#*=}" ;; esac
    status="$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$name" 2>/dev/null || true)"
    version="${status#*|}"
    case "$status" in
        "ii "*) [ -z "$want" ] || [ "$version" = "$want" ] ;;
        *) return 1 ;;
    esac
}
apt_log="$(mktemp)"
trap 'rm -f "$apt_log"' EXIT
# One apt-get call, bounded; waits up to lock_timeout for another apt/dpkg. dpkg's frontend lock
# is waited for by apt itself (DPkg::Lock::Timeout); the lists lock of `apt-get update` is not,
# so "Could not get lock" is retried here until the same deadline.
apt() {
    local deadline=$((SECONDS + lock_timeout)) rc
    while :; do
        rc=0
        timeout --kill-after=10 "$apt_timeout" apt-get -q -y \
            -o DPkg::Lock::Timeout="$lock_timeout" \
            -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef \
            -o Acquire::Retries=3 -o Acquire::http::Timeout=30 -o Acquire::https::Timeout=30 \
            "$@" >"$apt_log" 2>&1 || rc=$?
        cat "$apt_log"
        if [ "$rc" -ne 0 ] && grep -q 'Could not get lock' "$apt_log" && [ "$SECONDS" -lt "$deadline" ]; then
            sleep 2
            continue
        fi
        return "$rc"
    done
}
apt_failed() {  # what, exit code: name the cause from apt's and dpkg's own lines
    local what="$1" rc="$2" causes
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$what: apt-get still running after ${apt_timeout} s; stopped"
    fi
    causes="$(grep -E '^(E: |W: Failed to fetch)|dpkg: (error|dependency problems)|Errors were encountered|Sub-process .* returned an error|has no installation candidate|Unable to locate package|unmet dependencies|^ ?\S+ : (Pre-)?Depends: |Could not get lock|Temporary failure resolving|Could not connect to' "$apt_log" | awk '!seen[$0]++' | head -n 12 || true)"
    if grep -q 'Could not get lock' "$apt_log"; then
        causes="$causes
another apt or dpkg held the lock for more than ${lock_timeout} s (unattended-upgrades? a manual apt?); the next \`pulumi up\` tries again"
    fi
    fail "$what failed (apt-get exit $rc):" "${causes:-(apt printed no error line; see the log above)}"
}
converge_packages() {
    local -a wanted=() missing=()
    local p rc
    read -r -a wanted <<< "${PHOENIX_PACKAGES:-}"
    for p in "${wanted[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "converge: all ${#wanted[@]} package(s) already installed"
    else
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
        echo "converge: installing ${missing[*]}"
        # The VM's package lists may be months old (its first boot): refresh them first.
        rc=0; apt update || rc=$?
        [ "$rc" -eq 0 ] || apt_failed "apt-get update" "$rc"
        rc=0; apt install -- "${missing[@]}" || rc=$?
        [ "$rc" -eq 0 ] || apt_failed "installing ${missing[*]}" "$rc"
        for p in "${missing[@]}"; do
            installed "$p" || fail "installing $p: apt-get succeeded but dpkg does not list $p as installed"
        done
        changes=$((changes + 1))
    fi
    # Packages taken out of the list stay installed (removing is never done implicitly): say so.
    local record="$state_dir/packages" old left=()
    if [ -r "$record" ]; then
        for old in $(cat "$record"); do
            case " ${wanted[*]-} " in *" $old "*) ;; *) left+=("$old") ;; esac
        done
        if [ "${#left[@]}" -gt 0 ]; then
            echo "PHOENIX_WARNING: no longer in packages, left installed: ${left[*]} (remove by hand: sudo apt-get remove ${left[*]})"
        fi
    fi
    install -d -m 0755 "$state_dir"
    printf '%s\n' "${wanted[@]-}" | grep -v '^$' > "$state_dir/.packages.tmp" || true
    mv -f "$state_dir/.packages.tmp" "$record"
}

converge_keys
converge_timezone
converge_packages
echo "PHOENIX_CHANGES=$changes"
