"""Noise derived from a snapshot's calibration, for the circuit's active qubits only (docs/devices.md).

`paper`: depolarizing on each physical 1-qubit gate (not rz, id) and each 2-qubit edge gate, with
λ = d·ε/(d-1) capped as Qiskit-Aer caps it, and symmetric readout clamped to [0, 0.5].
`relaxation`: Qiskit-Aer's `NoiseModel.from_backend` convention — thermal relaxation from T1, T2 and
the gate's duration on every timed gate (id included: it is a timed idle), a depolarizing part
reduced so the composite channel has the calibrated infidelity, and asymmetric readout from
`prob_meas*` (symmetric `readout_error` where those are missing).

Idle time (`idle_relaxation`): under `relaxation`, every `delay` on an active qubit is followed by
thermal relaxation from the qubit's T1, T2 over the delay's duration — Qiskit-Aer's own pass for it,
`RelaxationNoisePass(t1s, t2s, dt, op_types=Delay)`, built as `NoiseModel.from_backend` builds it:
T2 truncated to 2·T1, a missing T1 infinite, a missing T2 2·T1, and an equilibrium excited-state
population of 0 (from_backend's default temperature of 0 gives 0 whatever the qubit frequency, which
a snapshot does not carry). A delay in `dt` is converted with the snapshot's dt. Aer's pass reaches a
circuit's own delays only; `IdleRelaxation.apply` runs one inside each control-flow block too, built for
the block's physical qubits, so a delay relaxes wherever it is. `paper` has no idle noise.

`NoiseOptions` then scale or remove each channel on its own: the depolarizing part's λ (gate_1q,
gate_2q), the readout flip probabilities (readout), the relaxation rates 1/T1, 1/T2 (relaxation).
How a calibrated infidelity splits into a depolarizing and a relaxation part is fixed by the
calibration, before any scaling, so each factor moves one physical process and nothing else.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from qiskit import QuantumCircuit
from qiskit.circuit import Delay
from qiskit.quantum_info import average_gate_fidelity
from qiskit.transpiler import PassManager
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    thermal_relaxation_error,
)
from qiskit_aer.noise.passes import RelaxationNoisePass

from device_registry import Qubit, Snapshot
from vqpu_protocol.pricing_noise import READOUT_SCALED_CAP, UNTIMED_1Q
from vqpu_protocol.rundir import NoiseModelName, NoiseOptions

_CACHE_SIZE = 64


@dataclass(frozen=True)
class Noise:
    model: NoiseModel | None
    """None when the calibration, as the options leave it, holds no noise for these qubits: ideal."""
    channels: int
    """Quantum and readout error channels the model holds: one per (gate, qubits) and per measured qubit."""


@dataclass(frozen=True)
class BuiltNoise:
    model: NoiseModel | None
    channels: int
    cache_hit: bool


class NoiseCache:
    """Noise models by (snapshot hash, model, qubit set, noise options); one per runner process."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._models: OrderedDict[tuple[object, ...], Noise] = OrderedDict()

    def get(
        self,
        snapshot: Snapshot,
        qubits: frozenset[int],
        model: NoiseModelName,
        options: NoiseOptions,
        layout: tuple[int, ...] | None = None,
        *,
        digest: str | None = None,
    ) -> BuiltNoise:
        """`digest`: the snapshot's sha256 where the caller has it already."""
        key = (digest or snapshot.sha256(), model.value, qubits, options.cache_key(), layout)
        if key in self._models:
            self._models.move_to_end(key)
            hit = self._models[key]
            return BuiltNoise(hit.model, hit.channels, cache_hit=True)
        built = build_noise_model(snapshot, qubits, model, options, layout)
        self._models[key] = built
        if len(self._models) > self._size:
            self._models.popitem(last=False)
        return BuiltNoise(built.model, built.channels, cache_hit=False)


