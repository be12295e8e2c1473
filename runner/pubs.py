"""A task of Sampler or Estimator PUBs (vqpu_protocol.pubs), run with Aer's own primitives.

Each PUB's circuit is parsed and fitted to the device as a circuit task's is (`runner.circuit`), its
parameter rows bound by the names its source declares (`input float[64] name;`, in declaration order:
not `QuantumCircuit.parameters`' order, which sorts `_θ_10_` before `_θ_2_`), and run under the noise
derived for its own active qubits (an estimator's observed qubits among them) by Aer's `SamplerV2` or
`EstimatorV2`, on an `AerSimulator` set up as `runner.simulate.plan` sets it up for a circuit.

Seeds: PUB i runs with the task's seed plus i, so a one-PUB task is Aer's own primitive run with that seed.

Estimator: Aer's `EstimatorV2` saves each Pauli's expectation value at the end of the circuit, on every
qubit of the circuit, so the circuit is first compacted onto the qubits it acts on or observes (and its
noise model built for that layout): otherwise a circuit on qubits 100-102 would be a 103-qubit state. With
a density matrix (noisy, at most 10 active qubits) or an ideal statevector, the values are exact, and
`stds` is the precision asked (Aer draws each value from N(exact, precision) for a precision above 0).
Where each shot is its own trajectory (a noisy statevector, or a circuit that measures midway), Aer
averages the saved values over its shots (`TRAJECTORIES`, its default) and still reports `stds` = the
precision: here `stds` also holds that average's standard error, bounded by B/sqrt(TRAJECTORIES), B the
sum of |coeff| of the observable's non-identity terms (each trajectory's value lies within B of the mean).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives.containers import BindingsArray, BitArray
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import Target
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import EstimatorV2, SamplerV2

from device_registry import Snapshot
from device_registry.admissibility import CircuitStats
from runner import circuit
from runner.errors import InvalidPayload, RunnerError, SimulationFailed
from runner.simulate import Plan, end_anchored
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.pubs import (
    ESTIMATOR_TRAJECTORIES,
    EstimatorPub,
    EstimatorPubResult,
    PauliTerm,
    Register,
    SamplerPub,
    SamplerPubResult,
)

TRAJECTORIES = ESTIMATOR_TRAJECTORIES
"""Shots (trajectories) an estimator PUB averages over where each shot is simulated on its own (priced so)."""

_SEED_SPACE = 1 << 63


@dataclass(frozen=True)
class Prepared:
    """One PUB, fitted to the device and sized, before it is simulated."""

    circuit: QuantumCircuit
    transpile: Literal["native", "basis-translation"]
    stats: CircuitStats
    """As admission counts the circuit (what `price_pubs` is given: it adds observed qubits itself)."""
    active: frozenset[int]
    """The qubits simulated: the active ones and, for an estimator, every qubit its observables name."""
    bindings: BindingsArray


def pub_seed(seed: int, index: int) -> int:
    return (seed + index) % _SEED_SPACE


@contextlib.contextmanager
def naming(index: int) -> Iterator[None]:
    """A runner error raised for PUB `index` says so: `pubs[3]: ...` (and `pub: 3` in a dict detail)."""
    try:
        yield
    except RunnerError as exc:
        detail = {"pub": index, **exc.detail} if isinstance(exc.detail, dict) else exc.detail
        raise type(exc)(exc.code, f"pubs[{index}]: {exc.message}", detail) from None


def prepare(
    index: int, pub: SamplerPub | EstimatorPub, dialect: str, snapshot: Snapshot, target: Target, seed: int
) -> Prepared:
    with naming(index):
        parsed, inputs = circuit.parse_with_inputs(pub.circuit, dialect, snapshot)
        circuit.check_delays(parsed, snapshot)
        fitted = circuit.fit_to_device(parsed, snapshot, target, seed)
        observed: frozenset[int] = frozenset()
        if isinstance(pub, SamplerPub):
            if pub.shots is None:  # vqpu.task/1 carries resolved PUBs: the service gave each its shots
                raise InvalidPayload(ErrorCode.INVALID_TASK, "the PUB gives no shots", {"field": "shots"})
            loose = [c for c in fitted.circuit.clbits if not fitted.circuit.find_bit(c).registers]
            if loose:  # Aer's SamplerV2 returns registers only: a loose bit's outcomes would be lost unsaid
                raise InvalidPayload(
                    ErrorCode.INVALID_TASK,
                    f"the circuit declares {len(loose)} bit(s) outside any register (`bit b;`); a Sampler PUB's "
                    "outcomes are per register: declare `bit[1] b;`",
                    {"field": "circuit", "loose_bits": len(loose)},
                )
            if not circuit.measures(fitted.circuit) or not fitted.circuit.cregs:
                raise InvalidPayload(
                    ErrorCode.NO_MEASUREMENTS,
                    "the circuit measures no qubit into a classical register, so it has no counts to return",
                )
        else:
            observed = _observed(pub, snapshot)
        bindings = _bindings(pub, inputs, fitted.circuit)
        stats = circuit.circuit_stats(fitted.circuit)
        return Prepared(
            circuit=fitted.circuit,
            transpile=fitted.transpile,
            stats=stats,
            active=stats.active_qubits | observed,
            bindings=bindings,
        )


def _observed(pub: EstimatorPub, snapshot: Snapshot) -> frozenset[int]:
    qubits: set[int] = set()
    for j, observable in enumerate(pub.observables):
        for term in observable:
            outside = [q for q in term.qubits if q >= snapshot.num_qubits]
            if outside:
                raise InvalidPayload(
                    ErrorCode.INVALID_TASK,
                    f"observables[{j}] acts on qubit {outside[0]}; {snapshot.device_id} has {snapshot.num_qubits}",
                    {"field": f"observables[{j}]", "qubit": outside[0], "num_qubits": snapshot.num_qubits},
                )
            qubits.update(term.qubits)
    return frozenset(qubits)


def _bindings(pub: SamplerPub | EstimatorPub, inputs: tuple[str, ...], fitted: QuantumCircuit) -> BindingsArray:
    """The PUB's rows as Qiskit's bindings of the circuit's parameters: column k is the k-th declared input."""
    shape = tuple(pub.bindings_shape)
    width = pub.num_parameters
    declared = f"the circuit declares {len(inputs)} input(s)" + (f" ({', '.join(inputs)})" if inputs else "")
    if pub.parameter_values and width != len(inputs):
        raise InvalidPayload(
            ErrorCode.INVALID_TASK,
            f"parameter_values rows give {width} value(s); {declared}, one value each in declaration order",
            {"field": "parameter_values", "values": width, "inputs": list(inputs)},
        )
    if not pub.parameter_values and inputs and pub.bindings:
        raise InvalidPayload(
            ErrorCode.INVALID_TASK,
            f"parameter_values gives no values; {declared}",
            {"field": "parameter_values", "values": 0, "inputs": list(inputs)},
        )
    present = {p.name: p for p in fitted.parameters}
    unbound = sorted(set(present) - set(inputs))
    if unbound:  # the importer refuses an undeclared name; kept as a check, not a guess
        raise InvalidPayload(
            ErrorCode.INVALID_TASK, f"the circuit's parameter(s) {', '.join(unbound)} are not declared inputs"
        )
    columns = [k for k, name in enumerate(inputs) if name in present]  # an input the circuit never uses: no column
    if not columns or not pub.parameter_values:
        return BindingsArray(shape=shape)
    values = np.asarray(pub.parameter_values, dtype=float).reshape((*shape, width))[..., columns]
    return BindingsArray({tuple(present[inputs[k]] for k in columns): values}, shape=shape)


