#!/usr/bin/env bash
# Everything CI checks: lint, format, types, import contracts, tests. Extra args go to pytest.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv dev
export DO_NOT_TRACK=1
echo "==> ruff" && ruff check . && ruff format --check .
echo "==> mypy --strict (device_registry, vqpu_protocol, runner, vqpu_service, harness)" && mypy
echo "==> import contracts" && lint-imports
echo "==> pytest" && python -m pytest "$@"
