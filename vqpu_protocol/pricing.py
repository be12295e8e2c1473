"""The price of a task before it is admitted: the Aer method it will run with, the memory that method
needs, the worst size of its counts, and an estimate of its run time (docs/admission.md).

Pure and cheap (microseconds): computed from the admissibility pass's `CircuitStats`, the device
snapshot and the run options. The runner prices the circuit it is about to simulate with the same
functions, so the control plane and the runner can never disagree on the method or the memory.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Annotated, NamedTuple

from pydantic import Field

from device_registry import Snapshot, gates
from device_registry.admissibility import CircuitStats
from vqpu_protocol.pricing_noise import idle_noisy, is_noisy, noise_kinds
from vqpu_protocol.pubs import (
    ESTIMATOR_TRAJECTORIES,
    SAMPLED_SHOT_BYTES,
    EstimatorPub,
    EstimatorPubs,
    SamplerPub,
    SamplerPubs,
)
from vqpu_protocol.rundir import Method, NoiseModelName, Precision, RunOptions
from vqpu_protocol.wire import Document

__all__ = [
    "COST",
    "MODEL",
    "Cost",
    "Price",
    "idle_noisy",
    "is_noisy",
    "plan_method",
    "price",
    "price_pubs",
    "runtime_terms",
    "simulator_memory_mb",
    "state_bytes",
    "worst_counts_chars",
]

MODEL = "aer-cpu/4"
"""The cost model's id: changes whenever a formula or a coefficient below does."""

DENSITY_MATRIX_MAX_QUBITS = 10
"""A density matrix of n qubits costs 4^n amplitudes: exact and shot-free up to here, too big beyond."""

MAX_PRICED_BYTES = 2**62
"""Memory is capped here (4 EiB: more than any node has) so that a 156-qubit state stays a JSON integer."""
MAX_PRICED_SECONDS = 1e12
"""Run time is capped here (30,000 years) so that it stays a finite JSON number."""

AMPLITUDE_BYTES = {Precision.DOUBLE: 16, Precision.SINGLE: 8}
"""complex128 or complex64."""

COUNTS_ENTRY_CHARS = 12
"""Characters of a counts entry besides its key: quotes, colon, comma, space and the count."""

# --- the cost model, measured on a 2-core CPU node: benchmarks/admission_cost (results.json, REPORT.md) ---
RUNNER_BYTES = 180 * 2**20
"""A runner's resident memory besides the state: Python, Qiskit, Aer, SciPy under `relaxation`, the
snapshot; the largest measured, so that the price bounds every case's peak."""
BYTES_PER_OP = 2_100
"""Resident memory per operation of the parsed circuit (Qiskit's and Aer's copies of it)."""


class Cost(NamedTuple):
    """Seconds per unit of each term of `runtime_terms`: a run's estimate is their sum."""

    start: float
    """Starting a runner process: the interpreter and the imports of Qiskit and Aer."""
    parse_op: float
    """Parsing, fitting and handing one operation to Aer."""
    run: float
    """One Aer run's fixed cost."""
    op: float
    """One operation of the circuit handed to Aer (converted once per run, however many passes)."""
    amplitude_op: float
    """One operation on one statevector amplitude (ideal, or a dynamic circuit's shot)."""
    trajectory_amplitude_op: float
    """One operation on one amplitude of a noisy shot (its noise sampled; shots branch and run side by side)."""
    relaxation_amplitude_op: float
    """The same under the `relaxation` model, whose thermal-relaxation channels are not unitary mixtures."""
    element_op: float
    """One operation on one density-matrix element."""
    relaxation_element_op: float
    """The same under the `relaxation` model."""
    mps_op: float
    """One operation of a matrix product state, besides its bonds."""
    mps_bond_op: float
    """A multi-qubit operation's decomposition (an SVD of 2χ x 2χ) per χ³, χ³ the mean over the cuts of
    the bound on the bond dimension: not fitted, measured (numpy SVD at χ = 128), so the price of a deep
    entangling circuit stays a bound however loose the bond bound is on shallow ones."""
    shot: float
    """Sampling one shot and counting its outcome."""
    shot_pass: float
    """Simulating one shot on its own, besides its operations."""
    mps_shot: float
    """Sampling one shot of a matrix product state, per qubit per χ² of its largest bond."""


COST = Cost(
    start=1.4,
    parse_op=6.0e-6,
    run=0.029,
    op=2.0e-5,
    amplitude_op=3.6e-9,
    trajectory_amplitude_op=4.1e-9,
    relaxation_amplitude_op=1.2e-8,
    element_op=1.1e-8,
    relaxation_element_op=2.1e-8,
    mps_op=6.2e-5,
    mps_bond_op=1.2e-8,
    shot=2.6e-6,
    shot_pass=3.6e-5,
    mps_shot=3.5e-10,
)
"""Fitted by `python -m benchmarks.admission_cost.run --fit` (2 shared CPU cores, Aer 0.18.2), rounded."""

RANK_TWO_GATES = frozenset(
    {"cx", "CX", "cy", "cz", "ch", "cs", "csdg", "csx", "crx", "cry", "crz", "cp", "cphase", "cu1", "cu3", "cu"}
    | {"ecr", "rxx", "ryy", "rzz", "rzx"}
)
"""Two-qubit gates of operator Schmidt rank 2: each at most doubles a bond dimension it crosses."""


class Price(Document):
    """What a task will cost, computed before it is stored (docs/admission.md)."""

    method: str = Field(description="the Aer method the runner will use")
    precision: Precision = Field(strict=False)
    noisy: bool = Field(description="the noise model for the active qubits holds some channel")
    per_shot: bool = Field(description="every shot is simulated on its own (noise trajectories, dynamic circuits)")
    active_qubits: Annotated[int, Field(ge=0)]
    clbits: Annotated[int, Field(ge=0)]
    expanded_ops: Annotated[int, Field(ge=0)]
    state_bytes: Annotated[int, Field(ge=0, le=MAX_PRICED_BYTES)] = Field(
        description="the simulator state's memory (what Aer checks against max_memory_mb), capped"
    )
    memory_bytes: Annotated[int, Field(ge=0, le=MAX_PRICED_BYTES)] = Field(
        description=f"the state's memory plus the runner's own, capped at {MAX_PRICED_BYTES}"
    )
    counts_chars: Annotated[int, Field(ge=0)] = Field(description="characters of the largest counts possible")
    estimated_simulate_s: Annotated[float, Field(ge=0, le=MAX_PRICED_SECONDS)]
    estimated_runtime_s: Annotated[float, Field(ge=0, le=MAX_PRICED_SECONDS)] = Field(
        description="the whole run: start, parse, simulate"
    )
    model: str = Field(description="the cost model's id")


def plan_method(options: RunOptions, num_active: int, noisy: bool) -> tuple[str, str]:
    """The Aer method a run will use, and why."""
    if options.method is not Method.AUTO:
        return options.method.value, "method requested"
    if not noisy:
        return "statevector", "ideal: one statevector, measurement sampled"
    if num_active <= DENSITY_MATRIX_MAX_QUBITS:
        return "density_matrix", f"noisy, {num_active} <= {DENSITY_MATRIX_MAX_QUBITS} active qubits: exact channels"
    return "statevector", f"noisy, {num_active} active qubits: trajectories"


def simulator_memory_mb(limit_bytes: int, expanded_ops: int) -> int:
    """Aer's `max_memory_mb` for a run allowed `limit_bytes` in all: what the runner itself leaves of it.
    A task priced within the limit always passes Aer's own check (its state fits in this)."""
    return max((limit_bytes - RUNNER_BYTES - expanded_ops * BYTES_PER_OP) >> 20, 1)


def worst_counts_chars(shots: int, clbits: int, key_width: int) -> int:
    """Characters of the largest counts a run can return (see limits.MAX_COUNTS_CHARS)."""
    keys = shots if clbits >= shots.bit_length() else min(shots, 1 << clbits)
    return keys * (key_width + COUNTS_ENTRY_CHARS)


def price(stats: CircuitStats, snapshot: Snapshot, options: RunOptions, shots: int) -> Price:
    terms = runtime_terms(stats, snapshot, options, shots)
    seconds = dict(zip(Cost._fields, COST, strict=True))
    simulate_s = sum(seconds[name] * amount for name, amount in terms.items() if name not in _WHOLE_RUN)
    runtime_s = simulate_s + sum(seconds[name] * terms[name] for name in _WHOLE_RUN)
    n = len(stats.active_qubits)
    state = state_bytes(stats, snapshot, options, terms.method)
    return Price(
        method=terms.method,
        precision=options.precision,
        noisy=terms.noisy,
        per_shot=terms.per_shot,
        active_qubits=n,
        clbits=stats.clbits,
        expanded_ops=stats.expanded_ops,
        state_bytes=min(state, MAX_PRICED_BYTES),
        memory_bytes=min(state + RUNNER_BYTES + stats.expanded_ops * BYTES_PER_OP, MAX_PRICED_BYTES),
        counts_chars=worst_counts_chars(shots, stats.clbits, stats.key_width),
        estimated_simulate_s=min(simulate_s, MAX_PRICED_SECONDS),
        estimated_runtime_s=min(runtime_s, MAX_PRICED_SECONDS),
        model=MODEL,
    )


