# phoenix feature "docker": Docker Engine from the distribution's package, user in group docker.
# Runs as root (sudo) through `bash -s`. Idempotent: every step checks before it changes,
# counts its changes, and a run with nothing to do says so. The last line is machine-read:
# PHOENIX_CHANGES=<n>.
set -euo pipefail

user="${PHOENIX_USER:-}"
if [ -z "$user" ]; then user="${PHOENIX_SSH_USER:-}"; fi
if [ "$user" = "-" ]; then user=""; fi
package="${PHOENIX_PACKAGE:-docker.io}"
changes=0
say() { echo "docker: $*"; }

# 1. The engine: skip the install when a docker binary is already there (any origin).
if command -v docker >/dev/null 2>&1; then
    say "already installed ($(docker --version 2>/dev/null || echo 'version unknown')); not installing"
else
    say "installing $package from the distribution's repository"
    export DEBIAN_FRONTEND=noninteractive
    # Right after first boot apt may still be locked (unattended-upgrades): wait, bounded.
    apt-get -o DPkg::Lock::Timeout=300 update -q
    apt-get -o DPkg::Lock::Timeout=300 install -y -q "$package"
    command -v docker >/dev/null 2>&1 || { echo "docker: $package installed no docker command" >&2; exit 4; }
    changes=$((changes + 1))
fi

# 2. The service, only where systemd runs (not in containers or chroots).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet docker 2>/dev/null && systemctl is-active --quiet docker; then
        say "service docker already enabled and running"
    else
        systemctl enable --now docker
        say "enabled and started service docker"
        changes=$((changes + 1))
    fi
fi

# 3. The group (the package normally creates it; a docker from elsewhere may not have).
if ! getent group docker >/dev/null; then
    groupadd --system docker
    say "created group docker"
    changes=$((changes + 1))
fi

# 4. Membership, compared as whole group names. The seed's `getent group docker | grep
#    "\b$USERNAME\b"` took "dev" to be a member when only "dev-ops" was ("-" is a word break).
if [ -n "$user" ]; then
    if ! id -u "$user" >/dev/null 2>&1; then
        echo "docker: user '$user' does not exist on this host" >&2
        exit 3
    fi
    if id -nG "$user" | tr ' ' '\n' | grep -qxF docker; then
        say "user $user already in group docker"
    else
        usermod -a -G docker "$user"
        say "added user $user to group docker (effective at its next login)"
        changes=$((changes + 1))
    fi
fi

if [ "$changes" -eq 0 ]; then
    say "nothing to change"
else
    say "$changes change(s) made"
fi
echo "PHOENIX_CHANGES=$changes"
