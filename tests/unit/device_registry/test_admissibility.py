"""Admissibility: the lexical check on every topology family, directed devices and real Fez; includes; linear time."""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import pytest

from device_registry import Snapshot, admissibility, catalog, parse_snapshot, topologies
from device_registry.admissibility import INCLUDES, MAX_VIOLATIONS, Violation, ViolationCode, check, is_admissible

Code = ViolationCode


def qasm2(body: str, n: int) -> str:
    return f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n{body}'


def codes(violations: list[Violation]) -> list[str]:
    return [str(v.code) for v in violations]


def with_faults(snapshot: Snapshot, *, offline: tuple[int, ...] = (), unavailable: tuple[int, ...] = ()) -> Snapshot:
    """A copy with the given qubits OFFLINE and the edges at the given positions UNAVAILABLE."""
    data = snapshot.to_json_dict()
    for q in offline:
        data["qubits"][q]["status"] = "OFFLINE"
    for i in unavailable:
        data["edges"][i]["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


FAMILIES: dict[str, Callable[[], Snapshot]] = {
    "line": lambda: topologies.line(7),
    "ring": lambda: topologies.ring(7),
    "star": lambda: topologies.star(6),
    "all-to-all": lambda: topologies.all_to_all(5),
    "grid": lambda: topologies.grid(3, 4),
    "heavy-hex": lambda: topologies.heavy_hex(3, 8),
    "edge-list": lambda: topologies.from_edges(6, [(0, 3), (3, 5), (5, 1), (1, 4)]),
}


@pytest.fixture(params=sorted(FAMILIES), ids=sorted(FAMILIES))
def device(request: pytest.FixtureRequest) -> Snapshot:
    return FAMILIES[request.param]()


# --- every topology family ------------------------------------------------------------


def test_every_coupling_of_every_family_is_admissible_in_both_directions(device: Snapshot) -> None:
    n = device.num_qubits
    body = "".join(f"cz q[{e.source}],q[{e.target}];\ncz q[{e.target}],q[{e.source}];\n" for e in device.edges)
    body += "".join(f"sx q[{i}];\nrz(pi/3) q[{i}];\nx q[{i}];\nid q[{i}];\n" for i in range(n))
    assert check(qasm2(body + "measure q -> c;\n", n), "qasm2", device) == []


def test_every_uncoupled_pair_of_every_family_is_no_coupling_on_its_own_line(device: Snapshot) -> None:
    coupled = {frozenset((e.source, e.target)) for e in device.edges}
    pairs = [p for p in combinations(range(device.num_qubits), 2) if frozenset(p) not in coupled]
    if not pairs:
        assert device.device_id.startswith("all-to-all")
        return
    body = "".join(f"cz q[{a}],q[{b}];\n" for a, b in pairs)
    violations = check(qasm2(body, device.num_qubits), "qasm2", device, limit=len(pairs) + 1)
    assert codes(violations) == ["NO_COUPLING"] * len(pairs)
    assert [v.operands for v in violations] == pairs
    assert [v.line for v in violations] == list(range(5, 5 + len(pairs)))
    assert all("not coupled" in v.message for v in violations)


def test_a_qubit_past_the_device_is_out_of_range_in_every_family(device: Snapshot) -> None:
    n = device.num_qubits
    [v] = check(f"OPENQASM 3.0;\nx ${n};\n", "qasm3", device)
    assert (v.code, v.line, v.operands) == (Code.QUBIT_OUT_OF_RANGE, 2, (n,))
    [v] = check(f"OPENQASM 2.0;\nqreg q[{n + 2}];\nx q[0];\n", "qasm2", device)
    assert (v.code, v.line, v.operands) == (Code.QUBIT_OUT_OF_RANGE, 2, (n, n + 1))


# --- directed devices ------------------------------------------------------------------


@pytest.fixture
def directed() -> Snapshot:
    return topologies.from_edges(
        4, [(0, 1), (2, 1), (2, 3), (3, 2)], directed=True, two_qubit_gate="ecr", device_id="directed-4"
    )


def test_directed_device_accepts_listed_directions_only(directed: Snapshot) -> None:
    ok = "ecr q[0],q[1];\necr q[2],q[1];\necr q[2],q[3];\necr q[3],q[2];\n"
    assert check(qasm2(ok, 4), "qasm2", directed) == []
    [reverse] = check(qasm2("ecr q[1],q[0];\n", 4), "qasm2", directed)
    assert (reverse.code, reverse.operands, reverse.gate) == (Code.NO_COUPLING, (1, 0), "ecr")
    assert "directed" in reverse.message and "(0, 1)" in reverse.message


def test_directed_device_rejects_another_two_qubit_gate_on_a_listed_coupling(directed: Snapshot) -> None:
    [v] = check(qasm2("cz q[0],q[1];\n", 4), "qasm2", directed)  # cz is native here, but no edge carries it
    assert v.code is Code.NO_COUPLING and "carries ecr, not cz" in v.message
    ecr_only = topologies.from_edges(3, [(0, 1)], directed=True, two_qubit_gate="ecr", native_gates=("rz", "sx"))
    [v] = check(qasm2("cz q[0],q[1];\n", 3), "qasm2", ecr_only)
    assert v.code is Code.UNKNOWN_GATE and "native: ecr, rz, sx" in v.message


def test_directed_device_in_qasm3_physical_qubits(directed: Snapshot) -> None:
    assert check("OPENQASM 3.0;\necr $2, $1;\n", "qasm3", directed) == []
    assert codes(check("OPENQASM 3.0;\necr $1, $2;\n", "qasm3", directed)) == ["NO_COUPLING"]


# --- the real Fez snapshot ---------------------------------------------------------------


def test_fez_broken_coupler_is_no_coupling_and_says_unavailable(fez: Snapshot) -> None:
    broken = next(e for e in fez.edges if not e.available)
    a, b = broken.source, broken.target
    [v] = check(f"OPENQASM 3.0;\ncz ${b}, ${a};\n", "qasm3", fez)
    assert (v.code, v.operands) == (Code.NO_COUPLING, (b, a))
    assert "UNAVAILABLE" in v.message
    # The ideal twin drops the calibration, not the graph: a broken coupler stays broken there too.
    assert codes(check(f"OPENQASM 3.0;\ncz ${b}, ${a};\n", "qasm3", catalog.load("ibm-fez-ideal"))) == ["NO_COUPLING"]


def test_fez_rejects_non_native_gates_with_the_native_set_in_the_message(fez: Snapshot) -> None:
    violations = check(qasm2("h q[0];\ncx q[0],q[1];\nu3(0.1,0.2,0.3) q[2];\n", 3), "qasm2", fez)
    assert [(v.code, v.gate, v.operands, v.line) for v in violations] == [
        (Code.UNKNOWN_GATE, "h", (0,), 5),
        (Code.UNKNOWN_GATE, "cx", (0, 1), 6),
        (Code.UNKNOWN_GATE, "u3", (2,), 7),
    ]
    assert "native: cz, id, rz, sx, x" in violations[0].message


def test_offline_qubits_block_gates_and_measurement_but_not_barriers() -> None:
    dev = with_faults(topologies.line(4), offline=(2,))
    assert codes(check(qasm2("x q[2];\n", 4), "qasm2", dev)) == ["QUBIT_OFFLINE"]
    assert codes(check(qasm2("cz q[1],q[2];\n", 4), "qasm2", dev)) == ["QUBIT_OFFLINE"]
    assert codes(check(qasm2("measure q[2] -> c[2];\n", 4), "qasm2", dev)) == ["QUBIT_OFFLINE"]
    assert codes(check(qasm2("reset q[2];\n", 4), "qasm2", dev)) == ["QUBIT_OFFLINE"]
    [v] = check(qasm2("measure q -> c;\n", 4), "qasm2", dev)  # a whole-register broadcast names qubit 2
    assert (v.code, v.operands) == (Code.QUBIT_OFFLINE, (2,))
    assert check(qasm2("barrier q;\nx q[0];\nmeasure q[0] -> c[0];\n", 4), "qasm2", dev) == []


def test_unavailable_edge_in_a_synthetic_device() -> None:
    dev = with_faults(topologies.ring(5), unavailable=(0,))
    [v] = check(qasm2("cz q[1],q[0];\n", 5), "qasm2", dev)
    assert v.code is Code.NO_COUPLING and "UNAVAILABLE" in v.message
    assert check(qasm2("cz q[1],q[2];\n", 5), "qasm2", dev) == []


# --- OpenQASM 3 forms ----------------------------------------------------------------------


def test_qasm3_program_with_every_supported_form_is_admissible(fez: Snapshot) -> None:
    program = """OPENQASM 3.0;
include "stdgates.inc";
bit[3] c;
bit flag;
// physical qubits, parameters, directives
sx $0;
rz(pi / 2) $1;
cz $0, $1;
delay[120ns] $2;
barrier $0, $1, $2;
reset $2;
c[0] = measure $0;
measure $1 -> c[1];
flag = measure $2;
if (c[0] == true) { x $1; }
if (flag) x $2;
gate mine a, b { h a; cx a, b; }
"""
    assert check(program, "qasm3", fez) == []


def test_qasm3_declared_registers_map_to_qubits_in_declaration_order() -> None:
    dev = topologies.line(5)
    program = "OPENQASM 3.0;\nqubit[2] a;\nqubit b;\nqubit[2] d;\nbit[2] c = measure a;\ncz a[1], b;\ncz b, d[0];\n"
    assert check(program, "qasm3", dev) == []
    [v] = check(program + "cz a[0], d[1];\n", "qasm3", dev)
    assert (v.code, v.operands, v.line) == (Code.NO_COUPLING, (0, 4), 8)


def test_applying_a_user_defined_gate_or_a_modified_gate_is_unknown(fez: Snapshot) -> None:
    program = "OPENQASM 3.0;\ngate mine a { sx a; }\nmine $0;\nctrl @ x $0, $1;\ninv @ sx $3;\n"
    violations = check(program, "qasm3", fez)
    assert [(v.code, v.line, v.gate) for v in violations] == [
        (Code.UNKNOWN_GATE, 3, "mine"),
        (Code.UNKNOWN_GATE, 4, "ctrl @ x"),
        (Code.UNKNOWN_GATE, 5, "inv @ sx"),
    ]


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("for int i in [0:2] x $0;", "loops without braces"),
        ("case 1 { x $0; }", "'case' blocks outside a switch"),
        ("def f(qubit a) { x a; }", "subroutines"),
        ("input float theta;", "input parameters"),
        ("let a = $0;", "aliases"),
    ],
)
def test_constructs_the_lexical_pass_cannot_verify_are_parse_errors(fez: Snapshot, statement: str, what: str) -> None:
    violations = check(f"OPENQASM 3.0;\nx $0;\n{statement}\nx $1;\n", "qasm3", fez)
    assert [(v.code, v.line) for v in violations] == [(Code.PARSE_ERROR, 3)]
    assert what.strip("'") in violations[0].message


