"""The paper's calibration-fidelity experiment, submitted over REST to the embedded local stack.

An amplified two-qubit identity on edge (0, 1) of Fez (native gates only, ideal output |00>),
8192 shots, 5 trials, on `ibm-fez-ideal` and `ibm-fez`. By default each trial is a task submitted to
a real control plane (SQLite), claimed by a real agent and run as a Prefect flow run on a Dask
LocalCluster (harness.stack starts all of it and stops it afterwards). `--direct` runs each trial
as a run directory given to `python -m runner` instead (the runner alone, no service). The ideal
twin must give total-variation distance 0; Fez a non-zero, reproducible TV whose leakage has
structure.

Then, through the same stack, the user-side QAOA flow (`flows.qaoa`, `qaoa-maxcut`) runs in this
process as a user would run it: MaxCut on six Fez qubits, optimised on the ideal twin and measured
on both; its table and plot are artifacts of its Prefect flow run (`--no-qaoa` skips it).

    python -m benchmarks.calibration_fidelity.run [--repetitions 10] [--trials 5] [--out DIR] [--direct] [--no-qaoa]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from device_registry import Snapshot, catalog
from harness.circuits import amplified_identity
from harness.stack import LocalStack
from vqpu_protocol.rundir import TaskDocument, write_inputs

if TYPE_CHECKING:
    from flows.qaoa import QAOAResult

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


class ServiceTrials:
    """Trials as tasks of a running control plane: all submitted at once, then awaited."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def submit(self, device: str, model: str, circuit: str, shots: int, seed: int, epoch: int | None = None) -> str:
        body: dict[str, Any] = {"device": device, "circuit": circuit, "dialect": "qasm2", "shots": shots, "seed": seed}
        body["options"] = {"noise_model": model}
        if epoch is not None:
            body["epoch"] = epoch
        r = self.http.post("/v1/tasks", json=body)
        if r.status_code != 201:
            raise SystemExit(f"submit refused: {r.status_code} {r.text}")
        task_id: str = r.json()["id"]
        return task_id

    def result(self, task_id: str, submitted: float, timeout_s: float = 900) -> Trial:
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.http.get(f"/v1/tasks/{task_id}").json()
            if task["state"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"task {task_id} still {task['state']} after {timeout_s} s")
            time.sleep(0.1)
        if task["state"] != "COMPLETED":
            raise SystemExit(f"task {task_id} ended {task['state']}: {task['error']}")
        wall = time.perf_counter() - submitted
        result = self.http.get(f"/v1/tasks/{task_id}/result").json()
        p = result["provenance"]
        return Trial(p["device_id"], p["noise_model"], p["seed"], result["counts"], wall, result)


def run_via_service(url: str, key: str, circuit: str, shots: int, trials: int) -> tuple[list[list[Trial]], Trial]:
    service = ServiceTrials(url, key)
    started = time.perf_counter()
    ids = [
        [service.submit(device, model, circuit, shots, seed) for seed in range(1, trials + 1)]
        for device, model in CONFIGS
    ]
    groups = [[service.result(i, started) for i in group] for group in ids]
    bound = service.http.get(f"/v1/tasks/{ids[1][0]}").json()["bound_epoch"]
    replay_id = service.submit("ibm-fez", "paper", circuit, shots, seed=1, epoch=bound)
    return groups, service.result(replay_id, time.perf_counter())


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
        "wall_s_median": statistics.median(t.wall_s for t in trials),
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


def run_direct(work: Path, circuit: str, shots: int, trials: int) -> tuple[list[list[Trial]], Trial]:
    groups = [
        [run_trial(work, catalog.load(device), model, circuit, shots, seed) for seed in range(1, trials + 1)]
        for device, model in CONFIGS
    ]
    return groups, run_trial(work / "replay", catalog.load("ibm-fez"), "paper", circuit, shots, seed=1)


def run_qaoa(stack: LocalStack, out: Path) -> QAOAResult:
    """The `qaoa-maxcut` flow in this process, against the stack's control plane and Prefect server."""
    # Prefect reads its logging level once, at import: keep the flow's per-task lines out of the table.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with stack.as_flow_user():
        from flows.qaoa import qaoa_maxcut

        return qaoa_maxcut(results_dir=str(out / "qaoa"))


