"""The one workload every measurement shares: a native 5-qubit circuit on Fez qubits 0-4."""

from __future__ import annotations

import math
from pathlib import Path

DEVICE = "ibm-fez"
QUBITS = (0, 1, 2, 3, 4)
"""A coupled chain on Fez: edges 0-1, 1-2, 2-3, 3-4 are all AVAILABLE cz couplers."""
SHOTS = 8192
SEED = 2025
LAYERS = 4


def qasm() -> str:
    """sx/rz/x/cz layers over the chain, then measure everything (OpenQASM 2, native gates only)."""
    n = len(QUBITS)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(LAYERS):
        lines += [f"sx q[{q}];" for q in QUBITS]
        lines += [f"rz({math.pi / (q + layer + 2):.12f}) q[{q}];" for q in QUBITS]
        lines += [f"cz q[{a}],q[{a + 1}];" for a in QUBITS[layer % 2 : -1 : 2]]
        lines += [f"x q[{q}];" for q in QUBITS[layer % 2 :: 2]]
        lines += [f"cz q[{a}],q[{a + 1}];" for a in QUBITS[(layer + 1) % 2 : -1 : 2]]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def write_run_dir(run_dir: Path, noise_model: str) -> None:
    """A run directory exactly as the agent materialises one."""
    from device_registry import catalog
    from vqpu_protocol.rundir import TaskDocument, write_inputs

    snapshot = catalog.load(DEVICE)
    task = TaskDocument.model_validate(
        {
            "schema": "vqpu.task/1",
            "task_id": f"bench-{noise_model}",
            "circuit": qasm(),
            "dialect": "qasm2",
            "shots": SHOTS,
            "seed": SEED,
            "snapshot_sha256": snapshot.sha256(),
            "options": {"noise_model": noise_model},
        }
    )
    write_inputs(run_dir, task, snapshot.canonical_json())
