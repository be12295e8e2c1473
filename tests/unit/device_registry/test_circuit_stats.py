"""The admissibility pass counts what a price needs: operations as broadcast, active qubits, classical bits.

Qiskit's parser (through the runner's `circuit_stats`, which reads the parsed circuit) is the reference:
for every admitted program the pass must count what Qiskit builds and Aer simulates.
"""

from __future__ import annotations

import time

import pytest

from device_registry import Snapshot, topologies
from device_registry.admissibility import Checker, CircuitStats
from runner.circuit import circuit_stats, parse


def stats(source: str, dialect: str, snapshot: Snapshot) -> CircuitStats:
    checker = Checker(source, dialect, snapshot, 100)
    assert checker.run() == []
    return checker.stats


def qiskit_stats(source: str, dialect: str, snapshot: Snapshot) -> CircuitStats:
    return circuit_stats(parse(source, dialect, snapshot))


@pytest.fixture
def line() -> Snapshot:
    return topologies.line(6)


def test_a_gate_on_a_whole_register_counts_once_per_qubit(fez: Snapshot) -> None:
    source = "OPENQASM 2.0;\nqreg q[156];\ncreg c[156];\nsx q;\nmeasure q -> c;\n"
    counted = stats(source, "qasm2", fez)
    assert counted.expanded_ops == 2 * 156
    assert counted.active_qubits == frozenset(range(156))
    assert (counted.clbits, counted.classical_registers) == (156, 1)
    assert counted == qiskit_stats(source, "qasm2", fez)


def test_a_two_qubit_broadcast_over_two_registers_counts_once_per_pair() -> None:
    source = "OPENQASM 2.0;\nqreg a[1];\nqreg b[1];\nqreg q[2];\nqreg r[2];\ncz q, r;\ncz a[0], b;\n" + (
        "creg c[2];\ncreg d[2];\nmeasure q -> c;\nmeasure r -> d;\n"
    )
    full = topologies.all_to_all(6)
    counted = stats(source, "qasm2", full)
    assert counted.expanded_ops == 2 + 1 + 4
    assert counted.two_qubit_ops == 3
    assert counted.key_width == 4 + 1  # two registers: a space between them
    assert counted == qiskit_stats(source, "qasm2", full)


def test_barriers_are_not_operations_and_activate_no_qubit(line: Snapshot) -> None:
    source = "OPENQASM 2.0;\nqreg q[6];\ncreg c[1];\nsx q[0];\nbarrier q;\nmeasure q[0] -> c[0];\n"
    counted = stats(source, "qasm2", line)
    assert counted.expanded_ops == 2
    assert counted.active_qubits == frozenset({0})
    assert counted == qiskit_stats(source, "qasm2", line)


def test_openqasm3_physical_qubits_and_measure_assignments_are_counted(line: Snapshot) -> None:
    source = "OPENQASM 3.0;\nbit[2] c;\nsx $2;\ncz $2, $3;\nc[0] = measure $2;\nc[1] = measure $3;\n"
    counted = stats(source, "qasm3", line)
    assert counted.expanded_ops == 4
    assert counted.active_qubits == frozenset({2, 3})
    assert counted.crossings == (1,)
    assert counted == qiskit_stats(source, "qasm3", line)


def test_a_measuring_declaration_broadcasts_over_its_register(line: Snapshot) -> None:
    source = "OPENQASM 3.0;\nqubit[4] q;\nsx q;\nbit[4] c = measure q;\n"
    counted = stats(source, "qasm3", line)
    assert counted.expanded_ops == 8
    assert counted == qiskit_stats(source, "qasm3", line)


def test_a_loose_openqasm3_bit_is_counted_but_is_no_register(line: Snapshot) -> None:
    source = "OPENQASM 3.0;\nbit b;\nbit[2] c;\nsx $0;\nb = measure $0;\nc[0] = measure $1;\n"
    counted = stats(source, "qasm3", line)
    assert (counted.clbits, counted.classical_registers) == (3, 1)
    assert counted == qiskit_stats(source, "qasm3", line)


def test_an_if_statement_counts_its_body_and_makes_every_shot_its_own(line: Snapshot) -> None:
    source = "OPENQASM 2.0;\nqreg q[3];\ncreg c[3];\nsx q[0];\nmeasure q[0] -> c[0];\nif (c == 1) sx q;\n"
    counted = stats(source, "qasm2", line)
    assert counted.expanded_ops == 2 + 3
    assert counted.dynamic
    assert counted == qiskit_stats(source, "qasm2", line)