def qaoa_report(result: QAOAResult, out: Path) -> str:
    text = f"QAOA MaxCut through the same stack (flow `qaoa-maxcut`, flow run {result.flow_run_id}):\n\n"
    text += "".join(f"    {line}\n" for line in result.summary().splitlines())
    text += (
        f"\nIts artifacts `qaoa-maxcut-convergence` (table) and `qaoa-maxcut-plot` (PNG) belong to that flow run, in "
        f"the Prefect database under {out / 'stack'}; `scripts/stack.sh --dir {out / 'stack'}` serves them again "
        f"(Prefect UI: /runs/flow-run/{result.flow_run_id}). The plot is also {result.plot}.\n"
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=10, help="identity layers (default 10)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--shots", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path("runs/calibration-fidelity"))
    parser.add_argument("--direct", action="store_true", help="run each trial with `python -m runner`, no service")
    parser.add_argument("--no-qaoa", action="store_true", help="skip the QAOA flow after the experiment")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.repetitions < 1:
        parser.error("--trials and --repetitions must be at least 1")

    circuit = amplified_identity(args.repetitions)
    started = time.perf_counter()
    qaoa: QAOAResult | None = None
    if args.direct:
        path = "the runner alone (python -m runner per trial)"
        groups, replay = run_direct(args.out / "run-dirs", circuit, args.shots, args.trials)
    else:
        path = "the local stack (REST submit -> agent -> Prefect flow run -> Dask LocalCluster)"
        print("starting the local stack (control plane, Prefect server, agent) ...", flush=True)
        stack = LocalStack(args.out / "stack").start()
        try:
            print(f"  up in {time.perf_counter() - started:.1f} s; submitting the trials over REST", flush=True)
            submitted = time.perf_counter()
            groups, replay = run_via_service(stack.url, stack.keys["user"], circuit, args.shots, args.trials)
            batch_s = time.perf_counter() - submitted
            print(f"  {sum(map(len, groups)) + 1} tasks completed in {batch_s:.1f} s", flush=True)
            if not args.no_qaoa:
                print("  running the QAOA flow (qaoa-maxcut) in this process against the same stack ...", flush=True)
                flow_started = time.perf_counter()
                qaoa = run_qaoa(stack, args.out)
                print(f"  QAOA flow completed in {time.perf_counter() - flow_started:.1f} s", flush=True)
        finally:
            statuses = stack.stop()
        print("  stopped: " + ", ".join(f"{name} exit {code}" for name, code in statuses.items()), flush=True)
        if statuses.get("agent") != 0:
            raise SystemExit(f"the agent did not stop cleanly; its log is in {args.out / 'stack'}")
    rows, all_trials = [], []
    for trials in groups:
        all_trials += trials
        rows.append(summarise(trials))
        t0 = trials[0]
        print(f"  {t0.device:14s} {t0.noise_model:10s} TV per trial: " + ", ".join(f"{t.tv:.4f}" for t in trials))
    original = next(t for t in all_trials if t.device == "ibm-fez" and t.noise_model == "paper" and t.seed == 1)
    replayed_as = "in a new run directory" if args.direct else "as a new task pinned to the epoch it ran under"
    report = f"Run through {path}.\n\n" + table(rows, args.trials, args.shots, args.repetitions)
    report += f"\nReplay of ibm-fez seed 1 {replayed_as}: counts identical = {replay.counts == original.counts}\n"
    ideal = rows[0]
    report += f"Ideal twin TV exactly 0 in every trial: {all(tv == 0 for tv in ideal['tv_per_trial'])}\n"
    if qaoa is not None:
        report += "\n" + qaoa_report(qaoa, args.out)
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
        "path": "direct" if args.direct else "service",
    }
    if qaoa is not None:
        summary = asdict(qaoa)
        del summary["history"]  # every evaluation is in qaoa/qaoa-maxcut.json
        document["qaoa"] = summary
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "REPORT.md").write_text("# Calibration-fidelity experiment\n\n" + report)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