def build_noise_model(
    snapshot: Snapshot,
    qubits: frozenset[int],
    model: NoiseModelName,
    options: NoiseOptions,
    layout: tuple[int, ...] | None = None,
) -> Noise:
    """`layout`: where the circuit is compacted (`circuit.compact`), the physical qubit of each of its
    qubits; the channels are then on the circuit's qubits rather than on the device's (each of `qubits`
    must be in it)."""
    at = {physical: i for i, physical in enumerate(layout)} if layout is not None else _Identity()
    relax = model is NoiseModelName.RELAXATION
    f = _Factors.of(options)
    two_qubit = snapshot.two_qubit_gates()
    noise = NoiseModel(basis_gates=sorted(set(snapshot.native_gates) | {"reset"}))
    channels = 0
    for index in sorted(qubits):
        q = snapshot.qubits[index]
        readout = _readout(q, relax, f.readout)
        if readout is not None:
            noise.add_readout_error(readout, [at[index]])
            channels += 1
        for gate in snapshot.native_gates:
            if gate in two_qubit:
                continue
            error = _one_qubit_error(q, gate, relax, f)
            if error is not None:
                noise.add_quantum_error(error, gate, [at[index]])
                channels += 1
        if relax:
            reset = _relaxation([q], q.gate_durations.get("reset"), f.relaxation)
            if reset is not None:
                noise.add_quantum_error(reset, "reset", [at[index]])
                channels += 1
    for (a, b), edge in snapshot.couplings().items():
        if a not in qubits or b not in qubits or not edge.available:
            continue
        pair = [snapshot.qubits[a], snapshot.qubits[b]]
        calibrated, applied = _relaxations(pair, edge.duration, f.relaxation) if relax else (None, None)
        error = _combine(_depolarizing(edge.error, 2, calibrated, f.gate_2q), applied)
        if error is not None:
            noise.add_quantum_error(error, edge.gate, [at[a], at[b]])
            channels += 1
    return Noise(noise, channels) if not noise.is_ideal() else Noise(None, 0)


class _Identity(dict[int, int]):
    """Every physical qubit its own index: a circuit on the device's qubits."""

    def __missing__(self, key: int) -> int:
        return key