# --- parse errors, line numbers and limits --------------------------------------------------


@pytest.mark.parametrize(
    ("program", "dialect", "line", "fragment"),
    [
        ("OPENQASM 2.0;\nqreg q[2];\nx q[0]\n", "qasm2", 3, "missing ';'"),
        ("OPENQASM 2.0;\nqreg q[2];\nx r[0];\n", "qasm2", 3, "r is not a declared quantum register"),
        ("OPENQASM 2.0;\nqreg q[2];\nx q[2];\n", "qasm2", 3, "out of range for q[2]"),
        ("OPENQASM 2.0;\nqreg q[2];\ncreg c[1];\nmeasure q[0] -> c[1];\n", "qasm2", 4, "out of range for c[1]"),
        ("OPENQASM 2.0;\nqreg q[2];\nmeasure q[0] -> d[0];\n", "qasm2", 3, "d is not declared"),
        ("OPENQASM 2.0;\nqreg q[2];\nmeasure q[0];\n", "qasm2", 3, "needs '-> creg'"),
        ("OPENQASM 2.0;\nqreg q[2];\nqreg q[3];\n", "qasm2", 3, "declared twice"),
        ("OPENQASM 2.0;\nqreg q[2];\ncz q[0],q[0];\n", "qasm2", 3, "more than once"),
        ("OPENQASM 2.0;\nqreg q[2];\ncz q[0];\n", "qasm2", 3, "acts on 2 qubits"),
        ("OPENQASM 2.0;\nqreg q[2];\nx q[0],q[1];\n", "qasm2", 3, "acts on 1 qubit"),
        ("OPENQASM 2.0;\nx $0;\n", "qasm2", 2, "OpenQASM 3 syntax"),
        ("OPENQASM 3.0;\nx $0;\n", "qasm2", 1, "declares OPENQASM 3"),
        ("OPENQASM 2.0;\nqreg q[2];\n", "qasm3", 1, "declares OPENQASM 2"),
        ("qreg q[2];\nOPENQASM 2.0;\n", "qasm2", 2, "must come first"),
        ("OPENQASM 3.0;\nqubit[2] q;\nx $0;\n", "qasm3", 3, "not both"),
        ("OPENQASM 3.0;\nbit c;\nif (c) { x $0;\n", "qasm3", 3, "never closed"),
        ("OPENQASM 3.0;\nx $0;\n}\n", "qasm3", 3, "without a matching '{'"),
        ("OPENQASM 3.0;\nx $0;\n@@@;\n", "qasm3", 3, "cannot read statement"),
        ("OPENQASM 3.0;\ngate cz a, b { }\n", "qasm3", 2, "cannot be redefined"),
        ("OPENQASM 3.0;\nx $0 $1;\n", "qasm3", 2, "cannot read qubit operand"),
        ("OPENQASM 3.0;\nrz(pi $0;\n", "qasm3", 2, "unbalanced parentheses"),
        ("OPENQASM 3.0;\ndelay $0;\n", "qasm3", 2, "needs a duration"),
        ("OPENQASM 3.0;\nqubit[2] a;\nqubit[3] b;\ncz a, b;\n", "qasm3", 4, "different sizes"),
    ],
)
def test_malformed_programs_are_parse_errors_on_the_right_line(
    program: str, dialect: str, line: int, fragment: str
) -> None:
    dev = topologies.line(6)
    violations = check(program, dialect, dev)
    assert violations, "a malformed program must not be admissible"
    first = violations[0]
    assert (first.code, first.line) == (Code.PARSE_ERROR, line), first
    assert fragment in first.message


