"""Calibration drift measured: five refreshes of ibm-fez, then the epoch sweep over epochs 0-5.

The same path a user takes (docs/sweeps.md): the local stack (control plane, Prefect server, agent),
`calibration-refresh` run five times in this process with seeds 100-104 (each PUTs a drifted epoch),
then `calibration-epoch-sweep` over every epoch, each benchmark a task pinned to its epoch with one
seed. Writes results.json (every row) and REPORT.md (TV to the ideal per epoch and benchmark, beside
the sampling floor, and TV between consecutive epochs).

    python -m benchmarks.epoch_sweep.run [--shots 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from harness.stack import LocalStack

REFRESH_SEEDS = (100, 101, 102, 103, 104)


def report(document: dict[str, object]) -> str:
    rows: list[dict[str, object]] = document["rows"]  # type: ignore[assignment]
    names = list(dict.fromkeys(str(r["benchmark"]) for r in rows))
    epochs = sorted({int(r["epoch"]) for r in rows})  # type: ignore[call-overload]

    def cell(epoch: int, name: str, field: str) -> str:
        [row] = [r for r in rows if r["epoch"] == epoch and r["benchmark"] == name]
        value = row[field]
        return f"{value:.3f}" if isinstance(value, float) else str(row["status"] if value is None else value)

    lines = [
        "# Calibration-epoch sweep on ibm-fez",
        "",
        f"Five `calibration-refresh` runs (seeds {', '.join(map(str, REFRESH_SEEDS))}) made epochs 1-5 from the "
        f"imported epoch 0; `calibration-epoch-sweep` then ran every benchmark pinned to each epoch, "
        f"{document['shots']} shots, seed {document['seed']}, noise model `{document['noise_model']}`. "
        "Measured by `python -m benchmarks.epoch_sweep.run` on the local stack.",
        "",
        "TV distance to the exact ideal output (the sampling floor is what sampling the ideal output alone gives):",
        "",
        "| epoch | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {e} | " + " | ".join(cell(e, n, "tv_ideal") for n in names) + " |" for e in epochs]
    lines.append("| sampling floor | " + " | ".join(cell(epochs[0], n, "sampling_floor") for n in names) + " |")
    lines += ["", "TV distance to the same benchmark's output at the previous epoch:", ""]
    lines += ["| epoch | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {e} | " + " | ".join(cell(e, n, "tv_previous_epoch") for n in names) + " |" for e in epochs[1:]]
    refreshes: list[dict[str, object]] = document["refreshes"]  # type: ignore[assignment]
    lines += ["", "What each refresh did:", "", "| epoch | seed | median T1 ratio | qubits out | couplers out |"]
    lines.append("|---|---|---|---|---|")
    for r in refreshes:
        lines.append(
            f"| {r['epoch']} | {r['seed']} | {r['median_t1_ratio']:.3f} | {r['qubits_went_offline'] or '-'} | "
            f"{r['edges_went_out'] or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("runs/epoch-sweep"))
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    stack = LocalStack(args.out / "stack").start()
    try:
        with stack.as_flow_user(admin=True):
            from flows.refresh import calibration_refresh
            from flows.sweep import calibration_epoch_sweep

            refreshes = [calibration_refresh(device="ibm-fez", seed=s) for s in REFRESH_SEEDS]
            sweep = calibration_epoch_sweep(device="ibm-fez", shots=args.shots, save_dir=str(args.out))
    finally:
        statuses = stack.stop()
    print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in statuses.items()))
    document = {**sweep.model_dump(mode="json"), "refreshes": [r.model_dump(mode="json") for r in refreshes]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    text = report(document)
    (args.out / "REPORT.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
