"""One sample of each measured thing, each taken in a fresh interpreter (what a Slurm job pays)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBES = "benchmarks.runner_overhead.probes"
IMPORT_STATEMENT = "import runner.cli; import scipy.linalg"
IMPORT_PACKAGES = ("runner.cli", "qiskit", "qiskit_aer", "pydantic", "numpy", "scipy.linalg")
"""Whose cumulative import time `python -X importtime -c IMPORT_STATEMENT` reports. scipy.linalg is
not imported by runner.cli: Qiskit imports it on first use (the Choi -> Kraus step of
`thermal_relaxation_error`), so its cost lands in the `relaxation` model's noise_s."""

Sample = dict[str, float]


def runner_process(run_dir: Path) -> tuple[Sample, dict[str, Any]]:
    """`python -m runner RUN_DIR` from a fresh interpreter: result.json timings plus the process wall time."""
    result_file = run_dir / "result.json"
    result_file.unlink(missing_ok=True)
    wall = _timed([sys.executable, "-m", "runner", str(run_dir)])
    result = json.loads(result_file.read_text())
    t = result["timings"]
    fixed = t["parse_s"] + t["transpile_s"] + t["noise_s"]
    sample = {
        **{k: t[k] for k in ("parse_s", "transpile_s", "noise_s", "simulate_s", "total_s")},
        "fixed_s": fixed,
        "other_s": t["total_s"] - fixed - t["simulate_s"],
        "startup_s": wall - t["total_s"],
        "wall_s": wall,
    }
    return sample, result


def bare_aer_process(optimization_level: int, backend: str = "fakefez") -> tuple[Sample, dict[str, Any]]:
    """The bare Qiskit-Aer probe in a fresh interpreter; `startup_s` is the wall time it did not time itself."""
    start = time.perf_counter()
    level = str(optimization_level)
    out = _run([sys.executable, "-m", PROBES, "bare-aer", "--optimization-level", level, "--backend", backend])
    wall = time.perf_counter() - start
    probe = json.loads(out)
    steps = ("import_s", "backend_s", "parse_s", "noise_s", "transpile_s", "simulate_s")
    sample = {k: float(probe[k]) for k in steps}
    sample["fixed_s"] = sample["parse_s"] + sample["noise_s"] + sample["transpile_s"]
    sample["startup_s"] = wall - sum(sample[k] for k in steps)
    sample["wall_s"] = wall
    return sample, probe


def interpreter() -> Sample:
    """An empty interpreter, and one that only imports the runner: the floor under every fresh process."""
    return {
        "python_s": _timed([sys.executable, "-c", "pass"]),
        "import_runner_s": _timed([sys.executable, "-c", "import runner.cli"]),
    }


def warm_in_process(noise_model: str, calls: int) -> list[dict[str, Any]]:
    out = _run([sys.executable, "-m", PROBES, "warm", "--noise-model", noise_model, "--calls", str(calls)])
    calls_out: list[dict[str, Any]] = json.loads(out)["calls"]
    for call in calls_out:
        call["fixed_s"] = call["parse_s"] + call["transpile_s"] + call["noise_s"]
    return calls_out


def import_breakdown(repeats: int) -> dict[str, float]:
    """Median cumulative import time (s) of the heaviest packages under `import runner.cli`."""
    runs = [_import_times() for _ in range(repeats)]
    return {name: statistics.median(run.get(name, 0.0) for run in runs) for name in IMPORT_PACKAGES}


def _import_times() -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORT_STATEMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    times: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name, cumulative = parts[2].strip(), int(parts[1]) / 1e6
        times[name] = max(times.get(name, 0.0), cumulative)
    return times


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    _run(cmd)
    return time.perf_counter() - start


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout
