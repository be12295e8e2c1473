"""The price of a task before it is admitted: the Aer method it will run with, the memory that method
needs, the worst size of its counts, and an estimate of its run time (docs/admission.md).

Pure and cheap (microseconds): computed from the admissibility pass's `CircuitStats`, the device
snapshot and the run options. The runner prices the circuit it is about to simulate with the same
functions, so the control plane and the runner can never disagree on the method or the memory.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from device_registry import Snapshot, gates
from device_registry.admissibility import CircuitStats
from vqpu_protocol.pricing_noise import is_noisy, noise_kinds
from vqpu_protocol.rundir import Method, Precision, RunOptions
from vqpu_protocol.wire import Document

__all__ = ["MODEL", "Price", "is_noisy", "plan_method", "price", "simulator_memory_mb", "worst_counts_chars"]

MODEL = "aer-cpu/1"
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

# --- the cost model: coefficients measured on a 2-core CPU node (benchmarks/admission_cost/results.json) ---
RUNNER_BYTES = 160 * 2**20
"""A runner's resident memory besides the state: Python, Qiskit, Aer, the parsed circuit."""
BYTES_PER_OP = 2_000
"""Resident memory per operation of the parsed circuit (Qiskit's and Aer's copies of it)."""
START_S = 1.5
"""Starting a runner: the interpreter and the imports of Qiskit and Aer."""
PARSE_S_PER_OP = 2.0e-5
"""Parsing, fitting and handing one operation to Aer."""
SIMULATE_S = 0.01
"""One Aer run's fixed cost."""
OP_S = 1.0e-6
"""One operation's fixed cost, however small the state."""
AMPLITUDE_OP_S = 1.5e-9
"""One operation on one statevector amplitude (or density-matrix element)."""
SHOT_S = 1.0e-6
"""Sampling one shot and counting its outcome."""
SHOT_PASS_S = 5.0e-6
"""The fixed cost of simulating one shot on its own (a trajectory, or a dynamic circuit)."""
MPS_OP_S = 2.0e-9
"""One multi-qubit operation of a matrix product state per χ³."""
MPS_SHOT_S = 2.0e-9
"""Sampling one shot of a matrix product state, per qubit per χ²."""

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
    n = len(stats.active_qubits)
    gate_noise, readout_noise = noise_kinds(snapshot, stats.active_qubits, options)
    noisy = gate_noise or readout_noise
    method, _ = plan_method(options, n, noisy)
    amplitude = AMPLITUDE_BYTES[options.precision]
    # Gate noise on a pure state is sampled per shot; a density matrix holds it exactly and is sampled once.
    per_shot = stats.dynamic or (gate_noise and method != "density_matrix")
    ops = stats.expanded_ops
    if method == "matrix_product_state":
        bits = _bond_bits(stats, snapshot)
        state = sum(2 << (a + b) for a, b in zip((0, *bits), (*bits, 0), strict=True)) * amplitude if n else 0
        chi = 2.0 ** max(bits, default=0)
        one_pass = SIMULATE_S + ops * OP_S + stats.two_qubit_ops * chi**3 * MPS_OP_S
        sample = n * chi**2 * MPS_SHOT_S + SHOT_S
    else:
        exponent = 2 * n if method == "density_matrix" else n
        state = amplitude << exponent
        size = 2.0 ** min(exponent, 1000)
        one_pass = SIMULATE_S + ops * (OP_S + size * AMPLITUDE_OP_S)
        sample = SHOT_S
    simulate_s = shots * (one_pass + SHOT_PASS_S) if per_shot else one_pass + shots * sample
    simulate_s = min(simulate_s, MAX_PRICED_SECONDS)
    return Price(
        method=method,
        precision=options.precision,
        noisy=noisy,
        per_shot=per_shot,
        active_qubits=n,
        clbits=stats.clbits,
        expanded_ops=ops,
        state_bytes=min(state, MAX_PRICED_BYTES),
        memory_bytes=min(state + RUNNER_BYTES + ops * BYTES_PER_OP, MAX_PRICED_BYTES),
        counts_chars=worst_counts_chars(shots, stats.clbits, stats.key_width),
        estimated_simulate_s=simulate_s,
        estimated_runtime_s=min(START_S + ops * PARSE_S_PER_OP + simulate_s, MAX_PRICED_SECONDS),
        model=MODEL,
    )


def _bond_bits(stats: CircuitStats, snapshot: Snapshot) -> list[int]:
    """log2 of the bond dimension each cut of the matrix product state can reach: at most the smaller
    side's qubits, and at most a doubling (a quadrupling for gates of higher rank) per operation across it."""
    gates = snapshot.two_qubit_gates() | {g for g in snapshot.native_gates if _arity(g) > 2}
    per_crossing = 1 if gates <= RANK_TWO_GATES else 2 * max(max((_arity(g) for g in gates), default=2) - 1, 1)
    n = len(stats.active_qubits)
    return [min(i + 1, n - i - 1, per_crossing * c) for i, c in enumerate(stats.crossings)]


def _arity(gate: str) -> int:
    return gates.arity(gate) or 2
