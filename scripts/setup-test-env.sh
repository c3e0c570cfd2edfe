#!/usr/bin/env bash
# Install what the tests need on a Debian/Ubuntu machine: the real peers the tests talk to and a
# virtualenv with the pinned Python dependencies. Safe to run again.
#   scripts/setup-test-env.sh           everything (fast suite + real-boot suite)
#   scripts/setup-test-env.sh --fast    only what the fast suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

# The fast suite (`pytest`, scripts/test.sh --fast).
APT_FAST=(
  cloud-init            # `cloud-init schema` and its network-config parser
  openssh-server        # a real sshd for the paramiko layer, `phoenix init` and `phoenix doctor`
  openssh-client        # ssh-keygen for the sshd fixture; the OpenSSH baseline in benchmarks/bench_ssh.py
  sudo                  # the SSH layer's sudo path (tests/test_ssh_remote.py)
  python3-venv          # the virtualenvs (.venv, the packaging test's)
  debian-archive-keyring  # verifies the mirror's Release files (fetch-cloud-init.sh, debootstrap)
)
# The real-boot suite only (`pytest -m realboot`): real qemu guests and their images.
APT_REALBOOT=(
  qemu-system-x86 qemu-utils                  # the guests
  debootstrap fdisk e2fsprogs genisoimage     # building the guest image and its NoCloud seed
)

APT_PACKAGES=("${APT_FAST[@]}")
if [ "${1:-}" != "--fast" ]; then
  APT_PACKAGES+=("${APT_REALBOOT[@]}")
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]} (run with sudo)" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The newer cloud-init generation (Debian 13 / Ubuntu 24.04 era: 25.1), unpacked beside the
# host's 22.4, so the fast suite checks every rendered seed with both schemas.
bash scripts/fetch-cloud-init.sh trixie

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
echo "setup: ready (.venv)"
