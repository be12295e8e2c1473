"""The one gate table: the same qubit and parameter counts as Qiskit and as the include files themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import qiskit
from qiskit.circuit.library import get_standard_gate_name_mapping

from device_registry import gates
from device_registry.gates import GATES, Library

QISKIT = get_standard_gate_name_mapping()
NOT_GATES = {"measure", "reset", "delay", "global_phase"}
"""Qiskit standard instructions that are no unitary on qubits: directives, and the global phase."""

_GATE_LINE = re.compile(r"^\s*gate\s+(\w+)\s*(?:\(([^)]*)\))?\s*([^{]*)", re.MULTILINE)


def _declared_in(include: str) -> dict[str, tuple[int, int]]:
    """name -> (qubits, parameters) for every `gate` in the copy of `include` that Qiskit ships."""
    text = (Path(qiskit.__file__).parent / "qasm" / "libs" / include).read_text(encoding="utf-8")
    return {
        name: (len(qubits.split(",")), len(params.split(",")) if params and params.strip() else 0)
        for name, params, qubits in _GATE_LINE.findall(text)
    }


@pytest.mark.parametrize("name", sorted(set(QISKIT) & set(GATES)))
def test_every_gate_shared_with_qiskit_has_qiskits_qubit_and_parameter_counts(name: str) -> None:
    ours, theirs = GATES[name], QISKIT[name]
    assert (ours.qubits, ours.params) == (theirs.num_qubits, len(theirs.params))


def test_every_qiskit_standard_gate_is_in_the_table_and_marked_executable() -> None:
    executable = {name for name, gate in GATES.items() if Library.QISKIT in gate.libraries}
    assert executable == set(QISKIT) - NOT_GATES


@pytest.mark.parametrize(("include", "library"), [("qelib1.inc", Library.QELIB1), ("stdgates.inc", Library.STDGATES)])
def test_the_table_lists_exactly_the_gates_of_each_include_with_their_shapes(include: str, library: Library) -> None:
    declared = _declared_in(include)
    listed = {name: (g.qubits, g.params) for name, g in GATES.items() if library in g.libraries}
    assert listed == declared


def test_arity_and_params_answer_for_standard_gates_and_none_for_anything_else() -> None:
    assert [gates.arity(n) for n in ("rz", "cz", "ecr", "ccx", "c4x", "U", "CX")] == [1, 2, 2, 3, 5, 1, 2]
    assert [gates.params(n) for n in ("rz", "cz", "u3", "cu", "xx_plus_yy")] == [1, 0, 3, 4, 2]
    for unknown in ("frobnicate", "Rz", "measure", "barrier", "global_phase", ""):
        assert gates.arity(unknown) is None and gates.params(unknown) is None


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        GATES["frobnicate"] = GATES["x"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        GATES["x"].qubits = 2  # type: ignore[misc]
    assert gates.arity("x") == 1