def _backend_options(noise: NoiseModel | None, chosen: Plan) -> dict[str, Any]:
    return {"method": chosen.method, "device": chosen.device, "noise_model": noise, **chosen.options}


# --- sampler -----------------------------------------------------------------------------------


def sample(
    prepared: Prepared,
    to_run: QuantumCircuit,
    pub: SamplerPub,
    noise: NoiseModel | None,
    chosen: Plan,
    seed: int,
    *,
    memory: bool = False,
) -> SamplerPubResult:
    """Run one Sampler PUB with Aer's `SamplerV2`; counts per binding, keyed as a circuit task's counts are,
    and with `memory` every shot's outcome in the order Aer sampled them (its bit arrays are per shot)."""
    shots = pub.shots
    assert shots is not None  # resolved in the task document
    bindings = prepared.bindings
    registers = [creg for creg in to_run.cregs if creg.size]
    shape = tuple(pub.bindings_shape)
    counts: list[dict[str, int]] = []
    shots_memory: list[list[str]] | None = [] if memory else None
    if bindings.size:
        sampler = SamplerV2(seed=seed, options={"backend_options": _backend_options(noise, chosen)})
        # Without parameters Aer runs one experiment however many bindings the shape holds (and returns
        # nothing for the others): so every binding's shots are run as one and cut in binding order.
        unparameterised = bindings.num_parameters == 0
        runs = (
            (end_anchored(to_run), BindingsArray(), shots * bindings.size)
            if unparameterised
            else (end_anchored(to_run), bindings, shots)
        )
        data = _run_primitive(lambda: sampler.run([runs]).result()[0].data)
        # One bit array of every register, the last declared in the highest bits: a circuit's counts keys.
        joined = BitArray.concatenate_bits([data[creg.name] for creg in registers])
        if unparameterised:
            joined = joined.reshape(*shape, shots)
        widths = [creg.size for creg in reversed(registers)]
        counts = [_counts(joined.array[index], joined.num_bits, widths) for index in np.ndindex(*shape)]
        if shots_memory is not None:
            shots_memory = [
                [_key(row, joined.num_bits, widths) for row in joined.array[index]] for index in np.ndindex(*shape)
            ]
    return SamplerPubResult(
        shape=list(shape),
        shots=shots,
        registers=[Register(name=creg.name, num_bits=creg.size) for creg in registers],
        counts=counts,
        memory=shots_memory,
    )


