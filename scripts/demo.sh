#!/usr/bin/env bash
# The main job: the calibration-fidelity experiment, submitted over REST to the local stack (see README).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv dev
export DO_NOT_TRACK=1
python -m benchmarks.calibration_fidelity.run "$@"
