"""Control flow at submit: `if`/`else`, `for`, `while` and `switch` blocks are checked statement by
statement on a device that executes them, refused with UNSUPPORTED_CONTROL_FLOW on one that does not,
and a `for` loop's body is priced once per iteration."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit, qasm3

from device_registry import catalog, topologies
from device_registry.admissibility import Checker, check
from device_registry.admissibility import ViolationCode as Code
from device_registry.snapshot import Snapshot
from tests.unit.device_registry.test_admissibility import with_faults

H3 = "OPENQASM 3.0;\nbit[2] c;\n"


@pytest.fixture(scope="module")
def fez() -> Snapshot:
    return catalog.load("ibm-fez")


def _without(snapshot: Snapshot, *constructs: str) -> Snapshot:
    return snapshot.model_copy(update={"control_flow": [c for c in snapshot.control_flow if c not in constructs]})


def _ops(source: str, device: Snapshot) -> int:
    checker = Checker(source, "qasm3", device, 100)
    assert checker.run() == []
    return checker.stats.expanded_ops


def test_what_qiskit_exports_for_a_dynamic_circuit_is_admissible_on_fez(fez: Snapshot) -> None:
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as else_:
        qc.x(1)
    with else_:
        qc.sx(1)
    with qc.for_loop(range(3)):
        qc.sx(0)
    qc.measure([0, 1], [0, 1])
    source = qasm3.dumps(qc)
    assert "for int _ in [0:2] {" in source and "} else {" in source
    assert check(source, "qasm3", fez) == []


def test_fez_executes_if_for_and_switch_but_not_while(fez: Snapshot) -> None:
    program = H3 + (
        "x $0;\nc[0] = measure $0;\n"
        "if (c[0]) { x $1; } else if (c[1]) { sx $1; } else { x $1; }\n"
        "for uint i in [0:2] { sx $0; cz $0, $1; }\n"
        "switch (c) { case 0 { x $0; } case 1, 2 { sx $0; } default { x $1; } }\n"
        "c[0] = measure $0;\n"
    )
    assert check(program, "qasm3", fez) == []
    [v] = check(H3 + "c[0] = measure $0;\nwhile (!c[0]) { sx $0; c[0] = measure $0; }\n", "qasm3", fez)
    assert (v.code, v.line) == (Code.UNSUPPORTED_CONTROL_FLOW, 4)
    assert "ibm-fez does not execute while_loop" in v.message and "for_loop, if_else, switch_case" in v.message


def test_a_device_that_lists_a_construct_admits_it(fez: Snapshot) -> None:
    repeat_until_success = H3 + "c[0] = measure $0;\nwhile (!c[0]) { sx $0; c[0] = measure $0; if (c[1]) break; }\n"
    device = fez.model_copy(update={"control_flow": ["if_else", "while_loop"]})
    assert check(repeat_until_success, "qasm3", device) == []


@pytest.mark.parametrize(
    ("dialect", "program", "construct"),
    [
        ("qasm3", H3 + "c[0] = measure $0;\nif (c[0]) { x $1; }\n", "if_else"),
        ("qasm3", H3 + "c[0] = measure $0;\nif (c[0]) x $1;\n", "if_else"),
        ("qasm2", "OPENQASM 2.0;\nqreg q[2];\ncreg c[2];\nmeasure q[0] -> c[0];\nif (c == 1) x q[1];\n", "if_else"),
        ("qasm3", H3 + "x $0;\nfor uint i in [0:3] { x $0; }\n", "for_loop"),
        ("qasm3", H3 + "x $0;\nswitch (c) { case 0 { x $0; } }\n", "switch_case"),
    ],
)
def test_a_device_without_a_construct_refuses_it_at_submit(dialect: str, program: str, construct: str) -> None:
    device = topologies.line(4, control_flow=())
    violations = check(program, dialect, device)
    assert [v.code for v in violations] == [Code.UNSUPPORTED_CONTROL_FLOW], violations
    assert f"does not execute {construct}" in violations[0].message
    assert check(program, dialect, topologies.line(4)) == []  # a synthetic device executes every construct


def test_kingston_declares_only_if_else() -> None:
    kingston = catalog.load("ibm-kingston")
    assert kingston.control_flow == ["if_else"]
    [v] = check(H3 + "for uint i in [0:1] { x $0; }\n", "qasm3", kingston)
    assert v.code is Code.UNSUPPORTED_CONTROL_FLOW


@pytest.mark.parametrize(
    ("body", "code", "operands"),
    [
        ("h $0;", Code.UNKNOWN_GATE, (0,)),
        ("cz $0, $5;", Code.NO_COUPLING, (0, 5)),
        ("x $200;", Code.QUBIT_OUT_OF_RANGE, (200,)),
    ],
)
@pytest.mark.parametrize(
    "block",
    [
        "if (c[0]) {{ {body} }}",
        "if (c[0]) {{ x $0; }} else {{ {body} }}",
        "for uint i in [0:1] {{ {body} }}",
        "switch (c) {{ case 0 {{ x $0; }} default {{ {body} }} }}",
        "for uint i in [0:1] {{ if (c[1]) {{ {body} }} }}",
    ],
)
def test_gates_in_every_kind_of_block_are_checked_like_top_level_ones(
    fez: Snapshot, block: str, body: str, code: Code, operands: tuple[int, ...]
) -> None:
    program = H3 + "c[0] = measure $0;\n" + block.format(body=body) + "\n"
    [v] = check(program, "qasm3", fez)
    assert (v.code, v.line, v.operands) == (code, 4, operands)


def test_an_offline_qubit_in_a_loop_is_refused() -> None:
    device = with_faults(topologies.line(4), offline=(2,))
    [v] = check(H3 + "for uint i in [0:1] { x $2; }\n", "qasm3", device)
    assert (v.code, v.operands) == (Code.QUBIT_OFFLINE, (2,))


@pytest.mark.parametrize(
    ("program", "fragment"),
    [
        (H3 + "break;\n", "'break' outside a loop"),
        (H3 + "if (c[0]) { continue; }\n", "'continue' outside a loop"),
        (H3 + "switch (c) { x $0; case 0 { x $0; } }\n", "only 'case' and 'default' blocks"),
        (H3 + "switch (c) { case 0 { x $0; } case 1, 0 { x $1; } }\n", "case 0 appears twice"),
        (H3 + "switch (c) { default { x $0; } default { x $1; } }\n", "'default' appears twice"),
        (H3 + "for uint i in {0, 1} { x $0; }\n", "literal range"),
        (H3 + "for float i in [0:1] { x $0; }\n", "literal range"),
        (H3 + "for uint i in [0:0:3] { x $0; }\n", "step cannot be 0"),
        (H3 + "while c[0] { x $0; }\n", "malformed 'while' header"),
        (H3 + "if (c[0:1] == 3) { x $0; }\n", "a condition is a bit"),
        (H3 + "if (c[0:1] == 3) x $0;\n", "a condition is a bit"),
        (H3 + "switch (c[0:1]) { case 0 { x $0; } }\n", "a switch is on a classical register or one bit"),
        (H3 + "switch (c) { case 4 { x $0; } }\n", "case 4 is no value of the switch's 2-bit target"),
        (H3 + "switch (c[1]) { case 0 { x $0; } case 2 { x $1; } }\n", "case 2 is no value of the switch's 1-bit"),
        (H3 + "if (d[0]) { x $0; }\n", "classical bit d is not declared"),
        (H3 + "while (c[2]) { x $0; }\n", "out of range for c[2]"),
    ],
)
def test_malformed_control_flow_is_a_parse_error(program: str, fragment: str) -> None:
    violations = check(program, "qasm3", topologies.line(4))
    assert violations and violations[0].code is Code.PARSE_ERROR, violations
    assert fragment in violations[0].message


@pytest.mark.parametrize(
    ("loop", "ops"),
    [
        ("for uint i in [0:9] { sx $0; }", 10),
        ("for uint i in [0:2:8] { sx $0; }", 5),
        ("for int i in [3:-1:0] { sx $0; }", 4),
        ("for uint i in [3:1] { sx $0; }", 0),
        ("for uint i in [0:1] { for uint j in [0:2] { sx $0; cz $0, $1; } }", 12),
        ("for uint i in [0:4] { sx $0; } sx $1;", 6),
        ("while (c[0]) { sx $0; }", 1),
        ("if (c[0]) { sx $0; } else { sx $1; }", 2),
    ],
)
def test_a_for_loop_is_priced_once_per_iteration(loop: str, ops: int) -> None:
    # the declaration and nothing else: ops counts the loop alone
    assert _ops(H3 + loop + "\n", topologies.line(4)) == ops


def test_the_weight_of_nested_loops_is_bounded() -> None:
    depth = 20
    program = H3 + "for uint i in [0:999999999] { " * depth + "sx $0;" + " }" * depth + "\n"
    ops = _ops(program, topologies.line(4))
    assert 10**14 < ops <= 10**15  # far past any price limit, and a number that stays small


def test_a_for_loop_makes_the_circuit_dynamic_and_its_qubits_active(fez: Snapshot) -> None:
    checker = Checker(H3 + "for uint i in [0:1] { cz $0, $1; }\nc[0] = measure $0;\n", "qasm3", fez, 100)
    assert checker.run() == []
    stats = checker.stats
    assert stats.dynamic and stats.active_qubits == {0, 1} and stats.two_qubit_ops == 2
