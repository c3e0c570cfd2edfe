#!/usr/bin/env bash
# The test command: set up (idempotent), then the fast suite, then the real-boot suite.
#   scripts/test.sh            everything (fast + realboot; realboot needs root, ~30 min with
#                              cached images on 2 cores under TCG, ~12 min more to build the four)
#   scripts/test.sh --fast     only the fast suite (a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh

echo "== lint (ruff)"
.venv/bin/ruff check phoenix tests benchmarks __main__.py

echo "== fast suite"
.venv/bin/python -m pytest -q

if [ "${1:-}" = "--fast" ]; then
  exit 0
fi
echo "== real-boot suite (qemu guests)"
set +e
.venv/bin/python -m pytest -q -m realboot
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "the real-boot suite collected no tests" >&2
  exit 1
fi
exit "$rc"
