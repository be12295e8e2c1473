"""A `switch` leaves the client as the `if`/`else` chain it means: Aer gives the switch's distribution for
the chain and for the OpenQASM 3 sent, as the runner's parser reads it. (Not shot for shot: Aer draws its
random numbers differently for the two forms even under one seed. Seeds are fixed, so the test is
deterministic; a wrong branch moves a quarter of the shots, far past the bound.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ClassicalRegister, QuantumRegister
from qiskit.circuit.classical import expr
from qiskit_aer import AerSimulator

from device_registry import topologies
from runner.circuit import parse
from vqpu_client.qiskit.circuits import switches_as_if_chains, to_openqasm
from vqpu_client.qiskit.errors import UnsupportedCircuitError

SHOTS = 10_000


def _distance(a: dict[str, int], b: dict[str, int]) -> float:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in a.keys() | b.keys()) / (2 * SHOTS)


def _two_random_bits() -> QuantumCircuit:
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "c"), ClassicalRegister(1, "d"))
    qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    return qc


def _register_cases_and_a_default() -> QuantumCircuit:
    qc = _two_random_bits()
    with qc.switch(qc.cregs[0]) as case:
        with case(0):
            qc.sx(2)
        with case(1, 3), qc.if_test((qc.clbits[0], 1)):
            qc.sx(2)
            qc.sx(2)
        with case(case.DEFAULT):  # Qiskit takes the default last only
            qc.x(2)
    qc.measure(2, 2)
    return qc


def _bit_target_measuring_in_a_case() -> QuantumCircuit:
    qc = _two_random_bits()
    with qc.switch(qc.clbits[1]) as case:
        with case(True):
            qc.measure(2, 0)
            qc.x(2)
        with case(False):
            qc.sx(2)
    qc.measure(2, 2)
    return qc


def _switch_in_a_loop_and_in_a_switch() -> QuantumCircuit:
    qc = _two_random_bits()
    with qc.for_loop(range(2)), qc.switch(qc.cregs[0]) as outer:
        with outer(2), qc.switch(qc.clbits[0]) as inner, inner(False):
            qc.sx(2)
        with outer(outer.DEFAULT):
            qc.x(2)
    qc.measure(2, 2)
    return qc


def _only_a_default() -> QuantumCircuit:
    qc = _two_random_bits()
    with qc.switch(qc.cregs[0]) as case, case(case.DEFAULT):
        qc.sx(2)
    qc.measure(2, 2)
    return qc


@pytest.mark.parametrize(
    "build",
    [
        _register_cases_and_a_default,
        _bit_target_measuring_in_a_case,
        _switch_in_a_loop_and_in_a_switch,
        _only_a_default,
    ],
)
def test_the_chain_gives_the_switchs_distribution(build: Callable[[], QuantumCircuit]) -> None:
    circuit = build()
    chain = switches_as_if_chains(circuit)
    assert "switch_case" not in {inst.operation.name for inst in chain.data}
    aer = AerSimulator(seed_simulator=11)
    want = aer.run(circuit, shots=SHOTS).result().get_counts()
    assert len(want) >= 3  # the cases are exercised, not one branch only
    assert _distance(aer.run(chain, shots=SHOTS).result().get_counts(), want) < 0.04
    source = to_openqasm(circuit, ["cz", "rz", "sx", "x"])
    assert "switch" not in source
    parsed = parse(source, "qasm3", topologies.line(3))
    assert _distance(aer.run(parsed, shots=SHOTS).result().get_counts(), want) < 0.04


def test_a_switch_on_an_expression_is_refused_before_sending() -> None:
    qc = _two_random_bits()
    with qc.switch(expr.bit_and(qc.cregs[0], 1)) as case, case(1):
        qc.x(2)
    with pytest.raises(UnsupportedCircuitError, match="switch on an expression"):
        to_openqasm(qc, ["cz", "rz", "sx", "x"])