def test_comments_and_layout_do_not_shift_line_numbers() -> None:
    dev = topologies.line(3)
    program = (
        "OPENQASM 2.0; // header\n"
        "/* a block comment\n   over three lines; with a ; inside\n*/\n"
        "qreg q[3]; creg c[3];\n"
        "x q[0]; h q[1]; // h is on line 6\n"
        "\n\n"
        "cz q[0],\n    q[2];\n"
    )
    violations = check(program, "qasm2", dev)
    assert [(v.code, v.line) for v in violations] == [(Code.UNKNOWN_GATE, 6), (Code.NO_COUPLING, 9)]


def test_broadcast_over_registers_checks_each_pair() -> None:
    dev = topologies.line(4)
    assert check("OPENQASM 2.0;\nqreg a[2];\nqreg b[2];\ncz a,b;\n", "qasm2", topologies.grid(2, 2)) == []
    violations = check("OPENQASM 2.0;\nqreg a[2];\nqreg b[2];\ncz a,b;\n", "qasm2", dev)  # (0,2), (1,3)
    assert [v.operands for v in violations] == [(0, 2), (1, 3)]
    assert check("OPENQASM 2.0;\nqreg q[4];\nx q;\nsx q;\n", "qasm2", dev) == []


def test_unknown_dialect_is_one_violation_without_a_line(fez: Snapshot) -> None:
    [v] = check("OPENQASM 2.0;", "quil", fez)
    assert (v.code, v.line) == (Code.UNKNOWN_DIALECT, None)
    assert v.to_dict() == {"code": "UNKNOWN_DIALECT", "line": None, "gate": None, "operands": [], "message": v.message}


