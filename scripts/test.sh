#!/usr/bin/env bash
# Everything CI checks: lint, format, types, import contracts, tests. Extra args go to pytest.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv dev
export DO_NOT_TRACK=1
# One command per line: under `set -e` a failure anywhere but at the end of an `a && b && c` list
# does not stop the script (a lint error once went unnoticed that way).
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy --strict (device_registry, vqpu_protocol, runner, vqpu_service, agent, flows, harness)" && mypy
echo "==> import contracts" && lint-imports
echo "==> pytest" && python -m pytest "$@"
