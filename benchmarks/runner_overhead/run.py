"""`python -m benchmarks.runner_overhead.run [--repeats N] [--out DIR]`: measure, then write results.json and REPORT.md.

Every repetition runs each fresh-process measurement once, interleaved, so a slow moment of the
machine lands on all of them alike; one discarded warm-up round fills the OS page cache and .pyc files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.runner_overhead import machine, measure, report, workload

HERE = Path(__file__).resolve().parent
SCHEMA = "vqpu.bench.runner_overhead/1"
PAPER_S = 1.3
AIM_S = 0.15
NOISE_MODELS = ("paper", "relaxation")
BARE_LEVELS = (0, 2)

Raw = dict[str, list[dict[str, Any]]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner_overhead.run", description=__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="fresh-process runs of each kind (default 15)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and REPORT.md go")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    results = collect(args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "REPORT.md").write_text(report.render(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'REPORT.md'}", file=sys.stderr)
    return 0


def collect(repeats: int) -> dict[str, Any]:
    raw: Raw = {}
    extras: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vqpu-bench-") as tmp:
        run_dirs = {model: Path(tmp) / model for model in NOISE_MODELS}
        for model, run_dir in run_dirs.items():
            workload.write_run_dir(run_dir, model)
        probes = _fresh_process_probes(run_dirs)
        _progress("warm-up round (discarded)")
        for probe in probes.values():
            probe()
        for i in range(repeats):
            _progress(f"round {i + 1}/{repeats}")
            for name, probe in probes.items():
                sample, extra = probe()
                raw.setdefault(name, []).append(sample)
                extras[name] = extra
    _progress("agreement check: NoiseModel.from_backend over the snapshot's own Target")
    extras["bare-aer-snapshot-O0"] = measure.bare_aer_process(0, backend="snapshot")[1]
    warm_first: dict[str, dict[str, Any]] = {}
    for model in NOISE_MODELS:
        _progress(f"in-process, warm cache: {model}")
        first, *rest = measure.warm_in_process(model, repeats + 1)
        warm_first[model], raw[f"warm-{model}"] = first, rest
    _progress("import breakdown")
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": machine.describe(),
        "config": config(repeats),
        "reference": {"paper_s": PAPER_S, "aim_s": AIM_S},
        "series": {name: {"samples": samples, "summary": summarize(samples)} for name, samples in raw.items()},
        "warm_first_call": warm_first,
        "imports_s": measure.import_breakdown(5),
        "sanity": sanity(extras),
    }


Probe = Callable[[], tuple[measure.Sample, dict[str, Any]]]


def _fresh_process_probes(run_dirs: dict[str, Path]) -> dict[str, Probe]:
    probes: dict[str, Probe] = {}
    for model, run_dir in run_dirs.items():
        probes[f"runner-{model}"] = partial(measure.runner_process, run_dir)
    for level in BARE_LEVELS:
        probes[f"bare-aer-O{level}"] = partial(measure.bare_aer_process, level)
    probes["interpreter"] = lambda: (measure.interpreter(), {})
    return probes


def summarize(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    metrics = [k for k, v in samples[0].items() if isinstance(v, float)]
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        values = [s[metric] for s in samples]
        out[metric] = {
            "median": statistics.median(values),
            "p90": statistics.quantiles(values, n=10, method="inclusive")[8],
            "min": min(values),
            "max": max(values),
        }
    return out


def sanity(extras: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Same circuit, same seed: the runs really did the same job (methods, widths, output distributions)."""
    bare = extras["bare-aer-O0"]
    runs = {model: extras[f"runner-{model}"] for model in NOISE_MODELS}
    return {
        "runner": {
            model: {k: r["provenance"][k] for k in ("method", "device", "transpile", "noise_cache", "active_qubits")}
            for model, r in runs.items()
        },
        "bare_aer": {
            f"O{level}": {k: extras[f"bare-aer-O{level}"][k] for k in ("backend", "method", "compiled_ops")}
            for level in BARE_LEVELS
        },
        "tvd_vs_bare_aer_O0": {model: tvd(r["counts"], bare["counts"]) for model, r in runs.items()},
        "tvd_vs_from_backend_on_snapshot_target": {
            model: tvd(r["counts"], extras["bare-aer-snapshot-O0"]["counts"]) for model, r in runs.items()
        },
    }


def tvd(a: dict[str, int], b: dict[str, int]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in a.keys() | b.keys())


def config(repeats: int) -> dict[str, Any]:
    return {
        "device": workload.DEVICE,
        "qubits": list(workload.QUBITS),
        "shots": workload.SHOTS,
        "seed": workload.SEED,
        "repeats": repeats,
        "noise_models": list(NOISE_MODELS),
        "bare_aer_optimization_levels": list(BARE_LEVELS),
        "circuit_qasm": workload.qasm(),
    }


def _progress(message: str) -> None:
    print(f"[runner_overhead] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