def _counts(packed: np.ndarray, num_bits: int, widths: list[int]) -> dict[str, int]:
    """Counts of one binding's shots (rows of big-endian packed bits), keyed by `widths`' registers
    separated by spaces: only the distinct outcomes are ever formatted."""
    outcomes, times = np.unique(packed, axis=0, return_counts=True)
    return {_key(row, num_bits, widths): int(n) for row, n in zip(outcomes, times, strict=True)}


def _key(row: np.ndarray, num_bits: int, widths: list[int]) -> str:
    """One shot's outcome (big-endian packed bits) as a counts key: `widths`' registers, space-separated."""
    bits = format(int.from_bytes(row.tobytes(), "big"), f"0{num_bits}b")
    parts, at = [], 0
    for width in widths:
        parts.append(bits[at : at + width])
        at += width
    return " ".join(parts)


# --- estimator ---------------------------------------------------------------------------------


def estimate(
    prepared: Prepared,
    compacted: QuantumCircuit,
    layout: tuple[int, ...],
    pub: EstimatorPub,
    noise: NoiseModel | None,
    chosen: Plan,
    seed: int,
    *,
    trajectories: bool,
) -> EstimatorPubResult:
    """Run one Estimator PUB with Aer's `EstimatorV2` on the circuit compacted onto `layout`."""
    precision = pub.precision or 0.0
    position = {physical: i for i, physical in enumerate(layout)}
    flat = np.empty(len(pub.observables), dtype=object)
    spread = np.empty(len(pub.observables), dtype=float)
    for j, observable in enumerate(pub.observables):
        flat[j] = _pauli_sum(observable, position, len(layout))
        spread[j] = sum(abs(t.coeff) for t in observable if t.paulis.strip("I"))
    obs_shape = tuple(pub.obs_shape)
    observables = flat.reshape(obs_shape)
    shape = tuple(pub.result_shape)
    if not prepared.bindings.size or not math.prod(shape):
        return EstimatorPubResult(shape=list(shape), evs=[], stds=[], precision=precision)
    run_options: dict[str, Any] = {"seed_simulator": seed}
    if trajectories:
        run_options["shots"] = TRAJECTORIES
    estimator = EstimatorV2(options={"backend_options": _backend_options(noise, chosen), "run_options": run_options})
    # Without parameters Aer runs one experiment however many bindings the shape holds and then fails
    # reading the others: the observables are run once and broadcast, then drawn as Aer draws them.
    unparameterised = prepared.bindings.num_parameters == 0
    bindings = BindingsArray() if unparameterised else prepared.bindings
    run_precision = 0.0 if unparameterised else precision
    # No end anchor (`runner.simulate.end_anchored`): the estimator's own saves end the circuit.
    data = _run_primitive(lambda: estimator.run([(compacted, observables, bindings, run_precision)]).result()[0].data)
    evs = np.broadcast_to(np.asarray(data.evs, dtype=float), shape)
    if unparameterised and precision > 0:
        evs = np.random.default_rng(seed).normal(evs, precision, shape)
    stds = np.full(shape, precision)
    if trajectories:
        spread_b = np.broadcast_to(spread.reshape(obs_shape), shape)
        stds = np.sqrt(precision**2 + spread_b**2 / TRAJECTORIES)
    return EstimatorPubResult(
        shape=list(shape),
        evs=[float(v) for v in evs.ravel()],
        stds=[float(s) for s in stds.ravel()],
        precision=precision,
    )


def _pauli_sum(observable: list[PauliTerm], position: dict[int, int], num_qubits: int) -> SparsePauliOp:
    terms = [(t.paulis, [position[q] for q in t.qubits], t.coeff) for t in observable] or [("", [], 0.0)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=num_qubits)


def _run_primitive(call: Any) -> Any:
    """A primitive's run, its failures typed as a circuit run's are (`runner.simulate.run`)."""
    try:
        return call()
    except MemoryError:
        raise
    except Exception as exc:
        message = str(exc)
        code = ErrorCode.OUT_OF_MEMORY if "memory" in message.lower() else ErrorCode.SIMULATION_ERROR
        raise SimulationFailed(code, f"Aer could not run the PUB: {message}") from None