def price_pubs(
    stats: Sequence[CircuitStats], snapshot: Snapshot, options: RunOptions, pubs: SamplerPubs | EstimatorPubs
) -> Price:
    """What a PUB task costs (`stats[i]` sizes `pubs.pubs[i]`'s circuit; the PUBs resolved): one runner start,
    every circuit parsed once, each binding run as a task of that circuit would be; memory the largest
    PUB's state plus every sampled shot's outcome (Aer's sampler keeps each); counts every binding's
    worst. An estimator PUB runs each binding once, shot-free where the state is exact (else over
    ESTIMATOR_TRAJECTORIES trajectories), and evaluates each Pauli term on the state; the qubits its
    observables name are simulated (active) too."""
    if len(stats) != len(pubs.pubs):
        raise ValueError(f"{len(stats)} circuit sizes for {len(pubs.pubs)} PUBs")
    seconds = dict(zip(Cost._fields, COST, strict=True))
    items: list[SamplerPub | EstimatorPub] = list(pubs.pubs)
    parts = [_pub_part(s, snapshot, options, pub) for s, pub in zip(stats, items, strict=True)]
    simulate_s = sum(p.simulate_s for p in parts)
    parse_s = sum(seconds["parse_op"] * s.expanded_ops for s in stats)
    largest = max(parts, key=lambda p: p.state_bytes)
    ops = sum(s.expanded_ops for s in stats)
    return Price(
        method=largest.method,
        precision=options.precision,
        noisy=any(p.noisy for p in parts),
        per_shot=any(p.per_shot for p in parts),
        active_qubits=largest.active_qubits,
        clbits=max(s.clbits for s in stats),
        expanded_ops=ops,
        state_bytes=min(largest.state_bytes, MAX_PRICED_BYTES),
        memory_bytes=min(
            largest.state_bytes + RUNNER_BYTES + ops * BYTES_PER_OP + sum(p.sampled_bytes for p in parts),
            MAX_PRICED_BYTES,
        ),
        counts_chars=sum(p.counts_chars for p in parts),
        estimated_simulate_s=min(simulate_s, MAX_PRICED_SECONDS),
        estimated_runtime_s=min(simulate_s + seconds["start"] + parse_s, MAX_PRICED_SECONDS),
        model=MODEL,
    )


class _PubPart(NamedTuple):
    method: str
    noisy: bool
    per_shot: bool
    active_qubits: int
    state_bytes: int
    sampled_bytes: int
    counts_chars: int
    simulate_s: float


def _pub_part(stats: CircuitStats, snapshot: Snapshot, options: RunOptions, pub: SamplerPub | EstimatorPub) -> _PubPart:
    seconds = dict(zip(Cost._fields, COST, strict=True))
    estimator = isinstance(pub, EstimatorPub)
    if isinstance(pub, EstimatorPub):
        stats = with_observed_qubits(stats, pub)
        shots, pauli_terms = 1, sum(len(obs) for obs in pub.observables)
    else:
        shots, pauli_terms = pub.shots or 1, 0
    bindings = pub.bindings
    terms = runtime_terms(stats, snapshot, options, shots)
    if estimator and (terms.per_shot or stats.clbits):
        # Each shot its own state (noise trajectories, or a circuit that measures): Aer's estimator
        # averages its values over ESTIMATOR_TRAJECTORIES of them (runner/pubs.py).
        terms = runtime_terms(stats, snapshot, options, ESTIMATOR_TRAJECTORIES)
    # Aer runs a PUB's bindings as one run (parameter binds): its fixed cost and the circuit's conversion
    # are paid once per PUB, the state's evolution and the shots per binding.
    once = sum(seconds[name] * terms[name] for name in _ONCE_PER_PUB)
    per_binding = sum(
        seconds[name] * amount for name, amount in terms.items() if name not in _WHOLE_RUN + _ONCE_PER_PUB
    )
    n = len(stats.active_qubits)
    if estimator:  # each term's expectation value is one pass over the state (diagonal of a density matrix)
        per_binding += pauli_terms * seconds["amplitude_op"] * 2.0 ** min(n, 1000)
    return _PubPart(
        method=terms.method,
        noisy=terms.noisy,
        per_shot=terms.per_shot,
        active_qubits=n,
        state_bytes=state_bytes(stats, snapshot, options, terms.method),
        sampled_bytes=0 if estimator else bindings * shots * SAMPLED_SHOT_BYTES,
        counts_chars=0 if estimator else bindings * worst_counts_chars(shots, stats.clbits, stats.key_width),
        simulate_s=once + per_binding * bindings,
    )


