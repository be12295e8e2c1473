"""The price against Qiskit-Aer itself: the memory Aer requires for a state, the qubits it keeps after
truncation, whether it samples the shots from one simulation, and the method it runs."""

from __future__ import annotations

import re

import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from device_registry import Snapshot
from device_registry.admissibility import Checker
from runner.circuit import circuit_stats, parse
from runner.noise import NoiseCache
from vqpu_protocol.pricing import price
from vqpu_protocol.rundir import RunOptions

_REQUIRED = re.compile(r"Required memory: (\d+)M")


def _aer_required_mib(circuit: QuantumCircuit, method: str, precision: str) -> int:
    """What Aer says the state needs, from its refusal under a 1 MiB limit."""
    result = AerSimulator(method=method, precision=precision, max_memory_mb=1).run(circuit, shots=1).result()
    found = _REQUIRED.search(result.status or "")
    assert found is not None, result.status
    return int(found.group(1))


def _whole_register(n: int) -> str:
    return f"OPENQASM 2.0;\nqreg q[{n}];\ncreg c[{n}];\nsx q;\nmeasure q -> c;\n"


@pytest.mark.parametrize(
    ("method", "n", "precision"),
    [
        ("statevector", 21, "double"),
        ("statevector", 23, "single"),
        ("statevector", 24, "double"),
        ("density_matrix", 10, "double"),
        ("density_matrix", 11, "single"),
    ],
)
def test_the_priced_state_is_the_memory_aer_requires(fez_ideal: Snapshot, method: str, n: int, precision: str) -> None:
    source = _whole_register(n)
    circuit = parse(source, "qasm2", fez_ideal)
    options = RunOptions.model_validate({"method": method, "precision": precision})
    priced = price(circuit_stats(circuit), fez_ideal, options, 1)
    assert priced.state_bytes == _aer_required_mib(circuit, method, precision) * 2**20


def test_aer_simulates_the_qubits_priced_as_active(fez_ideal: Snapshot) -> None:
    source = (
        "OPENQASM 2.0;\nqreg q[12];\ncreg c[2];\nsx q[3];\nbarrier q;\ncz q[3],q[4];\n"
        "measure q[3] -> c[0];\nmeasure q[4] -> c[1];\n"
    )
    checker = Checker(source, "qasm2", fez_ideal, 100)
    assert checker.run() == []
    circuit = parse(source, "qasm2", fez_ideal)
    metadata = AerSimulator().run(circuit, shots=10).result().results[0].metadata
    assert checker.stats.active_qubits == frozenset(metadata["active_input_qubits"]) == {3, 4}


@pytest.mark.parametrize(
    "body",
    [
        "sx q[0];\ncz q[0],q[1];\nmeasure q -> c;\n",
        "sx q[0];\nmeasure q[0] -> c[0];\nsx q[1];\nmeasure q[1] -> c[1];\n",
        "sx q[0];\nmeasure q[0] -> c[0];\nsx q[0];\nmeasure q[0] -> c[1];\n",
        "reset q[1];\nsx q[1];\nmeasure q -> c;\n",
        "sx q[0];\nmeasure q[0] -> c[0];\nif (c == 1) x q[1];\nmeasure q[1] -> c[1];\n",
    ],
    ids=["terminal", "other-qubit-after-measure", "same-qubit-after-measure", "reset", "conditional"],
)
def test_a_run_is_priced_per_shot_exactly_when_aer_does_not_sample(fez_ideal: Snapshot, body: str) -> None:
    source = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n' + body
    circuit = parse(source, "qasm2", fez_ideal)
    priced = price(circuit_stats(circuit), fez_ideal, RunOptions(), 100)
    metadata = AerSimulator(method="statevector").run(circuit, shots=100).result().results[0].metadata
    assert priced.per_shot is not metadata["measure_sampling"]


@pytest.mark.parametrize(
    ("n", "given"),
    [
        (3, {}),
        (12, {}),
        (3, {"noise": {"disable": ["gate_1q", "gate_2q"]}}),
        (12, {"noise": {"disable": ["gate_1q", "gate_2q"]}}),  # readout noise alone: still sampled
        (3, {"method": "statevector"}),
        (12, {"noise_model": "relaxation", "noise": {"disable": ["gate_1q", "gate_2q", "readout"]}}),
    ],
)
def test_aer_runs_the_method_priced_and_samples_as_priced(fez: Snapshot, n: int, given: dict[str, object]) -> None:
    circuit = parse(_whole_register(n), "qasm2", fez)
    options = RunOptions.model_validate(given)
    stats = circuit_stats(circuit)
    priced = price(stats, fez, options, 50)
    noise = NoiseCache().get(fez, stats.active_qubits, options.noise_model, options.noise).model
    metadata = AerSimulator(method=priced.method, noise_model=noise).run(circuit, shots=50).result().results[0].metadata
    assert metadata["method"] == priced.method
    assert priced.per_shot is not metadata["measure_sampling"]
