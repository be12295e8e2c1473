"""Qiskit's PUBs as the service's PUB documents (`vqpu_protocol.pubs`), and the service's PUB results as
Qiskit's `DataBin`s: the two conversions `VQPUSamplerV2` and `VQPUEstimatorV2` are made of.

Parameters: a PUB's circuit travels as OpenQASM 3 with its free parameters declared `input float[64] name;`
in `circuit.parameters` order (circuits.py), so each row of `parameter_values` is
`pub.parameter_values.as_array(circuit.parameters)` at one binding, the bindings flattened in C order with
their `shape`.

Observables: each element of the PUB's `ObservablesArray` (a dict of Pauli label to coefficient over the
circuit's qubits, qubit 0 rightmost) becomes a list of sparse `PauliTerm`s (`SparsePauliOp.to_sparse_list`'s
form: the non-identity Paulis and their qubits), flattened in C order with `observables_shape`.

Sampler results: per binding, the counts of the joint outcome of every classical register, keyed as a
circuit's counts (registers last-declared first). Each register's `BitArray` is rebuilt from them: the shots
of a binding come grouped by outcome (every shot of one outcome together, outcomes in the order the counts
list them), not in the order they were taken, which a counts document does not keep.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import BitArray, DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub as QiskitEstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub as QiskitSamplerPub

from vqpu_client.qiskit.circuits import to_openqasm
from vqpu_client.qiskit.errors import ResultShapeError, UnsupportedCircuitError
from vqpu_protocol.pubs import (
    EstimatorPub,
    EstimatorPubResult,
    PauliTerm,
    SamplerPub,
    SamplerPubResult,
)

_PAULIS = frozenset("IXYZ")


def parameter_rows(circuit: QuantumCircuit, values: Any) -> tuple[list[list[float]], list[int]]:
    """`(rows, shape)` of a PUB's `BindingsArray`: one row per binding (C order), one value per parameter in
    `circuit.parameters` order (the order of the circuit's `input` declarations)."""
    shape = [int(n) for n in values.shape]
    if circuit.num_parameters == 0:
        return [], shape
    array = np.asarray(values.as_array(circuit.parameters), dtype=float)
    rows = array.reshape(-1, circuit.num_parameters)
    if not np.all(np.isfinite(rows)):
        raise UnsupportedCircuitError(f"circuit {circuit.name!r}: its parameter values hold a NaN or an infinity")
    return rows.tolist(), shape


def sampler_pub(pub: QiskitSamplerPub, native_gates: Iterable[str]) -> SamplerPub:
    """A coerced Qiskit `SamplerPub` as the service's: its circuit, its rows and shape, its shots."""
    rows, shape = parameter_rows(pub.circuit, pub.parameter_values)
    source = to_openqasm(pub.circuit, native_gates, parameters=True)
    return SamplerPub(circuit=source, parameter_values=rows, shape=shape, shots=pub.shots)


def pauli_terms(observable: dict[str, float], name: str) -> list[PauliTerm]:
    """`{"IZX": 0.5}` -> `[PauliTerm(paulis="ZX", qubits=[1, 0], coeff=0.5)]`: the label's qubit 0 is its last
    character; identities are left out (an all-identity label is the constant term `paulis=""`)."""
    terms = []
    for label, coeff in observable.items():
        if not set(label) <= _PAULIS:
            raise UnsupportedCircuitError(
                f"circuit {name!r}: observable term {label!r} is not a Pauli string (I, X, Y, Z); the service "
                "takes sums of Pauli products"
            )
        value = complex(coeff)
        if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
            raise UnsupportedCircuitError(f"circuit {name!r}: observable term {label!r} has a complex coefficient")
        sparse = [(p, q) for q, p in enumerate(reversed(label)) if p != "I"]
        terms.append(
            PauliTerm(paulis="".join(p for p, _ in sparse), qubits=[q for _, q in sparse], coeff=float(value.real))
        )
    return terms


def estimator_pub(pub: QiskitEstimatorPub, native_gates: Iterable[str]) -> EstimatorPub:
    """A coerced Qiskit `EstimatorPub` as the service's: its circuit, observables, rows, shapes and precision."""
    rows, shape = parameter_rows(pub.circuit, pub.parameter_values)
    source = to_openqasm(pub.circuit, native_gates, parameters=True)
    flat = pub.observables.ravel().tolist()
    observables = [pauli_terms(obs, pub.circuit.name) for obs in flat]
    return EstimatorPub(
        circuit=source,
        parameter_values=rows,
        shape=shape,
        observables=observables,
        observables_shape=[int(n) for n in pub.observables.shape],
        precision=pub.precision,
    )


def _register_bytes(bits: str, num_bytes: int) -> np.ndarray:
    return np.frombuffer(int(bits, 2).to_bytes(num_bytes, "big"), dtype=np.uint8)


def bit_arrays(circuit: QuantumCircuit, result: SamplerPubResult) -> DataBin:
    """One `BitArray` per classical register of `circuit` (by the circuit's own register names), of shape
    `result.shape` and `result.shots` shots, from the joint counts of every binding.

    The shots of a binding come grouped by outcome, not in the order they were taken (counts keep none)."""
    registers = list(circuit.cregs)
    widths = [r.size for r in registers]
    if [r.num_bits for r in result.registers] != widths:
        raise ResultShapeError(
            f"circuit {circuit.name!r} has registers {[(r.name, r.size) for r in registers]}; its result has "
            f"{[(r.name, r.num_bits) for r in result.registers]}"
        )
    total = sum(widths)
    shape = tuple(result.shape)
    arrays = [np.zeros((len(result.counts), result.shots, (w + 7) // 8), dtype=np.uint8) for w in widths]
    for b, counts in enumerate(result.counts):
        shot = 0
        for key, n in counts.items():
            bits = key.replace(" ", "")
            if len(bits) != total:
                raise ResultShapeError(
                    f"outcome {key!r} is not {total} bits, one per classical bit of circuit {circuit.name!r}"
                )
            end = total  # register 0 is the rightmost (least significant) part of the key
            for array, width in zip(arrays, widths, strict=True):
                array[b, shot : shot + n] = _register_bytes(bits[end - width : end], array.shape[-1])
                end -= width
            shot += n
    data = {
        register.name: BitArray(array.reshape(*shape, result.shots, array.shape[-1]), width)
        for register, array, width in zip(registers, arrays, widths, strict=True)
    }
    return DataBin(**data, shape=shape)


def estimator_data(result: EstimatorPubResult) -> DataBin:
    """`evs` and `stds` of shape `result.shape`, as Qiskit's estimators return them."""
    shape = tuple(result.shape)
    evs = np.asarray(result.evs, dtype=float).reshape(shape)
    stds = np.asarray(result.stds, dtype=float).reshape(shape)
    return DataBin(evs=evs, stds=stds, shape=shape)