def test_an_if_block_counts_every_statement_of_each_branch(line: Snapshot) -> None:
    source = (
        "OPENQASM 3.0;\nbit[1] c;\nsx $0;\nc[0] = measure $0;\n"
        "if (c[0]) { sx $1; cz $1, $2; } else { x $2; }\nc[0] = measure $2;\n"
    )
    counted = stats(source, "qasm3", line)
    assert (counted.expanded_ops, counted.two_qubit_ops, counted.dynamic) == (2 + 3 + 1, 1, True)
    assert counted == qiskit_stats(source, "qasm3", line)


@pytest.mark.parametrize(
    "blocks",
    [
        "for uint i in [0:4] { sx $0; cz $0, $1; }",
        "for int i in [6:-2:1] { sx $0; for uint j in [0:2] { cz $1, $2; } }",
        "for uint i in [0:2] { sx $0; c[0] = measure $0; if (c[0]) { break; } x $1; }",
        "while (!c[0]) { sx $0; c[0] = measure $0; if (c[0]) { continue; } }",
        "switch (c) { case 0 { sx $3; } case 1, 2 { cz $2, $3; } default { x $0; } }",
        "for uint i in [3:1] { cz $0, $1; }",
    ],
    ids=["for", "nested-for-with-step", "for-with-break", "while-with-continue", "switch", "empty-range"],
)
def test_control_flow_is_counted_as_qiskit_builds_it(line: Snapshot, blocks: str) -> None:
    """A `for` body once per iteration (an empty range: not at all, though its qubits are active), a
    `while` body once, every case of a switch; break and continue are no operations."""
    source = f"OPENQASM 3.0;\nbit[2] c;\nsx $0;\nc[0] = measure $0;\n{blocks}\nc[1] = measure $1;\n"
    counted = stats(source, "qasm3", line)
    assert counted.dynamic
    assert counted == qiskit_stats(source, "qasm3", line)


@pytest.mark.parametrize(
    ("body", "dynamic"),
    [
        ("sx q[0];\nmeasure q[0] -> c[0];\nsx q[1];\nmeasure q[1] -> c[1];\n", False),
        ("sx q[0];\nmeasure q[0] -> c[0];\nsx q[0];\nmeasure q[0] -> c[1];\n", True),
        ("sx q[0];\nmeasure q[0] -> c[0];\ncz q[1], q[0];\nmeasure q[1] -> c[1];\n", True),
        ("reset q[0];\nsx q[0];\nmeasure q[0] -> c[0];\n", True),
        ("sx q[0];\nmeasure q[0] -> c[0];\nbarrier q;\nmeasure q[0] -> c[1];\n", False),
    ],
    ids=["other-qubit-after-measure", "same-qubit-after-measure", "pair-after-measure", "reset", "barrier"],
)
def test_whether_aer_must_simulate_each_shot_follows_what_touches_a_measured_qubit(
    line: Snapshot, body: str, dynamic: bool
) -> None:
    source = "OPENQASM 2.0;\nqreg q[2];\ncreg c[2];\n" + body
    assert stats(source, "qasm2", line).dynamic is dynamic
    assert qiskit_stats(source, "qasm2", line).dynamic is dynamic


def test_crossings_count_the_operations_spanning_each_cut_between_active_qubits(line: Snapshot) -> None:
    source = "OPENQASM 3.0;\nbit[1] c;\ncz $0, $1;\ncz $1, $2;\ncz $1, $2;\nsx $4;\ncz $4, $5;\nc[0] = measure $0;\n"
    counted = stats(source, "qasm3", line)
    # active 0,1,2,4,5: cuts 0|1 (one cz), 1|2 (two), 2|4 (none), 4|5 (one)
    assert counted.crossings == (1, 2, 0, 1)
    assert counted == qiskit_stats(source, "qasm3", line)


def test_counting_keeps_the_pass_linear_in_a_huge_broadcast(fez: Snapshot) -> None:
    one = "OPENQASM 2.0;\nqreg q[156];\ncreg c[1];\n" + "sx q;\n" * 1_000 + "measure q[0] -> c[0];\n"
    many = "OPENQASM 2.0;\nqreg q[156];\ncreg c[1];\n" + "sx q;\n" * 8_000 + "measure q[0] -> c[0];\n"
    timings = []
    for source in (one, many):
        started = time.perf_counter()
        counted = stats(source, "qasm2", fez)
        timings.append(time.perf_counter() - started)
    assert counted.expanded_ops == 8_000 * 156 + 1
    assert timings[1] < 8 * timings[0] * 3  # linear, with room for a noisy machine
