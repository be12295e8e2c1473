# Sourced by demo.sh and test.sh: create or refresh .venv with the given extras, then activate it.
# Refreshes when pyproject.toml changed since the last install (or the extras differ).
set -euo pipefail
vqpu_venv() {
  local extras="$1" root py stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: HPC-vQPU needs Python >= 3.11 ($py is $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    return 1
  fi
  [ -x "$root/.venv/bin/python" ] || "$py" -m venv "$root/.venv"
  stamp="$root/.venv/.vqpu-installed"
  want="$extras $(sha256sum "$root/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ] || ! grep -qxF -- "$want" "$stamp"; then
    echo "==> installing HPC-vQPU[$extras] into .venv" >&2
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[$extras]" >&2
    echo "$want" >"$stamp"
  else
    # Cheap refresh: the editable finder must know every top-level package present now.
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$root" >&2
  fi
  # shellcheck disable=SC1091
  source "$root/.venv/bin/activate"
  cd "$root"
}
