"""Valid protocol documents for agents that tests and benchmarks play by hand (no runner behind them)."""

from __future__ import annotations

from typing import Any

from vqpu_protocol.rundir import ResultDocument

TIMINGS: dict[str, float] = {"parse_s": 0.0, "transpile_s": 0.0, "noise_s": 0.0, "simulate_s": 0.0, "total_s": 0.0}


def provenance(task_id: str, **fields: Any) -> dict[str, Any]:
    """A runner's provenance of a run played by hand: every required field, `fields` over the defaults."""
    return {
        "task_id": task_id,
        "attempt": 1,
        "device_id": "line-16",
        "epoch": 0,
        "snapshot_sha256": "0" * 64,
        "seed": 0,
        "seed_source": "runner",
        "noise_model": "paper",
        "noise_empty": True,
        "noise_cache": "miss",
        "method": "statevector",
        "device": "CPU",
        "method_reason": "played by hand",
        "simulator_options": {},
        "transpile": "native",
        "active_qubits": [],
        "dialect": "qasm3",
        "runner": "none",
        "qiskit": None,
        "qiskit_aer": None,
        "python": "none",
        "hostname": "localhost",
        "scheduler_job_id": None,
    } | fields


def result_document(claimed: dict[str, Any], counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A `vqpu.result/1` document for one task of a CLAIM response, as a runner would have written it."""
    task = claimed["task"]
    counts = counts if counts is not None else {"00": task["shots"]}
    doc = ResultDocument.model_validate(
        {
            "counts": counts,
            "shots": sum(counts.values()),
            "timings": TIMINGS,
            "provenance": provenance(
                task["id"],
                attempt=claimed["attempt"],
                device_id=task["device"],
                epoch=task["epoch"],
                snapshot_sha256=task["snapshot_sha256"],
                seed=task["seed"] if task["seed"] is not None else 0,
                seed_source="task" if task["seed"] is not None else "runner",
                noise_model=task["options"]["noise_model"],
                dialect=task["dialect"],
            ),
        }
    )
    return doc.model_dump(mode="json", by_alias=True)
