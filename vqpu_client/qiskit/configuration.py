"""`backend.configuration()`: the BackendV1-era description that tools such as mthree still read, built
from the backend's Target and the service's limits, with the field names and SI units of
qiskit-ibm-runtime's `QasmBackendConfiguration` (seconds, not the nanoseconds of IBM's JSON)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from qiskit.transpiler import Target

from device_registry.snapshot import Snapshot
from vqpu_protocol.limits import MAX_SHOTS

CONTROL_FLOW = frozenset({"if_else", "while_loop", "for_loop", "switch_case"})


@dataclass(frozen=True)
class BackendConfiguration:
    """A read-only view: changing the device means a new epoch of its snapshot, never editing this."""

    backend_name: str
    backend_version: str
    n_qubits: int
    basis_gates: list[str]
    coupling_map: list[list[int]]
    supported_instructions: list[str]
    conditional: bool
    dt: float | None
    description: str
    simulator: bool = True
    local: bool = False
    open_pulse: bool = False
    memory: bool = True
    max_shots: int = MAX_SHOTS
    max_experiments: int = 300
    """Circuits per `run()` that tools batch by (IBM's value; mthree needs a number). The service itself
    sets no such limit."""
    meas_levels: list[int] = field(default_factory=lambda: [2])
    dynamic_reprate_enabled: bool = False
    credits_required: bool = False

    @property
    def num_qubits(self) -> int:
        return self.n_qubits

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def configuration_of(snapshot: Snapshot, target: Target, backend_version: str) -> BackendConfiguration:
    """The configuration of the device `target` describes (a coupling per direction the transpiler may use)."""
    coupling = target.build_coupling_map()
    edges = [] if coupling is None else sorted([int(a), int(b)] for a, b in coupling.get_edges())
    names = set(target.operation_names)
    return BackendConfiguration(
        backend_name=snapshot.device_id,
        backend_version=backend_version,
        n_qubits=target.num_qubits,
        basis_gates=sorted(set(snapshot.native_gates)),
        coupling_map=edges,
        supported_instructions=sorted(names),
        conditional=bool(names & CONTROL_FLOW),
        dt=getattr(target, "dt", None),
        description=f"{snapshot.device_id} at calibration epoch {snapshot.epoch}, simulated by an HPC-vQPU service",
    )
