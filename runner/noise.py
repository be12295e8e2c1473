"""Noise derived from a snapshot's calibration, for the circuit's active qubits only (docs/devices.md).

`paper`: depolarizing on each physical 1-qubit gate (not rz, id) and each 2-qubit edge gate, with
λ = d·ε/(d-1) capped as Qiskit-Aer caps it, and symmetric readout clamped to [0, 0.5].
`relaxation`: Qiskit-Aer's `NoiseModel.from_backend` convention — thermal relaxation from T1, T2 and
the gate's duration on every timed gate (id included: it is a timed idle), a depolarizing part
reduced so the composite channel has the calibrated infidelity, and asymmetric readout from
`prob_meas*` (symmetric `readout_error` where those are missing).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from qiskit.quantum_info import average_gate_fidelity
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    thermal_relaxation_error,
)

from device_registry import Qubit, Snapshot
from vqpu_protocol.rundir import NoiseModelName

UNTIMED_1Q = frozenset({"rz", "id"})
"""Gates the paper model leaves noiseless: virtual frame changes and explicit idles."""

_CACHE_SIZE = 64


@dataclass(frozen=True)
class BuiltNoise:
    model: NoiseModel | None
    """None when the calibration holds no noise for these qubits: ideal execution."""
    cache_hit: bool


class NoiseCache:
    """Noise models by (snapshot hash, model, qubit set); one per runner process."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._models: OrderedDict[tuple[str, str, frozenset[int]], NoiseModel | None] = OrderedDict()

    def get(self, snapshot: Snapshot, qubits: frozenset[int], model: NoiseModelName) -> BuiltNoise:
        key = (snapshot.sha256(), model.value, qubits)
        if key in self._models:
            self._models.move_to_end(key)
            return BuiltNoise(self._models[key], cache_hit=True)
        built = build_noise_model(snapshot, qubits, model)
        self._models[key] = built
        if len(self._models) > self._size:
            self._models.popitem(last=False)
        return BuiltNoise(built, cache_hit=False)


def build_noise_model(snapshot: Snapshot, qubits: frozenset[int], model: NoiseModelName) -> NoiseModel | None:
    relax = model is NoiseModelName.RELAXATION
    two_qubit = snapshot.two_qubit_gates()
    noise = NoiseModel(basis_gates=sorted(set(snapshot.native_gates) | {"reset"}))
    for index in sorted(qubits):
        q = snapshot.qubits[index]
        readout = _readout(q, relax)
        if readout is not None:
            noise.add_readout_error(readout, [index])
        for gate in snapshot.native_gates:
            if gate in two_qubit:
                continue
            error = _one_qubit_error(q, gate, relax)
            if error is not None:
                noise.add_quantum_error(error, gate, [index])
        if relax:
            reset = _relaxation([q], q.gate_durations.get("reset"))
            if reset is not None:
                noise.add_quantum_error(reset, "reset", [index])
    for (a, b), edge in snapshot.couplings().items():
        if a not in qubits or b not in qubits or not edge.available:
            continue
        pair = [snapshot.qubits[a], snapshot.qubits[b]]
        relax_error = _relaxation(pair, edge.duration) if relax else None
        error = _combine(_depolarizing(edge.error, 2, relax_error), relax_error)
        if error is not None:
            noise.add_quantum_error(error, edge.gate, [a, b])
    return noise if not noise.is_ideal() else None


def _one_qubit_error(q: Qubit, gate: str, relax: bool) -> QuantumError | None:
    if not relax:
        return None if gate in UNTIMED_1Q else _depolarizing(q.error_1q, 1, None)
    if gate == "rz":
        return None
    relax_error = _relaxation([q], q.gate_durations.get(gate))
    return _combine(_depolarizing(q.error_1q, 1, relax_error), relax_error)


def _depolarizing(error: float | None, n: int, relax_error: QuantumError | None) -> QuantumError | None:
    """Depolarizing part of a gate of average infidelity `error`, after what relaxation already explains."""
    if not error:
        return None
    relax_fid = average_gate_fidelity(relax_error) if relax_error is not None else 1.0
    dim = 2**n
    error = min(error, dim / (dim + 1))
    if error <= 1.0 - relax_fid:
        return None
    param = dim * (error - (1.0 - relax_fid)) / (dim * relax_fid - 1)
    return depolarizing_error(min(param, 4**n / (4**n - 1)), n)


def _relaxation(qubits: list[Qubit], duration: float | None) -> QuantumError | None:
    """Thermal relaxation over `duration`, one factor per qubit, qubit 0 of the gate first."""
    if not duration or all(q.t1 is None and q.t2 is None for q in qubits):
        return None
    error: QuantumError | None = None
    for q in qubits:
        t1 = q.t1 if q.t1 is not None else math.inf
        t2 = q.t2 if q.t2 is not None else 2 * t1
        single = thermal_relaxation_error(t1, min(t2, 2 * t1), duration)
        error = single if error is None else error.expand(single)
    return error


def _combine(depolarizing: QuantumError | None, relaxation: QuantumError | None) -> QuantumError | None:
    if depolarizing is not None and relaxation is not None:
        return depolarizing.compose(relaxation)
    return depolarizing if depolarizing is not None else relaxation


def _readout(q: Qubit, relax: bool) -> ReadoutError | None:
    if relax and q.prob_meas1_prep0 is not None and q.prob_meas0_prep1 is not None:
        p10, p01 = q.prob_meas1_prep0, q.prob_meas0_prep1
    elif q.readout_error:
        p10 = p01 = q.readout_error if relax else min(max(q.readout_error, 0.0), 0.5)
    else:
        return None
    if p10 == 0 and p01 == 0:
        return None
    return ReadoutError([[1 - p10, p10], [p01, 1 - p01]])
