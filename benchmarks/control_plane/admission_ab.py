"""Admission latency of two servers side by side: this checkout's and a baseline checkout's, interleaved.

`python -m benchmarks.control_plane.admission_ab --baseline-src DIR` starts one `vqpu-server` from DIR (another
commit's source tree, e.g. a `git worktree`; it runs with this venv's packages and DIR first on PYTHONPATH) and
one from this checkout, each on its own fresh SQLite database, and times `POST /v1/tasks` with the benchmark's
1,000-gate Fez circuit on both in alternating batches, so that whatever else loads the machine loads both alike.
Writes admission_ab.json and ADMISSION_AB.md here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.control_plane import measure
from benchmarks.control_plane.run import SERVER_ENV
from benchmarks.control_plane.workload import FEZ, GATES, QUBITS, fez_circuit
from harness.servers import ServerProcess, make_keys
from vqpu_service.domain.model import Role

HERE = Path(__file__).parent
BATCH = 50
BATCHES = 10
WARMUP = 50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_plane.admission_ab", description=__doc__)
    parser.add_argument("--baseline-src", type=Path, required=True, help="the baseline's source tree")
    args = parser.parse_args(argv)
    base_src = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory(prefix="vqpu-bench-ab-") as tmp:
        servers = {}
        for name, env in (("baseline", {"PYTHONPATH": str(base_src)}), ("this", {})):
            work = Path(tmp) / name
            work.mkdir()
            keys = make_keys(work / "keys.json", bench=Role.USER)
            process = ServerProcess(
                work, f"sqlite:///{work / 'cp.db'}", work / "keys.json", name=name, env={**SERVER_ENV, **env}
            )
            servers[name] = (process.start(), keys["bench"])
        try:
            samples: dict[str, list[float]] = {name: [] for name in servers}
            for process, key in servers.values():
                measure.admission(process.url, key, 1, WARMUP)  # warm both before anything is kept
            for _ in range(BATCHES):
                for name, (process, key) in servers.items():
                    samples[name] += measure.admission(process.url, key, BATCH, 0)
        finally:
            for process, _ in servers.values():
                process.stop()
    results: dict[str, Any] = {
        "schema": "vqpu.bench.admission-ab/1",
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "baseline_commit": _commit(base_src),
        "this_commit": _commit(HERE),
        "circuit": {"device": FEZ, "gates": GATES, "qubits": QUBITS, "bytes": len(fez_circuit().encode())},
        "database": "sqlite",
        "batches": BATCHES,
        "batch": BATCH,
        "series": {name: measure.summarize(values) for name, values in samples.items()},
    }
    (HERE / "admission_ab.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "ADMISSION_AB.md").write_text(render(results))
    return 0


def render(r: dict[str, Any]) -> str:
    s = r["series"]

    def ms(v: float) -> str:
        return f"{v * 1000:.2f}"

    rows = [
        f"| {name} ({r[f'{name}_commit']}) | {int(x['n'])} | {ms(x['p50'])} | {ms(x['p90'])} | {ms(x['p99'])} |"
        for name, x in s.items()
    ]
    return "\n".join(
        [
            "# Admission latency beside a baseline (interleaved)",
            "",
            f"Measured {r['created']}: `POST /v1/tasks` with the {r['circuit']['gates']}-gate circuit on "
            f"{r['circuit']['device']}'s first {r['circuit']['qubits']} qubits ({r['circuit']['bytes']} bytes), "
            f"{r['database']}, two `vqpu-server` processes (this checkout and the baseline's source) timed in "
            f"{r['batches']} alternating batches of {r['batch']}, so that other load falls on both alike. "
            "Regenerate: `python -m benchmarks.control_plane.admission_ab --baseline-src DIR`.",
            "",
            "| server | n | p50 ms | p90 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def _commit(path: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=path, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
