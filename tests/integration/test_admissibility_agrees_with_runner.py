"""The lexical admission check and the runner's compiled check agree on every native program.

The control plane admits with `device_registry.admissibility.check` (no compiler, microseconds);
the runner re-checks the parsed circuit with Qiskit. A program the first admits but the second
rejects would fail after queueing; one the first rejects but the second would run is refused for
nothing. Random native programs over faulty devices of several families must get the same verdict.
"""

from __future__ import annotations

import random

import pytest
from qiskit.circuit.library import get_standard_gate_name_mapping

from device_registry import Snapshot, parse_snapshot, topologies
from device_registry.admissibility import check
from device_registry.qiskit_target import target_from_snapshot
from runner.circuit import fit_to_device, parse
from runner.errors import InvalidPayload

STANDARD = get_standard_gate_name_mapping()


def _faulty(snapshot: Snapshot, offline: tuple[int, ...], unavailable: tuple[int, ...]) -> Snapshot:
    data = snapshot.to_json_dict()
    data["device_id"] = f"{snapshot.device_id}-faulty"
    for q in offline:
        data["qubits"][q]["status"] = "OFFLINE"
    for i in unavailable:
        data["edges"][i]["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


DEVICES = {
    "line": lambda: _faulty(topologies.line(6), offline=(4,), unavailable=(1,)),
    "heavy-hex": lambda: _faulty(topologies.heavy_hex(2, 8), offline=(3,), unavailable=(0, 9)),
    "grid": lambda: _faulty(topologies.grid(3, 3), offline=(), unavailable=(2, 5)),
    "directed-ecr": lambda: topologies.from_edges(
        5, [(0, 1), (2, 1), (2, 3), (4, 3)], directed=True, two_qubit_gate="ecr", device_id="directed-5"
    ),
}


def _program(rng: random.Random, snapshot: Snapshot, dialect: str) -> str:
    n = snapshot.num_qubits
    arity = {name: STANDARD[name].num_qubits for name in snapshot.native_gates}
    two_qubit = sorted(name for name, k in arity.items() if k == 2)
    one_qubit = sorted(name for name, k in arity.items() if k == 1)
    ref = (lambda q: f"q[{q}]") if dialect == "qasm2" else (lambda q: f"${q}")
    lines = ["OPENQASM 2.0;", f"qreg q[{n}];", f"creg c[{n}];"] if dialect == "qasm2" else ["OPENQASM 3.0;"]
    if dialect == "qasm3":
        lines.append(f"bit[{n}] c;")
    for _ in range(rng.randint(1, 5)):
        kind = rng.random()
        if kind < 0.4:
            gate = rng.choice(one_qubit)
            params = f"({rng.uniform(-3, 3):.4f})" if gate == "rz" else ""
            lines.append(f"{gate}{params} {ref(rng.randrange(n))};")
        elif kind < 0.85:
            a, b = rng.sample(range(n), 2)
            if rng.random() < 0.6 and snapshot.edges:  # bias towards listed couplings, either direction
                e = rng.choice(snapshot.edges)
                a, b = (e.source, e.target) if rng.random() < 0.5 else (e.target, e.source)
            lines.append(f"{rng.choice(two_qubit)} {ref(a)}, {ref(b)};")
        elif kind < 0.95:
            q = rng.randrange(n)
            lines.append(f"measure {ref(q)} -> c[{q}];")
        else:
            lines.append(f"barrier {', '.join(ref(q) for q in range(n))};")
    return "\n".join(lines) + "\n"


def _runner_accepts(source: str, dialect: str, snapshot: Snapshot) -> bool:
    try:
        fit_to_device(parse(source, dialect, snapshot), snapshot, target_from_snapshot(snapshot), seed=1)
    except InvalidPayload as exc:
        assert exc.code == "NOT_ADMISSIBLE", exc
        return False
    return True


@pytest.mark.parametrize("dialect", ["qasm2", "qasm3"])
@pytest.mark.parametrize("family", sorted(DEVICES))
def test_lexical_and_compiled_checks_agree_on_random_native_programs(family: str, dialect: str) -> None:
    snapshot = DEVICES[family]()
    rng = random.Random(f"{family}-{dialect}")
    verdicts = {True: 0, False: 0}
    for _ in range(60):
        source = _program(rng, snapshot, dialect)
        lexical = not check(source, dialect, snapshot)
        assert lexical == _runner_accepts(source, dialect, snapshot), source
        verdicts[lexical] += 1
    assert verdicts[True] >= 5 and verdicts[False] >= 5, f"the sample exercised one verdict only: {verdicts}"


def _runner_reads(source: str, device: Snapshot) -> bool:
    """Whether the runner's importer reads `source`; a refusal must be a PARSE_ERROR."""
    try:
        parse(source, "qasm3", device)
    except InvalidPayload as exc:
        assert exc.code == "PARSE_ERROR", exc
        return False
    return True


CONDITIONS = [
    "c[0]", "!c[0]", "(!c[0])", "!(c[0])", "c[0] == true", "true == c[0]", "c[0] == false", "b", "!b", "b == true",
    "c == 2", "2 == c", "c == 7", "((c[1]))",
    "c[0] == 1", "c[0] == 0", "b == 1", "c", "!c", "c[0] && c[1]", "c == 2 || c == 1", "~c == 1", "c != 2",
    "c > 1", "c == true",
]  # fmt: skip
"""(A slice, `c[0:1] == 3`, is read by the importer but refused at submit on purpose: the importer adds a
register for it, which would show in the counts; test_admissibility_control_flow.py.)"""


@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("block", ["if ({}) {{ x $1; }}", "if ({}) x $1;", "while ({}) {{ x $1; c[0] = measure $0; }}"])
def test_a_condition_is_admitted_exactly_when_the_runner_reads_it(condition: str, block: str) -> None:
    """Refused at submit or run: never admitted, queued and then refused by the runner's importer."""
    device = topologies.line(4)
    source = f"OPENQASM 3.0;\nbit[2] c;\nbit b;\nc[0] = measure $0;\n{block.format(condition)}\nc[1] = measure $1;\n"
    assert (check(source, "qasm3", device) == []) == _runner_reads(source, device)


@pytest.mark.parametrize("target", ["c", "c[1]", "b", "(c)", "c + 1", "c[0:1]", "!c[0]"])
@pytest.mark.parametrize("cases", ["case 0 { x $1; }", "case 1, 3 { x $1; } default { sx $1; }", "case 4 { x $1; }"])
def test_a_switch_is_admitted_exactly_when_the_runner_reads_it(target: str, cases: str) -> None:
    device = topologies.line(4)
    source = (
        f"OPENQASM 3.0;\nbit[2] c;\nbit b;\nc[0] = measure $0;\nswitch ({target}) {{ {cases} }}\nc[1] = measure $1;\n"
    )
    assert (check(source, "qasm3", device) == []) == _runner_reads(source, device)


@pytest.mark.parametrize(
    "measurement",
    [
        "c = measure q;", "c[0] = measure q[1];", "measure q -> c;", "measure q[0] -> c[1];", "b = measure q[0];",
        "c = measure r;", "measure r -> c;", "c[0] = measure r;", "b = measure q;", "c = measure q[0];",
    ],
)  # fmt: skip
def test_a_measurement_is_admitted_exactly_when_the_runner_reads_it(measurement: str) -> None:
    """As many bits as qubits, or refused at submit. (One qubit into a whole register, `c = measure q[0]`,
    the OpenQASM 3 importer measures into every bit; refused at submit all the same: a mismatch is a
    mistake more often than a wish, and OpenQASM 2 refuses it.)"""
    device = topologies.line(6)
    source = f"OPENQASM 3.0;\nqubit[2] q;\nqubit[3] r;\nbit[2] c;\nbit b;\n{measurement}\n"
    read = _runner_reads(source, device) and measurement != "c = measure q[0];"
    assert (check(source, "qasm3", device) == []) == read
