#!/usr/bin/env bash
# Unpack a Debian suite's cloud-init (default: trixie, cloud-init 25.1) for `cloud-init schema`
# checks on its newer schema, without touching the host's own cloud-init:
#   scripts/fetch-cloud-init.sh [SUITE] [DEST]
# DEST (default ${PHOENIX_CACHE_DIR:-~/.cache/phoenix}/cloud-init/SUITE) gets root/ (the unpacked
# package, run with the host's python3 and its cloud-init dependencies) and VERSION.
# A private apt directory (its own sources.list and lists), so the host's apt state is not
# changed; no root needed. Safe to run again: does nothing when DEST is complete.
set -euo pipefail
SUITE=${1:-trixie}
DEST=${2:-${PHOENIX_CACHE_DIR:-$HOME/.cache/phoenix}/cloud-init/$SUITE}
# The mirror: $PHOENIX_DEBIAN_MIRROR, else the one this machine's apt uses (a local mirror or an
# apt proxy), else deb.debian.org (phoenix/localboot/apt_mirror.py reads /etc/apt).
MIRROR=${PHOENIX_DEBIAN_MIRROR:-$(python3 "$(dirname "$0")/../phoenix/localboot/apt_mirror.py" 2>/dev/null \
  || echo http://deb.debian.org/debian)}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

if [ -f "$DEST/VERSION" ] && [ -d "$DEST/root/usr/lib/python3/dist-packages/cloudinit" ]; then
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/phoenix-cloud-init-$SUITE.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/apt/sources.list.d" "$work/etc/apt/preferences.d" \
  "$work/var/lib/apt/lists/partial" "$work/var/cache/apt/archives/partial"
# The suite's Release file must be signed by Debian's archive keys (the test suite later runs
# this cloud-init's code): apt verifies it and every package's checksum against it. An
# outdated keyring (one that predates SUITE) fails here rather than trusting anything.
if [ ! -f "$KEYRING" ]; then
  echo "fetch-cloud-init: $KEYRING is missing: apt-get install debian-archive-keyring" >&2
  exit 1
fi
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$work/etc/apt/sources.list"
opts=(-q -o "Dir=$work" -o Dir::State::status=/dev/null -o Acquire::Languages=none
      -o APT::Architecture=amd64 -o Debug::NoLocking=1 -o Acquire::Retries=3
      -o APT::Sandbox::User=root)
if ! apt-get "${opts[@]}" update >"$work/apt.log" 2>&1 \
    || ! (cd "$work" && apt-get "${opts[@]}" download cloud-init >>"$work/apt.log" 2>&1); then
  echo "fetch-cloud-init: could not download cloud-init from $MIRROR $SUITE:" >&2
  cat "$work/apt.log" >&2
  exit 1
fi
deb=$(ls "$work"/cloud-init_*_all.deb)
dpkg-deb -x "$deb" "$work/root"
version=$(dpkg-deb -f "$deb" Version)
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.new" && mkdir -p "$DEST.new"
mv "$work/root" "$DEST.new/root"
echo "$version" >"$DEST.new/VERSION"
rm -rf "$DEST" && mv "$DEST.new" "$DEST"
echo "fetch-cloud-init: cloud-init $version ($SUITE) unpacked in $DEST"