def with_observed_qubits(stats: CircuitStats, pub: EstimatorPub) -> CircuitStats:
    """The circuit's sizes with every qubit an observable names made active (simulated): a cut the new
    qubits make is priced as crossed by the most operations any cut is, a bound."""
    observed = {q for obs in pub.observables for term in obs for q in term.qubits}
    active = stats.active_qubits | observed
    if active == stats.active_qubits:
        return stats
    crossings = stats.crossings + (max(stats.crossings, default=0),) * (len(active) - 1 - len(stats.crossings))
    return dataclasses.replace(stats, active_qubits=frozenset(active), crossings=crossings)


_WHOLE_RUN = ("start", "parse_op")
"""The terms outside Aer's simulation."""
_ONCE_PER_PUB = ("run", "op")
"""The terms of one Aer run however many parameter bindings it is given."""


class Terms(dict[str, float]):
    """How many units of each `Cost` term a run takes, and the plan they follow from."""

    def __init__(self, method: str, noisy: bool, per_shot: bool) -> None:
        super().__init__(dict.fromkeys(Cost._fields, 0.0))
        self.method, self.noisy, self.per_shot = method, noisy, per_shot


def runtime_terms(stats: CircuitStats, snapshot: Snapshot, options: RunOptions, shots: int) -> Terms:
    """The run time's terms (so that benchmarks/admission_cost can fit `Cost` to what it measures)."""
    n = len(stats.active_qubits)
    gate_noise, readout_noise = noise_kinds(snapshot, stats.active_qubits, options)
    # Idle relaxation after delays is a non-unitary channel on the state, priced as gate noise is.
    gate_noise = gate_noise or idle_noisy(snapshot, stats.delayed_qubits, options)
    method, _ = plan_method(options, n, gate_noise or readout_noise)
    # Gate noise on a pure state is sampled per shot; a density matrix holds it exactly and is sampled once.
    per_shot = stats.dynamic or (gate_noise and method != "density_matrix")
    passes = float(shots) if per_shot else 1.0
    ops = float(stats.expanded_ops)
    t = Terms(method, gate_noise or readout_noise, per_shot)
    t.update(start=1.0, parse_op=ops, run=1.0, op=ops, shot=float(shots), shot_pass=shots if per_shot else 0)
    relaxation = options.noise_model is NoiseModelName.RELAXATION and gate_noise
    if method == "matrix_product_state":
        # An operation lands on some cut: price it at the mean of chi^3 (chi^2 to sample) over the cuts.
        bits = _bond_bits(stats, snapshot) or [0]
        t["mps_op"] = ops * passes
        t["mps_bond_op"] = stats.two_qubit_ops * statistics.fmean(8.0 ** min(b, 300) for b in bits) * passes
        t["mps_shot"] = shots * n * statistics.fmean(4.0 ** min(b, 300) for b in bits)
    elif method == "density_matrix":
        t["relaxation_element_op" if relaxation else "element_op"] = ops * 4.0 ** min(n, 500) * passes
    elif gate_noise:
        kind = "relaxation_amplitude_op" if relaxation else "trajectory_amplitude_op"
        t[kind] = ops * 2.0 ** min(n, 1000) * passes
    else:
        t["amplitude_op"] = ops * 2.0 ** min(n, 1000) * passes
    return t


def state_bytes(stats: CircuitStats, snapshot: Snapshot, options: RunOptions, method: str) -> int:
    """The simulator state's memory: 2^n amplitudes, 4^n for a density matrix, a site tensor of 2·χ·χ'
    amplitudes per qubit of a matrix product state (its bonds as `_bond_bits` bounds them)."""
    n = len(stats.active_qubits)
    amplitude = AMPLITUDE_BYTES[options.precision]
    if method == "matrix_product_state":
        bits = _bond_bits(stats, snapshot)
        return sum(2 << (a + b) for a, b in zip((0, *bits), (*bits, 0), strict=True)) * amplitude if n else 0
    return amplitude << (2 * n if method == "density_matrix" else n)


def _bond_bits(stats: CircuitStats, snapshot: Snapshot) -> list[int]:
    """log2 of the bond dimension each cut of the matrix product state can reach: at most the smaller
    side's qubits, and at most a doubling (a quadrupling for gates of higher rank) per operation across it."""
    gates = snapshot.two_qubit_gates() | {g for g in snapshot.native_gates if _arity(g) > 2}
    per_crossing = 1 if gates <= RANK_TWO_GATES else 2 * max(max((_arity(g) for g in gates), default=2) - 1, 1)
    n = len(stats.active_qubits)
    return [min(i + 1, n - i - 1, per_crossing * c) for i, c in enumerate(stats.crossings)]


def _arity(gate: str) -> int:
    return gates.arity(gate) or 2