def test_violations_stop_at_the_limit(fez: Snapshot) -> None:
    program = "OPENQASM 3.0;\n" + "h $0;\n" * (MAX_VIOLATIONS * 3)
    violations = check(program, "qasm3", fez)
    assert len(violations) == MAX_VIOLATIONS
    assert [v.line for v in violations] == list(range(2, 2 + MAX_VIOLATIONS))
    assert not is_admissible(program, "qasm3", fez)
    assert is_admissible("OPENQASM 3.0;\nsx $0;\n", "qasm3", fez)


def test_empty_and_comment_only_programs_are_admissible(fez: Snapshot) -> None:
    assert check("", "qasm3", fez) == []
    assert check("// nothing\n/* at all */\n", "qasm2", fez) == []


def test_violation_to_dict_is_json_ready(fez: Snapshot) -> None:
    [v] = check("OPENQASM 3.0;\ncz $0, $2;\n", "qasm3", fez)
    assert v.to_dict() == {
        "code": "NO_COUPLING",
        "line": 2,
        "gate": "cz",
        "operands": [0, 2],
        "message": "qubits 0 and 2 are not coupled on ibm-fez",
    }


# --- includes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "header"), [("qasm2", "OPENQASM 2.0;\nqreg q[2];\n"), ("qasm3", "OPENQASM 3.0;\nqubit[2] q;\n")]
)
def test_the_standard_library_of_each_dialect_is_the_one_admissible_include(dialect: str, header: str) -> None:
    allowed = INCLUDES[dialect]
    program = f'{header}include /* spacing */ "{allowed}"  ;\nx q[0];\n'
    assert check(program, dialect, topologies.line(2)) == []
    [twice] = check(f'{program}include "{allowed}";\n', dialect, topologies.line(2))
    assert (twice.code, twice.line) == (Code.PARSE_ERROR, 5) and "included twice" in twice.message


