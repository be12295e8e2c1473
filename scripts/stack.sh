#!/usr/bin/env bash
# The local stack, left running: control plane (SQLite), Prefect server with its UI, and one agent on a
# Dask LocalCluster. Prints the URLs and keys; Ctrl-C (or SIGTERM) stops everything it started.
# Extra arguments go to `python -m harness.stack` (--dir DIR keeps state and logs there, --slots N).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv dev
export DO_NOT_TRACK=1
exec python -m harness.stack "$@"
