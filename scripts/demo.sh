#!/usr/bin/env bash
# The main job: the calibration-fidelity experiment through the real runner (see README).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
vqpu_venv runner
export DO_NOT_TRACK=1
python -m benchmarks.calibration_fidelity.run "$@"
