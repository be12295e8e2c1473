"""Admissibility of a PUB's circuit: `input float[64] name;` parameters, accepted only when asked for."""

from __future__ import annotations

import time

import pytest

from device_registry import Snapshot, topologies
from device_registry.admissibility import MAX_VIOLATIONS, ViolationCode, check
from device_registry.admissibility.checker import Checker

Code = ViolationCode
HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


@pytest.fixture
def line() -> Snapshot:
    return topologies.line(5)


def _inputs(source: str, snapshot: Snapshot) -> tuple[str, ...]:
    checker = Checker(source, "qasm3", snapshot, MAX_VIOLATIONS, parameters=True)
    assert checker.run() == []
    return checker.stats.inputs


def test_inputs_are_accepted_when_asked_and_listed_in_declaration_order(line: Snapshot) -> None:
    source = (
        HEAD + "input float[64] theta;\ninput float[64]  alpha ;\ninput float [ 64 ] b_2;\nbit[1] c;\n"
        "rz(2*theta + 1) $0;\nrz(alpha) $1;\nrz(b_2 - theta) $0;\ncz $0, $1;\nc[0] = measure $0;\n"
    )
    assert _inputs(source, line) == ("theta", "alpha", "b_2")


def test_qiskits_own_export_of_a_parameter_vector_is_admitted_with_its_inputs_in_order(line: Snapshot) -> None:
    """`qiskit.qasm3.dumps` names the elements of a ParameterVector θ `_θ_0_`, `_θ_1_`, ... (OpenQASM 3
    identifiers may hold Unicode letters), declared in `circuit.parameters` order."""
    from qiskit import QuantumCircuit, qasm3
    from qiskit.circuit import Parameter, ParameterVector

    theta = ParameterVector("θ", 12)
    qc = QuantumCircuit(2, 2)
    for i in range(12):
        qc.rz(theta[i], i % 2)
    qc.rz(Parameter("φ") * 2, 0)
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    source = qasm3.dumps(qc).replace("q[0]", "$0").replace("q[1]", "$1").replace("qubit[2] q;\n", "")
    inputs = _inputs(source, line)
    assert inputs == (*(f"_θ_{i}_" for i in range(12)), "φ")  # circuit.parameters order: θ sorts before φ
    assert len(inputs) == len(qc.parameters)


def test_a_circuit_without_inputs_lists_none(line: Snapshot) -> None:
    assert _inputs(HEAD + "bit[1] c;\nx $0;\nc[0] = measure $0;\n", line) == ()


def test_a_circuit_task_still_refuses_input_parameters(line: Snapshot) -> None:
    [v] = check(HEAD + "input float[64] theta;\nrz(theta) $0;\n", "qasm3", line)
    assert v.code is Code.PARSE_ERROR and "input parameters" in v.message and v.line == 3
    checker = Checker(HEAD + "input float[64] theta;\n", "qasm3", line, MAX_VIOLATIONS)
    assert checker.run() and checker.stats.inputs == ()


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("input float theta;", "'input float[64] name;'"),
        ("input float[32] theta;", "'input float[64] name;'"),
        ("input angle[32] theta;", "'input float[64] name;'"),
        ("input int theta;", "'input float[64] name;'"),
        ("input float[64] theta = 1.0;", "'input float[64] name;'"),
        ("input float[64] a, b;", "'input float[64] name;'"),
        ("input float[64];", "'input float[64] name;'"),
    ],
)
def test_other_input_forms_are_refused_with_the_form_accepted(line: Snapshot, statement: str, fragment: str) -> None:
    [v] = check(HEAD + statement + "\n", "qasm3", line, parameters=True)
    assert v.code is Code.PARSE_ERROR and fragment in v.message, v


def test_an_input_is_declared_once_and_shares_no_name_with_a_register(line: Snapshot) -> None:
    twice = check(HEAD + "input float[64] a;\ninput float[64] a;\n", "qasm3", line, parameters=True)
    assert [(v.code, v.line) for v in twice] == [(Code.PARSE_ERROR, 4)] and "declared twice" in twice[0].message
    register_first = check(HEAD + "bit[1] a;\ninput float[64] a;\n", "qasm3", line, parameters=True)
    assert "declared twice" in register_first[0].message
    input_first = check(HEAD + "input float[64] c;\nbit[1] c;\n", "qasm3", line, parameters=True)
    assert "declared twice" in input_first[0].message


@pytest.mark.parametrize(
    "body",
    [
        "bit c;\nc = measure $0;\nif (c) { input float[64] a; }\n",
        "bit c;\nc = measure $0;\nif (c) input float[64] a;\n",
        "for uint i in [0:1] { input float[64] a; }\n",
    ],
)
def test_an_input_is_declared_at_top_level_only(line: Snapshot, body: str) -> None:
    [v] = check(HEAD + body, "qasm3", line, parameters=True)
    assert v.code is Code.PARSE_ERROR and "top level" in v.message


def test_an_openqasm_2_program_declares_no_input(line: Snapshot) -> None:
    source = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ninput float[64] a;\n'
    [v] = check(source, "qasm2", line, parameters=True)
    assert v.code is Code.PARSE_ERROR and "OpenQASM 3" in v.message


def test_other_violations_are_still_found_in_a_parameterised_circuit(line: Snapshot) -> None:
    found = check(HEAD + "input float[64] a;\nh $0;\ncz $0, $3;\n", "qasm3", line, parameters=True)
    assert [v.code for v in found] == [Code.UNKNOWN_GATE, Code.NO_COUPLING]


def test_a_mebibyte_of_input_declarations_is_read_in_well_under_a_second(line: Snapshot) -> None:
    count = (1 << 20) // len("input float[64] p_0000000;\n")
    source = HEAD + "".join(f"input float[64] p_{i:07d};\n" for i in range(count)) + "rz(p_0000000) $0;\n"
    started = time.perf_counter()
    inputs = _inputs(source, line)
    assert time.perf_counter() - started < 3.0
    assert len(inputs) == count and inputs[:2] == ("p_0000000", "p_0000001")
    repeated = HEAD + "input float[64] p;\n" * count
    started = time.perf_counter()
    found = check(repeated, "qasm3", line, parameters=True)
    assert time.perf_counter() - started < 3.0
    assert len(found) == MAX_VIOLATIONS and all("declared twice" in v.message for v in found)
