"""Aer's shot branching on the CPU, on and off: what turning it off costs, and why it is off.

The runner simulates a noisy circuit too large for a density matrix as statevector trajectories. Aer
0.18.2 can branch shots (`shot_branching_enable`): shots share a state until a noise choice splits
them. Issue 19 turned it off on the CPU after it returned wrong counts (tests/unit/runner/
test_dynamic_circuits.py). This benchmark measures both sides in one run, on one machine:

* **cost**: wall time of `runner.simulate.run` with the runner's plan (branching off) and the same plan
  with branching on, on native circuits of Fez's first row (sx on every qubit, cz along the row,
  `--layers` layers, measured), `paper` and `relaxation` noise from the runner's own noise cache;
* **correctness**: of `--trials` runs of `x $0; x $1; measure` on Fez (2,000 shots, `paper` noise, a
  seed each), how many return an outcome other than `11` for more than 20 % of the shots (the noise
  accounts for about 2 %).

    python -m benchmarks.shot_branching.run [--qubits 12 14 16] [--layers 10] [--shots 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import qiskit
import qiskit_aer
from qiskit import QuantumCircuit

from device_registry import catalog
from runner import simulate
from runner.noise import NoiseCache
from vqpu_protocol.rundir import NoiseModelName, NoiseOptions, RunOptions

HERE = Path(__file__).parent


def _row_circuit(n: int, layers: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, n)
    for _ in range(layers):
        for q in range(n):
            qc.sx(q)
        for q in range(n - 1):
            qc.cz(q, q + 1)
    qc.measure(range(n), range(n))
    return qc


def _timed(
    circuit: QuantumCircuit, model: Any, plan: simulate.Plan, shots: int, seed: int
) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    sampled = simulate.run(circuit, model, plan, shots, seed, memory=False)
    return time.perf_counter() - started, sampled.counts


def _branching(plan: simulate.Plan) -> simulate.Plan:
    return simulate.Plan(
        plan.method, plan.device, plan.reason + "; shot branching on", {**plan.options, "shot_branching_enable": True}
    )


def _marginals(counts: dict[str, int], n: int) -> list[float]:
    """Each qubit's P(1) (qubit i is the i-th character from the right of a key)."""
    shots = sum(counts.values())
    return [sum(v for k, v in counts.items() if k[n - 1 - i] == "1") / shots for i in range(n)]


def _largest_marginal_gap(a: dict[str, int], b: dict[str, int], n: int) -> float:
    """The largest difference of one qubit's P(1) between two runs: comparable at any entropy (a total
    variation between two 1,000-shot samples over 2^16 outcomes is near 1 whatever the simulator does)."""
    return max(abs(x - y) for x, y in zip(_marginals(a, n), _marginals(b, n), strict=True))


