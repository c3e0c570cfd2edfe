#!/usr/bin/env bash
# Install what the tests need on a Debian/Ubuntu machine: the real peers the tests talk to
# (cloud-init's validator, OpenSSH's sshd, qemu + debootstrap for the real-boot tests) and a
# virtualenv with the pinned Python dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  cloud-init            # `cloud-init schema` and its network-config parser
  openssh-server        # a real sshd for the paramiko layer
  openssh-client        # the OpenSSH baseline in benchmarks/bench_ssh.py
  qemu-system-x86 qemu-utils   # real guests for the first-boot tests
  debootstrap fdisk e2fsprogs genisoimage   # building the guest image and its NoCloud seed
  python3-venv
)

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
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements-dev.txt
echo "setup: ready (.venv)"