@pytest.mark.parametrize("dialect", ["qasm2", "qasm3"])
@pytest.mark.parametrize(
    "target",
    [
        '"/etc/passwd"',
        '"../x.qasm"',
        '"qelib1.inc "',
        '"./stdgates.inc"',
        "'stdgates.inc'",
        '"/*x*/qelib1.inc"',
        '"a;b//c{}"',
        '"other.inc"',
    ],
)
def test_any_other_include_is_not_allowed_and_the_message_names_it_and_the_allowed_one(
    dialect: str, target: str
) -> None:
    program = f"OPENQASM {dialect[-1]}.0;\ninclude {target};\n"
    [v] = check(program, dialect, topologies.line(2))
    assert (v.code, v.line) == (Code.INCLUDE_NOT_ALLOWED, 2)
    assert target in v.message and f'"{INCLUDES[dialect]}"' in v.message


def test_each_dialect_refuses_the_other_dialects_library() -> None:
    [v2] = check('OPENQASM 2.0;\ninclude "stdgates.inc";\n', "qasm2", topologies.line(2))
    [v3] = check('OPENQASM 3.0;\ninclude "qelib1.inc";\n', "qasm3", topologies.line(2))
    assert v2.code is v3.code is Code.INCLUDE_NOT_ALLOWED
    assert 'only include a qasm2 program may use is "qelib1.inc"' in v2.message
    assert 'only include a qasm3 program may use is "stdgates.inc"' in v3.message