def cost(qubits: list[int], layers: int, shots: int, repeats: int) -> list[dict[str, Any]]:
    fez = catalog.load("ibm-fez")
    cache = NoiseCache()
    rows = []
    for model_name in (NoiseModelName.PAPER, NoiseModelName.RELAXATION):
        for n in qubits:
            circuit = _row_circuit(n, layers)
            noise = cache.get(fez, frozenset(range(n)), model_name, NoiseOptions())
            off = simulate.plan(RunOptions(method="statevector", device="CPU"), "CPU", n, noisy=True)
            on = _branching(off)
            times: dict[str, list[float]] = {"off": [], "on": []}
            counts: dict[str, dict[str, int]] = {}
            for r in range(repeats):  # interleaved, so drift hits both alike
                for label, plan in (("off", off), ("on", on)):
                    seconds, counts[label] = _timed(circuit, noise.model, plan, shots, seed=1000 + r)
                    times[label].append(seconds)
            row = {
                "noise_model": model_name.value,
                "qubits": n,
                "layers": layers,
                "shots": shots,
                "off_s": times["off"],
                "on_s": times["on"],
                "off_median_s": statistics.median(times["off"]),
                "on_median_s": statistics.median(times["on"]),
                "largest_marginal_gap": _largest_marginal_gap(counts["off"], counts["on"], n),
                "sampling_sigma_of_gap": (2 * 0.25 / shots) ** 0.5,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def correctness(trials: int) -> dict[str, Any]:
    fez = catalog.load("ibm-fez")
    qc = QuantumCircuit(2, 2)
    qc.x([0, 1])
    qc.measure([0, 1], [0, 1])
    noise = NoiseCache().get(fez, frozenset({0, 1}), NoiseModelName.PAPER, NoiseOptions())
    off = simulate.plan(RunOptions(method="statevector", device="CPU"), "CPU", 2, noisy=True)
    out: dict[str, Any] = {"trials": trials, "shots": 2000}
    for label, plan in (("off", off), ("on", _branching(off))):
        wrong = []
        for seed in range(trials):
            counts = simulate.run(qc, noise.model, plan, 2000, seed, memory=False).counts
            if any(k != "11" and v > 0.2 * 2000 for k, v in counts.items()):
                wrong.append({"seed": seed, "counts": counts})
        out[label] = {"wrong_runs": len(wrong), "examples": wrong[:3]}
        print(label, len(wrong), "wrong of", trials, flush=True)
    return out


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Shot branching on the CPU: off (the runner's choice since issue 19) beside on",
        "",
        f"Generated by `python -m benchmarks.shot_branching.run` at {results['generated_at']} from `results.json`, "
        f"on {m['cpus']} usable CPUs, CPython {m['python']}, qiskit {m['qiskit']}, qiskit-aer {m['qiskit_aer']}. "
        "Both settings in one run, interleaved, on one machine; `runner.simulate.run` with the runner's noise models.",
        "",
        "## Correctness",
        "",
        f"`x $0; x $1; measure` on Fez, `paper` noise, {results['correctness']['shots']} shots, "
        f"{results['correctness']['trials']} seeds: runs where an outcome other than `11` took more than 20 % "
        "of the shots.",
        "",
        "| shot branching | wrong runs |",
        "|---|---|",
        f"| off | {results['correctness']['off']['wrong_runs']} |",
        f"| on | {results['correctness']['on']['wrong_runs']} |",
        "",
    ]
    examples = results["correctness"]["on"]["examples"]
    if examples:
        lines += [f"A wrong run with branching on (seed {examples[0]['seed']}): `{examples[0]['counts']}`.", ""]
    lines += [
        "## Cost",
        "",
        "Fez's first row, sx on every qubit and cz along the row per layer, measured; statevector trajectories "
        "on the CPU.",
        "",
        "| noise | qubits | layers | shots | off (median) | on (median) | off / on | largest gap in one qubit's P(1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["cost"]:
        ratio = r["off_median_s"] / r["on_median_s"] if r["on_median_s"] else float("nan")
        lines.append(
            f"| {r['noise_model']} | {r['qubits']} | {r['layers']} | {r['shots']} | {r['off_median_s']:.2f} s | "
            f"{r['on_median_s']:.2f} s | {ratio:.2f}x | {r['largest_marginal_gap']:.3f} "
            f"(sigma <= {r['sampling_sigma_of_gap']:.3f}) |"
        )
    lines += [
        "",
        "The last column compares the two settings where a comparison means something at this entropy (a "
        "total variation between two 1,000-shot samples over 2^12-2^16 outcomes is near 1 whatever the "
        "simulator does): each qubit's P(1), the largest gap of the n qubits. sigma is the standard deviation "
        "of one gap from sampling alone (at P = 1/2); the largest of 12-16 gaps is expected near 2.5 sigma.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shot_branching.run", description=__doc__)
    parser.add_argument("--qubits", type=int, nargs="+", default=[12, 14, 16])
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    results = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "qiskit": qiskit.__version__,
            "qiskit_aer": qiskit_aer.__version__,
        },
        "correctness": correctness(args.trials),
        "cost": cost(args.qubits, args.layers, args.shots, args.repeats),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "REPORT.md").write_text(report(results))
    print((args.out / "REPORT.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
