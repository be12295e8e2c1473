"""Logical circuits as native OpenQASM 3 on physical qubits: admissible, equivalent, refused off the couplers."""

from __future__ import annotations

import numpy as np
import pytest

from device_registry import Snapshot, admissibility
from flows.examples import h2, maxcut
from flows.examples.native import LayoutError, NativeProgram, best_coupled_pair


def test_the_program_is_admissible_on_fez_and_touches_only_the_chosen_qubits(fez: Snapshot) -> None:
    program = NativeProgram(h2.circuit("X"), (96, 103), fez)
    source = program.qasm([-0.22])
    assert admissibility.check(source, "qasm3", fez) == []
    touched = {
        int(word[1:].rstrip(",;")) for line in source.splitlines() for word in line.split() if word.startswith("$")
    }
    assert touched == {96, 103}
    assert "c[0] = measure $96;" in source and "c[1] = measure $103;" in source


def test_the_compiled_circuit_is_the_logical_one_up_to_a_global_phase(fez: Snapshot) -> None:
    from qiskit.quantum_info import Operator

    graph = maxcut.graph_from_snapshot(fez, 4)
    logical = maxcut.circuit(graph, 2)
    program = NativeProgram(logical, graph.nodes, fez)
    values = [0.3, -0.7, 0.45, 1.1]
    bind = maxcut.parameter_values
    want = Operator(
        logical.remove_final_measurements(inplace=False).assign_parameters(bind(logical, values[:2], values[2:]))
    )
    got = Operator(
        program.compiled.remove_final_measurements(inplace=False).assign_parameters(
            bind(program.compiled, values[:2], values[2:])
        )
    )
    assert want.equiv(got)
    assert np.isclose(abs(np.trace(want.data.conj().T @ got.data)), 2**logical.num_qubits)


def test_a_two_qubit_gate_off_the_couplers_is_refused_before_anything_is_sent(fez: Snapshot) -> None:
    with pytest.raises(LayoutError, match="no such coupling"):
        NativeProgram(h2.circuit("Z"), (0, 2), fez)


def test_a_layout_of_the_wrong_size_or_repeated_qubits_is_refused(fez: Snapshot) -> None:
    with pytest.raises(LayoutError, match="distinct"):
        NativeProgram(h2.circuit("Z"), (0, 0), fez)
    with pytest.raises(LayoutError, match="distinct"):
        NativeProgram(h2.circuit("Z"), (0, 1, 2), fez)
    with pytest.raises(LayoutError, match="not online"):
        NativeProgram(h2.circuit("Z"), (0, 100_000), fez)


def test_an_unbound_parameter_is_an_error_not_a_symbol_in_the_source(fez: Snapshot) -> None:
    with pytest.raises(ValueError, match="unbound"):
        NativeProgram(h2.circuit("Z"), (96, 103), fez).qasm()


def test_the_best_pair_is_an_available_coupler_no_worse_than_any_other(fez: Snapshot, fez_ideal: Snapshot) -> None:
    a, b = best_coupled_pair(fez)
    edge = fez.couplings()[(a, b)]
    assert edge.available

    def cost(e: object) -> float:
        s, t = fez.qubit(e.source), fez.qubit(e.target)  # type: ignore[attr-defined]
        return (e.error or 0) + sum((q.error_1q or 0) + (q.readout_error or 0) for q in (s, t))  # type: ignore[attr-defined]

    assert cost(edge) == min(cost(e) for e in fez.edges if e.available)
    assert best_coupled_pair(fez_ideal) == (0, 1)  # no calibration: the first coupler


def test_the_template_bound_in_input_order_is_the_program_bound_to_the_same_values(fez: Snapshot) -> None:
    """A PUB's parameter_values columns follow the template's `input` declarations: binding them in that
    order gives the very circuit `qasm(values)` writes (four parameters, so a wrong order shows)."""
    import re

    from qiskit import QuantumCircuit, qasm3

    graph = maxcut.graph_from_snapshot(fez, 4)
    program = NativeProgram(maxcut.circuit(graph, 2), graph.nodes, fez)
    values = [0.3, -0.7, 0.45, 1.1]
    template = program.template()
    declared = re.findall(r"^input float\[64\] (\w+);$", template, flags=re.MULTILINE)
    assert declared == ["p0", "p1", "p2", "p3"]

    def load(source: str) -> QuantumCircuit:  # the native gates are Qiskit's standard ones
        return qasm3.loads(source.replace("OPENQASM 3.0;", 'OPENQASM 3.0;\ninclude "stdgates.inc";', 1))

    loaded = load(template)
    by_name = {p.name: p for p in loaded.parameters}
    bound = loaded.assign_parameters({by_name[n]: v for n, v in zip(declared, values, strict=True)})
    want = load(program.qasm(values))
    got = [(i.operation.name, [bound.find_bit(q).index for q in i.qubits], i.operation.params) for i in bound.data]
    expected = [(i.operation.name, [want.find_bit(q).index for q in i.qubits], i.operation.params) for i in want.data]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert np.allclose([float(p) for g in got for p in g[2]], [float(p) for e in expected for p in e[2]])
