#!/usr/bin/env bash
# The main job: set up the virtualenv, check the VM config offline, then `pulumi up` the stack
# (default stack "dev", local state backend unless you are already logged in elsewhere).
#   scripts/up.sh [pulumi up options...]     e.g. scripts/up.sh --yes
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${PHOENIX_STACK:-dev}

if ! command -v pulumi >/dev/null 2>&1; then
  echo "up: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements.txt
# replaceWith (readiness and features follow a rebuilt VM) needs CLI 3.207.0 or later.
cli=$(pulumi version | sed 's/^v//')
if [ "$(printf '%s\n3.207.0\n' "$cli" | sort -V | head -n1)" != "3.207.0" ]; then
  echo "up: Pulumi CLI $cli is too old: 3.207.0 or later is needed (replaceWith); see README, Prerequisites" >&2
  exit 1
fi

config_file=$(pulumi config get phoenix-hypervisor:vmConfigFile --stack "$STACK" 2>/dev/null || echo phoenix_vm_configs.json)
.venv/bin/python -m phoenix validate "$config_file"

if ! pulumi whoami >/dev/null 2>&1; then
  echo "up: no Pulumi backend logged in; using the local backend (~/.pulumi)"
  pulumi login --local
fi
pulumi stack select "$STACK" 2>/dev/null || pulumi stack init "$STACK"
exec pulumi up --stack "$STACK" "$@"