def test_an_include_of_an_existing_file_is_refused_without_opening_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.inc"
    secret.write_text("gate h a { U(pi/2, 0, pi) a; }\n")

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the check opened a file: {args}")

    monkeypatch.setattr(builtins, "open", no_reading)
    monkeypatch.setattr(io, "open", no_reading)
    monkeypatch.setattr(os, "open", no_reading)
    [v] = check(f'OPENQASM 2.0;\ninclude "{secret}";\nqreg q[1];\nx q[0];\n', "qasm2", topologies.line(2))
    assert v.code is Code.INCLUDE_NOT_ALLOWED and f'include "{str(secret)[:100]}' in v.message


def test_a_very_long_include_path_is_clipped_in_the_message() -> None:
    [v] = check('OPENQASM 3.0;\ninclude "' + "a/" * 50_000 + '";\n', "qasm3", topologies.line(2))
    assert v.code is Code.INCLUDE_NOT_ALLOWED and len(v.message) < 300


def test_an_include_without_a_quoted_name_is_a_parse_error() -> None:
    [v] = check("OPENQASM 2.0;\ninclude qelib1.inc;\n", "qasm2", topologies.line(2))
    assert (v.code, v.line) == (Code.PARSE_ERROR, 2) and "malformed include" in v.message


# --- lexing -----------------------------------------------------------------------------------


def test_a_gate_name_run_into_its_operand_is_not_read_as_that_gate() -> None:
    dev = topologies.line(4)
    for statement in ("xq[0];", "sxq[1];", "czq[0],q[1];"):
        violations = check(qasm2(statement + "\n", 4), "qasm2", dev)
        assert [(v.code, v.line) for v in violations] == [(Code.PARSE_ERROR, 5)], statement


def test_a_comment_separates_words_like_a_space() -> None:
    dev = topologies.line(4)
    assert check("OPENQASM 3.0;\nx/* a comment */$0;\ncz $0,// another\n$1;\n", "qasm3", dev) == []


def test_a_comment_marker_inside_a_line_comment_does_not_open_a_block_comment() -> None:
    program = "OPENQASM 3.0;\nx $0; // not /* a block\nh $1;\n"
    [v] = check(program, "qasm3", topologies.line(4))
    assert (v.code, v.line, v.gate) == (Code.UNKNOWN_GATE, 3, "h")


def test_a_block_comment_that_is_never_closed_is_a_parse_error_on_its_line() -> None:
    [v] = check("OPENQASM 3.0;\nx $0;\n/* forgotten\nx $1;\n", "qasm3", topologies.line(4))
    assert (v.code, v.line) == (Code.PARSE_ERROR, 3) and "never closed" in v.message


def test_a_statement_after_comments_is_reported_on_its_own_line() -> None:
    program = "OPENQASM 3.0;\n/* one */ // two\n/* three\n*/   h $0;\n"
    [v] = check(program, "qasm3", topologies.line(4))
    assert (v.code, v.line) == (Code.UNKNOWN_GATE, 4)


def test_a_register_far_wider_than_the_device_is_reported_without_listing_every_qubit() -> None:
    program = "OPENQASM 2.0;\nqreg q[99999999999];\nx q;\nx q[99999999998];\n"
    violations = check(program, "qasm2", topologies.line(4))
    assert [(v.code, v.line) for v in violations] == [(Code.QUBIT_OUT_OF_RANGE, line) for line in (2, 3, 4)]
    assert "99999999999 qubits" in violations[0].message
    assert violations[0].operands == tuple(range(4, 20)) and violations[2].operands == (99999999998,)


def test_a_number_too_long_to_be_an_index_is_a_parse_error_not_a_crash() -> None:
    [v] = check("OPENQASM 3.0;\nx $" + "9" * 10_000 + ";\n", "qasm3", topologies.line(4))
    assert (v.code, v.line) == (Code.PARSE_ERROR, 2) and "too large" in v.message
    assert check("OPENQASM 3.0;\nx $" + "0" * 10_000 + "1;\n", "qasm3", topologies.line(4)) == []