@dataclass(frozen=True)
class IdleRelaxation:
    """Thermal relaxation after each delay, per physical qubit (infinite times: none there)."""

    t1s: tuple[float, ...]
    t2s: tuple[float, ...]
    dt: float | None

    def apply(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """`circuit` (on physical qubits) with relaxation after each of its delays, inside control-flow
        blocks too: Aer's pass reaches a circuit's own operations only, so each block gets a pass of its
        own, built for the physical qubits the block's qubits stand for."""
        return self._relaxed(circuit, list(range(circuit.num_qubits)))

    def _relaxed(self, circuit: QuantumCircuit, physical: list[int]) -> QuantumCircuit:
        step = RelaxationNoisePass(
            t1s=[self.t1s[p] for p in physical], t2s=[self.t2s[p] for p in physical], dt=self.dt, op_types=Delay
        )
        out: QuantumCircuit = PassManager([step]).run(circuit)
        for position, inst in enumerate(out.data):
            blocks = getattr(inst.operation, "blocks", ())
            if blocks:
                inner = [physical[out.find_bit(q).index] for q in inst.qubits]
                relaxed = [self._relaxed(block, inner) for block in blocks]
                out.data[position] = inst.replace(operation=inst.operation.replace_blocks(relaxed))
        return out


def idle_relaxation(
    snapshot: Snapshot, qubits: frozenset[int], model: NoiseModelName, options: NoiseOptions
) -> IdleRelaxation | None:
    """The relaxation to put after each delay on `qubits` (the active qubits that carry one, at any depth);
    None when no delay there can relax: `paper`, relaxation scaled to 0, or no T1/T2 on them. The
    relaxation factor scales 1/T1 and 1/T2, as it does for gates."""
    rate = options.factor("relaxation")
    if model is not NoiseModelName.RELAXATION or not rate:
        return None
    t1s = [math.inf] * snapshot.num_qubits
    t2s = [math.inf] * snapshot.num_qubits
    for index in qubits:
        q = snapshot.qubits[index]
        if q.t1 is not None or q.t2 is not None:
            t1s[index], t2s[index] = _times(q, rate)
    if all(t == math.inf for t in t1s + t2s):
        return None
    return IdleRelaxation(t1s=tuple(t1s), t2s=tuple(t2s), dt=snapshot.dt)


def _times(q: Qubit, rate: float) -> tuple[float, float]:
    """(T1, T2) at `rate`: a missing T1 is infinite, a missing T2 is 2·T1, and T2 <= 2·T1 is kept."""
    t1 = q.t1 / rate if q.t1 is not None else math.inf
    t2 = q.t2 / rate if q.t2 is not None else 2 * t1
    return t1, min(t2, 2 * t1)


class _Factors(NamedTuple):
    gate_1q: float
    gate_2q: float
    readout: float
    relaxation: float

    @classmethod
    def of(cls, options: NoiseOptions) -> _Factors:
        return cls(
            gate_1q=options.factor("gate_1q"),
            gate_2q=options.factor("gate_2q"),
            readout=options.factor("readout"),
            relaxation=options.factor("relaxation"),
        )


def _one_qubit_error(q: Qubit, gate: str, relax: bool, f: _Factors) -> QuantumError | None:
    if not relax:
        return None if gate in UNTIMED_1Q else _depolarizing(q.error_1q, 1, None, f.gate_1q)
    if gate == "rz":
        return None
    calibrated, applied = _relaxations([q], q.gate_durations.get(gate), f.relaxation)
    return _combine(_depolarizing(q.error_1q, 1, calibrated, f.gate_1q), applied)


def _depolarizing(error: float | None, n: int, relax_error: QuantumError | None, factor: float) -> QuantumError | None:
    """Depolarizing part of a gate of average infidelity `error`, after what relaxation already explains,
    its λ multiplied by `factor` (so is the infidelity it adds) and capped at the fully depolarizing 4^n/(4^n-1)."""
    if not error or not factor:
        return None
    relax_fid = average_gate_fidelity(relax_error) if relax_error is not None else 1.0
    dim = 2**n
    error = min(error, dim / (dim + 1))
    if error <= 1.0 - relax_fid:
        return None
    param = dim * (error - (1.0 - relax_fid)) / (dim * relax_fid - 1)
    return depolarizing_error(min(factor * param, 4**n / (4**n - 1)), n)


def _relaxations(
    qubits: list[Qubit], duration: float | None, factor: float
) -> tuple[QuantumError | None, QuantumError | None]:
    """The calibrated relaxation (what the depolarizing part is reduced by) and the one applied."""
    calibrated = _relaxation(qubits, duration, 1.0)
    return calibrated, (calibrated if factor == 1.0 else _relaxation(qubits, duration, factor))


def _relaxation(qubits: list[Qubit], duration: float | None, rate: float) -> QuantumError | None:
    """Thermal relaxation over `duration`, one factor per qubit, qubit 0 of the gate first; `rate`
    multiplies 1/T1 and 1/T2 (T2 <= 2·T1 is kept, as both divide by it)."""
    if not rate or not duration or all(q.t1 is None and q.t2 is None for q in qubits):
        return None
    error: QuantumError | None = None
    for q in qubits:
        t1, t2 = _times(q, rate)
        single = thermal_relaxation_error(t1, t2, duration)
        error = single if error is None else error.expand(single)
    return error


def _combine(depolarizing: QuantumError | None, relaxation: QuantumError | None) -> QuantumError | None:
    if depolarizing is not None and relaxation is not None:
        return depolarizing.compose(relaxation)
    return depolarizing if depolarizing is not None else relaxation


def _readout(q: Qubit, relax: bool, factor: float) -> ReadoutError | None:
    if not factor:
        return None
    if relax and q.prob_meas1_prep0 is not None and q.prob_meas0_prep1 is not None:
        p10, p01 = q.prob_meas1_prep0, q.prob_meas0_prep1
    elif q.readout_error:
        p10 = p01 = q.readout_error if relax else min(max(q.readout_error, 0.0), 0.5)
    else:
        return None
    if factor != 1.0:
        p10, p01 = (min(factor * p, max(p, READOUT_SCALED_CAP)) for p in (p10, p01))
    if p10 == 0 and p01 == 0:
        return None
    return ReadoutError([[1 - p10, p10], [p01, 1 - p01]])
