"""The workload: a tiny task, the native Bell pair on Fez's qubits 0 and 1, 100 shots, one seed per task."""

from __future__ import annotations

from pathlib import Path

from device_registry import Snapshot
from harness.circuits import BELL
from vqpu_protocol.rundir import TaskDocument, write_inputs

DEVICE = "ibm-fez"
CIRCUIT = BELL
DIALECT = "qasm3"
SHOTS = 100
SEEDS = {"warmup": 1000, "poll": 2000, "wait": 3000, "burst": 4000}
"""Task i of a phase runs with seed SEEDS[phase] + i, in the service and in-process alike."""


def seeds(phase: str, n: int) -> list[int]:
    return [SEEDS[phase] + i for i in range(n)]


def write_run_dir(run_dir: Path, snapshot: Snapshot, seed: int) -> Path:
    """A run directory as the agent writes one for the task (task.json + snapshot.json)."""
    task = TaskDocument.model_validate(
        {
            "schema": "vqpu.task/1",
            "task_id": run_dir.name,
            "circuit": CIRCUIT,
            "dialect": DIALECT,
            "shots": SHOTS,
            "seed": seed,
            "snapshot_sha256": snapshot.sha256(),
        }
    )
    write_inputs(run_dir, task, snapshot.canonical_json())
    return run_dir
