"""The paper's calibration-fidelity experiment, through the real runner.

An amplified two-qubit identity on edge (0, 1) of Fez (native gates only, ideal output |00>),
8192 shots, 5 trials, on `ibm-fez-ideal` and `ibm-fez`. Each trial is one run directory executed
by `python -m runner` in a fresh process, exactly as a scheduler job runs it. The ideal twin must
give total-variation distance 0; Fez a non-zero, reproducible TV whose leakage has structure.

    python -m benchmarks.calibration_fidelity.run [--repetitions 10] [--trials 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_registry import Snapshot, catalog
from harness.circuits import amplified_identity
from vqpu_protocol.rundir import TaskDocument, write_inputs

OUTCOMES = ("00", "01", "10", "11")
CONFIGS = (("ibm-fez-ideal", "paper"), ("ibm-fez", "paper"), ("ibm-fez", "relaxation"))


@dataclass(frozen=True)
class Trial:
    device: str
    noise_model: str
    seed: int
    counts: dict[str, int]
    wall_s: float
    result: dict[str, Any]

    @property
    def tv(self) -> float:
        """TV distance to the ideal output (all mass on |00>)."""
        return 1.0 - self.counts.get("00", 0) / sum(self.counts.values())


def run_trial(work: Path, snapshot: Snapshot, model: str, circuit: str, shots: int, seed: int) -> Trial:
    run_dir = work / f"{snapshot.device_id}-{model}-seed{seed}"
    task = TaskDocument.model_validate(
        {
            "schema": "vqpu.task/1",
            "task_id": run_dir.name,
            "circuit": circuit,
            "dialect": "qasm2",
            "shots": shots,
            "seed": seed,
            "snapshot_sha256": snapshot.sha256(),
            "options": {"noise_model": model},
        }
    )
    write_inputs(run_dir, task, snapshot.canonical_json())
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", str(run_dir)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        error = (run_dir / "error.json").read_text() if (run_dir / "error.json").exists() else proc.stderr
        raise SystemExit(f"runner failed on {run_dir} (exit {proc.returncode}): {error}")
    result = json.loads((run_dir / "result.json").read_text())
    return Trial(snapshot.device_id, model, seed, result["counts"], wall, result)


def summarise(trials: list[Trial]) -> dict[str, Any]:
    tvs = [t.tv for t in trials]
    shots = sum(trials[0].counts.values())
    probs = {o: statistics.fmean(t.counts.get(o, 0) / shots for t in trials) for o in OUTCOMES}
    leaked = 1 - probs["00"]
    return {
        "device": trials[0].device,
        "noise_model": trials[0].noise_model,
        "tv_mean": statistics.fmean(tvs),
        "tv_std": statistics.stdev(tvs) if len(tvs) > 1 else 0.0,
        "tv_per_trial": tvs,
        "p": probs,
        "leakage_share": {o: (probs[o] / leaked if leaked else 0.0) for o in OUTCOMES[1:]},
        "seeds": [t.seed for t in trials],
        "runner_wall_s_median": statistics.median(t.wall_s for t in trials),
        "snapshot_sha256": trials[0].result["provenance"]["snapshot_sha256"],
        "method": trials[0].result["provenance"]["method"],
    }


def table(rows: list[dict[str, Any]], trials: int, shots: int, repetitions: int) -> str:
    head = (
        f"Amplified identity on edge (0, 1), {repetitions} layers ({repetitions * 8} native gates), "
        f"{shots} shots, {trials} trials\n\n"
        "| device | noise | TV mean ± std | P(00) | P(01) | P(10) | P(11) | leakage 01 / 10 / 11 |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        p, share = r["p"], r["leakage_share"]
        lines.append(
            f"| {r['device']} | {r['noise_model']} | {r['tv_mean']:.4f} ± {r['tv_std']:.4f} | "
            + " | ".join(f"{p[o]:.4f}" for o in OUTCOMES)
            + f" | {share['01']:.0%} / {share['10']:.0%} / {share['11']:.0%} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=10, help="identity layers (default 10)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--shots", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path("runs/calibration-fidelity"))
    args = parser.parse_args(argv)
    if args.trials < 1 or args.repetitions < 1:
        parser.error("--trials and --repetitions must be at least 1")

    circuit = amplified_identity(args.repetitions)
    work = args.out / "run-dirs"
    rows, all_trials = [], []
    for device, model in CONFIGS:
        snapshot = catalog.load(device)
        trials = [run_trial(work, snapshot, model, circuit, args.shots, seed) for seed in range(1, args.trials + 1)]
        all_trials += trials
        rows.append(summarise(trials))
        print(f"  {device:14s} {model:10s} TV per trial: " + ", ".join(f"{t.tv:.4f}" for t in trials), flush=True)

    replay = run_trial(work / "replay", catalog.load("ibm-fez"), "paper", circuit, args.shots, seed=1)
    original = next(t for t in all_trials if t.device == "ibm-fez" and t.noise_model == "paper" and t.seed == 1)
    report = table(rows, args.trials, args.shots, args.repetitions)
    report += (
        f"\nReplay of ibm-fez seed 1 in a new run directory: counts identical = {replay.counts == original.counts}\n"
    )
    ideal = rows[0]
    report += f"Ideal twin TV exactly 0 in every trial: {all(tv == 0 for tv in ideal['tv_per_trial'])}\n"
    print("\n" + report)

    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "experiment": "calibration-fidelity",
        "repetitions": args.repetitions,
        "shots": args.shots,
        "trials": args.trials,
        "circuit": circuit,
        "rows": rows,
        "replay_identical": replay.counts == original.counts,
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "REPORT.md").write_text("# Calibration-fidelity experiment\n\n" + report)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