# --- linear time on any input ------------------------------------------------------------------

MiB = 1 << 20
SECONDS = 3.0
"""A generous bound: every shape below takes well under a second; a quadratic pass takes minutes."""


def _fill(unit: str, size: int = MiB) -> str:
    return unit * (size // len(unit))


H2 = "OPENQASM 2.0;\nqreg q[4];\ncreg c[4];\n"
H3 = "OPENQASM 3.0;\nbit c;\n"

PATHOLOGICAL = {
    "no-semicolon-at-all": ("qasm3", H3 + _fill("abc def "), "missing ';'"),
    "comment-openers": ("qasm3", H3 + _fill("/*"), "missing ';'"),
    "unclosed-comment-openers": ("qasm3", H3 + _fill("/* "), "never closed"),
    "one-identifier": ("qasm3", H3 + _fill("a") + ";", "not a native gate"),
    "identifier-into-operand": ("qasm2", H2 + _fill("a") + "q[0];", "cannot read qubit operand"),
    "open-parentheses": ("qasm3", H3 + _fill("("), "missing ';'"),
    "open-parentheses-in-a-statement": ("qasm3", H3 + "rz" + _fill("(") + " $0;", "unbalanced parentheses"),
    "open-braces": ("qasm3", H3 + _fill("{"), "not supported"),
    "nested-if-blocks": ("qasm3", H3 + _fill("if (c) { "), "never closed"),
    "if-after-if": ("qasm3", H3 + _fill("if (c) ") + "x $0;", "cannot read qubit operand"),
    "if-with-open-parentheses": ("qasm3", H3 + "if " + _fill("(") + "{", "malformed 'if' header"),
    "while-with-open-parentheses": ("qasm3", H3 + "while " + _fill("(") + "{", "does not execute while_loop"),
    "nested-for-loops": ("qasm3", H3 + _fill("for uint i in [0:999999] { ") + "x $0;", "never closed"),
    "for-loop-bounds-too-long": ("qasm3", H3 + "for uint i in [0:" + _fill("9") + "] { x $0; }", "too large"),
    "case-labels": ("qasm3", H3 + "switch (c) { case " + _fill("1, ") + "1 { x $0; } }", "case 1 appears twice"),
    "switch-headers": ("qasm3", H3 + _fill("switch (c) { "), "only 'case' and 'default'"),
    "whitespace-after-a-gate": ("qasm3", H3 + "x" + _fill(" ") + ";", "needs 1 qubit operand"),
    "whitespace-in-a-declaration": ("qasm3", H3 + "qubit" + _fill(" ") + "$;", "malformed declaration"),
    "whitespace-before-an-assignment": ("qasm3", H3 + "c" + _fill(" ") + "x;", "not a declared quantum register"),
    "whitespace-inside-an-operand": ("qasm2", H2 + "x q" + _fill(" ") + "z;", "cannot read qubit operand"),
    "newlines": ("qasm3", H3 + _fill("\n") + "h $0;", "not a native gate"),
    "commas": ("qasm3", H3 + "x " + _fill(",") + ";", "cannot read qubit operand"),
    "at-signs": ("qasm3", H3 + _fill("@") + ";", "cannot read statement"),
    "dollar-signs": ("qasm3", H3 + _fill("$") + ";", "cannot read statement"),
    "digits": ("qasm3", H3 + "x $" + _fill("9") + ";", "too large"),
    "divisions": ("qasm3", H3 + _fill("/ "), "missing ';'"),
    "unclosed-quotes": ("qasm3", H3 + _fill('"\n'), "missing ';'"),
    "one-operand-too-many-a-million-times": ("qasm2", H2 + "x " + _fill("q[1],") + "q[1];", "acts on 1 qubit"),
}


@pytest.mark.parametrize(("dialect", "source", "fragment"), PATHOLOGICAL.values(), ids=list(PATHOLOGICAL))
def test_a_mebibyte_of_pathological_input_is_refused_in_well_under_a_second(
    fez: Snapshot, dialect: str, source: str, fragment: str
) -> None:
    started = time.perf_counter()
    violations = check(source, dialect, fez)
    elapsed = time.perf_counter() - started
    assert violations and fragment in violations[0].message, violations[:1]
    assert all(len(v.message) < 300 for v in violations)
    assert elapsed < SECONDS, f"{elapsed:.1f} s for {len(source)} bytes"


def _native_program(snapshot: Snapshot, size: int) -> str:
    """Native gates on every AVAILABLE coupling between ONLINE qubits, repeated to `size` bytes."""
    pairs = [(a, b) for (a, b), e in snapshot.couplings().items() if e.available and a < b]
    pairs = [(a, b) for a, b in pairs if snapshot.qubit(a).online and snapshot.qubit(b).online]
    rounds = "".join(f"sx ${a};\nrz(pi/3) ${b};\ncz ${a}, ${b};\nx ${b};\nbarrier ${a}, ${b};\n" for a, b in pairs)
    body = rounds * (size // len(rounds) + 1)
    return "OPENQASM 3.0;\nbit c;\n" + body[: body.rfind("\n", 0, size) + 1] + f"c = measure ${pairs[0][0]};\n"


UNUSUAL = {
    "a-statement-of-a-million-operands": ("qasm3", "OPENQASM 3.0;\nbarrier " + _fill("$1, ") + "$1;\n"),
    "an-operand-a-mebibyte-wide": ("qasm2", "OPENQASM 2.0;\nqreg q[2];\nx q" + _fill(" ") + "[1];\n"),
    "a-declaration-a-mebibyte-wide": ("qasm3", "OPENQASM 3.0;\nqubit" + _fill(" ") + "q;\nx q;\n"),
    "a-measurement-a-mebibyte-wide": ("qasm3", "OPENQASM 3.0;\nbit c;\nc" + _fill(" ") + "= measure $0;\n"),
    "only-comments": ("qasm3", "OPENQASM 3.0;\n" + _fill("// x\n/* y */")),
    "empty-blocks": ("qasm3", "OPENQASM 3.0;\nbit c;\n" + _fill("if (c) { }\n")),
}


@pytest.mark.parametrize(("dialect", "source"), UNUSUAL.values(), ids=list(UNUSUAL))
def test_a_mebibyte_of_valid_but_unusual_input_is_admitted_in_well_under_a_second(
    fez: Snapshot, dialect: str, source: str
) -> None:
    started = time.perf_counter()
    assert check(source, dialect, fez) == []
    assert time.perf_counter() - started < SECONDS


def test_a_mebibyte_native_program_is_admitted_in_well_under_a_second(fez: Snapshot) -> None:
    program = _native_program(fez, MiB)
    started = time.perf_counter()
    assert check(program, "qasm3", fez) == []
    assert time.perf_counter() - started < SECONDS
    broken = program.replace("sx $", "h $", 1)
    [v] = check(broken, "qasm3", fez)
    assert (v.code, v.line) == (Code.UNKNOWN_GATE, 3)


def test_disallowed_includes_finds_every_foreign_include_whatever_else_is_wrong() -> None:
    noise = "h q[0];\n" * 150  # far more than MAX_VIOLATIONS non-native gates before the include
    source = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\n{noise}include "/etc/passwd";\n// include "x";\n'
    found = admissibility.disallowed_includes(source, "qasm2")
    assert [(v.code, v.line) for v in found] == [(ViolationCode.INCLUDE_NOT_ALLOWED, 154)]
    assert "/etc/passwd" in found[0].message
    assert admissibility.disallowed_includes('OPENQASM 3.0;\ninclude "stdgates.inc";\n', "qasm3") == []
    assert [v.code for v in admissibility.disallowed_includes('include "qelib1.inc";', "qasm3")] == [
        ViolationCode.INCLUDE_NOT_ALLOWED
    ]
