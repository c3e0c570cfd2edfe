#!/usr/bin/env bash
# The main job: set up the virtualenv, check the VM config offline, check the Pulumi CLI and the
# stack config, then `python -m phoenix up`: `pulumi preview`, the rebuild guard, `pulumi up
# --plan` (docs/lifecycle.md).
#   scripts/up.sh [--rebuild VMID] [--delete VMID] [pulumi up options...]     e.g. scripts/up.sh --yes
# Stack: $PHOENIX_STACK (default dev). Backend: the one you are logged in to, else
# $PULUMI_BACKEND_URL, else the local backend (~/.pulumi). What is missing is named with the
# command that sets it, before Pulumi is asked to deploy anything.
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${PHOENIX_STACK:-dev}

say() { echo "up: $*" >&2; }

# The virtualenv Pulumi runs the program in (Pulumi.yaml: virtualenv .venv). pip runs only when
# requirements.txt changed since the last install, so a repeated `up` is quiet and fast.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=.venv/.phoenix-requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "installing requirements.txt into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi

# The VM config first, offline (no Pulumi, no Proxmox): a newcomer sees what to fix in the file
# (e.g. the example's key placeholder) before installing or setting up anything else. The file
# is the stack's vmConfigFile when Pulumi.<stack>.yaml names one; `init --check` below checks
# the same file again with the rest of the stack config.
vm_file=$(sed -n 's/^ *phoenix-hypervisor:vmConfigFile: *//p' "Pulumi.$STACK.yaml" 2>/dev/null \
  | tr -d "\"'" | head -n1 || true)
vm_file=${vm_file:-phoenix_vm_configs.json}
if ! .venv/bin/python -m phoenix validate "$vm_file" >/dev/null; then
  say "fix $vm_file as the lines above say, then run this again."
  exit 1
fi

# The oldest supported CLI: the one number in phoenix/pulumi_version.py (why it is that one: there).
min=$(sed -n 's/^MIN_PULUMI_CLI = "\(.*\)"$/\1/p' phoenix/pulumi_version.py)
if ! command -v pulumi >/dev/null 2>&1; then
  say "the Pulumi CLI is not installed: version $min or later is needed (README, Prerequisites):"
  say "https://www.pulumi.com/docs/install/ (then run this again)"
  exit 1
fi
cli=$(pulumi version 2>/dev/null | sed 's/^v//')
if ! [[ "$cli" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] \
    || [ "$(printf '%s\n%s\n' "$cli" "$min" | sort -V | head -n1)" != "$min" ]; then
  say "Pulumi CLI ${cli:-(unknown version)} is too old: $min or later is needed (replaceWith);"
  say "see README, Prerequisites: https://www.pulumi.com/docs/install/"
  exit 1
fi

# Backend: keep the one in use; else $PULUMI_BACKEND_URL; else the local backend.
if ! pulumi whoami >/dev/null 2>&1; then
  if [ -n "${PULUMI_BACKEND_URL:-}" ]; then
    say "logging in to \$PULUMI_BACKEND_URL"
    pulumi login "$PULUMI_BACKEND_URL" >/dev/null
  else
    say "no Pulumi backend logged in: using the local backend (~/.pulumi); \`pulumi login\` for another"
    pulumi login --local >/dev/null
  fi
fi

# A self-managed backend (file://, s3://, ...) encrypts the stack's secrets with a passphrase.
# Pulumi asks for it on every command; this script runs several, and CI has no terminal.
backend=$(pulumi whoami --json 2>/dev/null | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin).get("url",""))' 2>/dev/null || true)
if [ -z "$backend" ]; then  # CLIs without `whoami --json`
  backend=$(pulumi whoami --verbose 2>/dev/null | sed -n 's/^Backend URL: *//p' || true)
fi
uses_passphrase=no
case "$backend" in https://*) ;; *) uses_passphrase=yes ;; esac
if [ -f "Pulumi.$STACK.yaml" ] && grep -q '^encryptionsalt:' "Pulumi.$STACK.yaml"; then
  uses_passphrase=yes
fi
if [ "$uses_passphrase" = yes ] && [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  say "PULUMI_CONFIG_PASSPHRASE is not set: the stack's secrets (API token, SSH key) are encrypted"
  say "with a passphrase of your choice on this backend (${backend:-local}). Set it for this shell:"
  say "    read -rs PULUMI_CONFIG_PASSPHRASE && export PULUMI_CONFIG_PASSPHRASE"
  say "or keep it in a file: export PULUMI_CONFIG_PASSPHRASE_FILE=~/.config/phoenix/passphrase"
  exit 1
fi

if ! pulumi stack select "$STACK" >/dev/null 2>&1; then
  say "creating stack $STACK"
  pulumi stack init "$STACK" >/dev/null
fi

# Everything that can be checked without Proxmox: keys set and well-formed, the VM config file,
# ZFS nodes with pinned host keys. Each problem comes with the command that fixes it.
if ! .venv/bin/python -m phoenix init --check --stack "$STACK"; then
  say "fix the above (\`.venv/bin/python -m phoenix init\` asks for everything), then run this again."
  say "Then \`.venv/bin/python -m phoenix doctor\` checks the cluster with your token."
  exit 1
fi
# The preview is checked before anything is applied: a VM (or a VM's data) that would be rebuilt
# or deleted must be named (--rebuild VMID / --delete VMID); `pulumi up --plan` then applies
# exactly what was checked.
exec .venv/bin/python -m phoenix up --stack "$STACK" "$@"
