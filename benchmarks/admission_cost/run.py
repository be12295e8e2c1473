"""The price admission puts on a task against what the runner then spends (vqpu_protocol.pricing).

Each case (cases.py) is priced from the admissibility pass's statistics, exactly as the control plane
prices a submitted task, then run as a fresh `python -m runner RUN_DIR` process; its simulate time,
its whole wall time and its peak resident memory (that child's own, from wait4) are compared with the
estimates. Each task carries the limits an agent writes for a site slot of SLOT_MEMORY_BYTES (so Aer
runs under max_memory_mb, as at a site); each case runs REPEATS times and its medians (peak memory:
the largest) are reported. `--fit` fits the cost model's coefficients to the measurements (non-negative least squares
on relative error) and prints them for vqpu_protocol.pricing; without it the committed coefficients
are what is reported.

    python -m benchmarks.admission_cost.run [--fit] [--only SUBSTRING] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.admission_cost.cases import CASES, Case, chain, qasm
from benchmarks.admission_cost.fit import fit
from benchmarks.admission_cost.report import write_report
from benchmarks.runner_overhead.machine import describe
from device_registry import Snapshot, catalog
from device_registry.admissibility import Checker
from vqpu_protocol import pricing
from vqpu_protocol.rundir import RunOptions, TaskDocument, write_inputs

HERE = Path(__file__).resolve().parent
SLOT_MEMORY_BYTES = 8 * 2**30
REPEATS = 3


def measure(case: Case, snapshot: Snapshot, work: Path) -> dict[str, Any]:
    source = qasm(case, chain(snapshot, case.qubits))
    checker = Checker(source, "qasm2", snapshot, 10)
    if checker.run():
        raise SystemExit(f"{case.name}: not admissible: {checker.violations}")
    options = RunOptions.model_validate(case.options)
    priced = pricing.price(checker.stats, snapshot, options, case.shots)
    terms = pricing.runtime_terms(checker.stats, snapshot, options, case.shots)
    run_dir = work / case.name
    task = TaskDocument.model_validate(
        {
            "task_id": case.name.replace(".", "_").replace("=", "_"),
            "circuit": source,
            "dialect": "qasm2",
            "shots": case.shots,
            "seed": 11,
            "snapshot_sha256": snapshot.sha256(),
            "options": case.options,
            "limits": {"memory_bytes": SLOT_MEMORY_BYTES},
        }
    )
    write_inputs(run_dir, task, snapshot.canonical_json())
    runs = [_run_once(case, run_dir) for _ in range(REPEATS)]
    measured = {k: statistics.median(r[k] for r in runs) for k in ("simulate_s", "runner_total_s", "wall_s")}
    measured["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    measured["simulate_s_runs"] = [r["simulate_s"] for r in runs]
    if {r["method"] for r in runs} != {priced.method}:
        raise SystemExit(f"{case.name}: priced {priced.method}, ran {[r['method'] for r in runs]}")
    return {"case": case.to_json(), "price": priced.model_dump(mode="json"), "terms": dict(terms), "measured": measured}


def _run_once(case: Case, run_dir: Path) -> dict[str, Any]:
    """One fresh runner process: its timings, its wall time and its own peak resident memory (wait4)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "runner", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{case.name}: runner exit {child.returncode}: {(run_dir / 'error.json').read_text()}")
    result = json.loads((run_dir / "result.json").read_text())
    return {
        "simulate_s": result["timings"]["simulate_s"],
        "runner_total_s": result["timings"]["total_s"],
        "wall_s": wall,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "method": result["provenance"]["method"],
    }


def ratios(rows: list[dict[str, Any]], estimate: str, measured: str) -> dict[str, Any]:
    values = [(r["case"]["name"], _get(r, estimate) / max(_get(r, measured), 1e-9)) for r in rows]
    ordered = sorted(v for _, v in values)
    return {
        "median": statistics.median(ordered),
        "worst_under": min(values, key=lambda v: v[1]),
        "worst_over": max(values, key=lambda v: v[1]),
        "within_2x": sum(1 for v in ordered if 0.5 <= v <= 2) / len(ordered),
    }


def _get(row: dict[str, Any], dotted: str) -> float:
    part, key = dotted.split(".")
    return float(row[part][key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="fit the cost model's coefficients and print them")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    snapshots = {name: catalog.load(name) for name in ("ibm-fez", "ibm-fez-ideal")}
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="admission-cost-") as tmp:
        for case in CASES:
            if args.only not in case.name:
                continue
            row = measure(case, snapshots[case.device], Path(tmp))
            m, p = row["measured"], row["price"]
            print(
                f"{case.name:42s} {p['method']:20s} sim {m['simulate_s']:8.3f}s est {p['estimated_simulate_s']:8.3f}s"
                f"  rss {m['peak_rss_bytes'] / 2**20:7.0f}MiB est {p['memory_bytes'] / 2**20:7.0f}MiB",
                flush=True,
            )
            rows.append(row)
    summary = {
        "simulate_time": ratios(rows, "price.estimated_simulate_s", "measured.simulate_s"),
        "run_time": ratios(rows, "price.estimated_runtime_s", "measured.wall_s"),
        "memory": ratios(rows, "price.memory_bytes", "measured.peak_rss_bytes"),
    }
    document = {
        "benchmark": "admission_cost",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.admission_cost.run" + (" --fit" if args.fit else ""),
        "model": pricing.MODEL,
        "coefficients": pricing.COST._asdict(),
        "runner_bytes": pricing.RUNNER_BYTES,
        "bytes_per_op": pricing.BYTES_PER_OP,
        "machine": describe(),
        "elapsed_s": time.perf_counter() - started,
        "summary": summary,
        "cases": rows,
    }
    if args.fit:
        document["fitted"] = fit(rows)
        print(json.dumps(document["fitted"], indent=2))
    print(json.dumps(summary, indent=2))
    if not args.only:
        (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
        write_report(document, args.out / "REPORT.md")


if __name__ == "__main__":
    main()
