#!/usr/bin/env bash
# The local stack, left running: control plane (SQLite), Prefect server with its UI, and one agent on a
# Dask LocalCluster. Prints the URLs and keys; Ctrl-C (or SIGTERM) stops everything it started.
# Extra arguments go to `python -m harness.stack` (--dir DIR keeps state and logs there, --slots N,
# --prefect-database-url postgresql+asyncpg://USER@HOST/DB puts Prefect on PostgreSQL instead of SQLite).
# Prefect asks for a credential (printed, and in DIR/stack.json and DIR/prefect-auth). Everything the stack
# writes (keys, databases, run directories, logs) is private to this account: umask 077 from the start.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv dev   # before the umask: the environment it may create stays readable, as installed software is
umask 077
export DO_NOT_TRACK=1
exec python -m harness.stack "$@"
