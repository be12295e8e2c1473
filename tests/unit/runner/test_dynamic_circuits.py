"""Dynamic circuits end to end through the pipeline: OpenQASM 3 `if/else`, `for`, `while`, `switch`,
`break` and `continue` run on a device that lists the construct, with the gates inside a block held to
the device as top-level gates are, and a construct the device does not list refused by name.

On the ideal device the outcomes are exact; proportions are checked to five binomial standard deviations.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from qiskit import QuantumCircuit

from device_registry import Snapshot
from device_registry.snapshot import QubitStatus
from runner import pipeline
from runner.circuit import check_admissible, parse
from runner.errors import InvalidPayload
from runner.pipeline import Caches
from runner.rundir import RunInputs
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import ResultDocument, TaskDocument

SHOTS = 4_000
HEAD = "OPENQASM 3.0;\n"
STDGATES = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


def _run(source: str, snapshot: Snapshot, shots: int = SHOTS, **options: Any) -> ResultDocument:
    task = TaskDocument.model_validate(
        {
            "task_id": "t",
            "circuit": source,
            "dialect": "qasm3",
            "shots": shots,
            "seed": 7,
            "snapshot_sha256": snapshot.sha256(),
            "options": options,
        }
    )
    return pipeline.execute(RunInputs(task=task, snapshot=snapshot), Caches())


def _refusal(source: str, snapshot: Snapshot) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as refused:
        _run(source, snapshot)
    return refused.value


def _close(count: int, expected: float, shots: int = SHOTS) -> bool:
    return abs(count / shots - expected) <= 5 * math.sqrt(expected * (1 - expected) / shots)


@pytest.fixture(scope="module")
def every_construct(fez_ideal: Snapshot) -> Snapshot:
    return fez_ideal.model_copy(update={"control_flow": ["if_else", "for_loop", "while_loop", "switch_case"]})


def test_a_measurement_steers_an_if_to_the_exact_ideal_distribution(fez_ideal: Snapshot) -> None:
    source = HEAD + "bit[2] c;\nsx $0;\nc[0] = measure $0;\nif (c[0]) { x $1; }\nc[1] = measure $1;\n"
    result = _run(source, fez_ideal)
    assert set(result.counts) == {"00", "11"}, result.counts
    assert _close(result.counts["11"], 0.5)
    assert result.provenance.transpile == "native"


def test_teleportation_with_corrections_in_if_blocks_moves_the_state(fez_ideal: Snapshot) -> None:
    # h, cx and z are not native: the blocks are basis-translated on the same qubits.
    source = STDGATES + (
        "bit[3] c;\nrx(1.1) $0;\nh $1;\ncx $1, $2;\ncx $0, $1;\nh $0;\nc[0] = measure $0;\nc[1] = measure $1;\n"
        "if (c[1]) { x $2; }\nif (c[0]) { z $2; }\nc[2] = measure $2;\n"
    )
    result = _run(source, fez_ideal, shots=20_000)
    teleported = sum(n for key, n in result.counts.items() if key[0] == "1")
    assert _close(teleported, math.sin(1.1 / 2) ** 2, 20_000), result.counts
    assert result.provenance.transpile == "basis-translation"


@pytest.mark.parametrize(("last", "outcome"), [(1, "1"), (3, "0")])
def test_a_for_loop_repeats_its_body_once_per_index(fez_ideal: Snapshot, last: int, outcome: str) -> None:
    source = HEAD + f"bit[1] c;\nfor uint i in [0:{last}] {{ sx $0; }}\nc[0] = measure $0;\n"  # 2 or 4 sx
    assert _run(source, fez_ideal).counts == {outcome: SHOTS}


def test_three_square_roots_of_x_in_a_loop_give_even_odds(fez_ideal: Snapshot) -> None:
    result = _run(HEAD + "bit[1] c;\nfor uint i in [0:2] { sx $0; }\nc[0] = measure $0;\n", fez_ideal)
    assert _close(result.counts["1"], 0.5), result.counts


def test_repeat_until_success_in_a_while_loop_always_ends_in_success(every_construct: Snapshot) -> None:
    # The loop is the circuit's last operation: Aer needs the runner's end anchor for it.
    source = HEAD + "bit[1] c;\nwhile (!c[0]) { sx $0; c[0] = measure $0; }\n"
    assert _run(source, every_construct).counts == {"1": SHOTS}


def test_a_while_loop_with_non_native_gates_is_translated_and_runs(every_construct: Snapshot) -> None:
    source = STDGATES + "bit[1] c;\nwhile (!c[0]) { h $0; c[0] = measure $0; }\n"
    result = _run(source, every_construct)
    assert result.counts == {"1": SHOTS}
    assert result.provenance.transpile == "basis-translation"


def test_break_leaves_a_for_loop_at_the_first_success(fez_ideal: Snapshot) -> None:
    source = HEAD + "bit[1] c;\nfor uint i in [0:9] { sx $0; c[0] = measure $0; if (c[0]) { break; } }\n"
    counts = _run(source, fez_ideal).counts
    assert counts.get("0", 0) <= 15  # ten failures in a row: 1 shot in 1024
    assert _close(counts["1"], 1 - 2**-10)


def test_break_in_a_loop_with_non_native_gates_is_translated_and_runs(fez_ideal: Snapshot) -> None:
    # The target declares no break_loop; the runner adds it to a copy for the translation.
    source = STDGATES + "bit[1] c;\nfor uint i in [0:9] { h $0; c[0] = measure $0; if (c[0]) { break; } }\n"
    result = _run(source, fez_ideal)
    assert result.provenance.transpile == "basis-translation"
    assert result.counts.get("0", 0) <= 15


def test_continue_skips_the_rest_of_the_loop_body(fez_ideal: Snapshot) -> None:
    # Iteration 1 measures 1 and skips x $1; iteration 2 measures 0 and runs it: q1 ends in 1 (without the
    # skip, x $1 would run twice and leave it in 0).
    source = HEAD + (
        "bit[2] c;\nfor uint i in [0:1] { x $0; c[0] = measure $0; if (c[0]) { continue; } x $1; }\n"
        "c[1] = measure $1;\n"
    )
    assert _run(source, fez_ideal).counts == {"10": SHOTS}


@pytest.mark.parametrize(("value", "selected"), [(0, "00"), (1, "01"), (2, "01"), (3, "10")])
def test_a_switch_runs_the_case_of_the_register_value_or_the_default(
    fez_ideal: Snapshot, value: int, selected: str
) -> None:
    prepare = "".join(f"x ${q};\n" for q in range(2) if value >> q & 1)
    source = HEAD + (
        f"bit[2] c;\nbit[2] d;\n{prepare}c[0] = measure $0;\nc[1] = measure $1;\n"
        "switch (c) { case 0 { } case 1, 2 { x $2; } default { x $3; } }\nd[0] = measure $2;\nd[1] = measure $3;\n"
    )
    assert _run(source, fez_ideal).counts == {f"{selected} {value:02b}": SHOTS}


def test_a_switch_on_one_bit_that_ends_the_circuit_runs(fez_ideal: Snapshot) -> None:
    source = HEAD + "bit[2] c;\nsx $0;\nc[0] = measure $0;\nswitch (c[0]) { case 0 { c[1] = measure $0; } }\n"
    result = _run(source, fez_ideal)
    assert set(result.counts) == {"00", "01"}, result.counts
    assert _close(result.counts["01"], 0.5)


@pytest.mark.parametrize("target", ["c[0:1]", "$0"])
def test_a_switch_on_a_slice_or_a_qubit_is_a_parse_error(fez_ideal: Snapshot, target: str) -> None:
    refused = _refusal(HEAD + f"bit[3] c;\nswitch ({target}) {{ case 0 {{ x $0; }} }}\nc[0] = measure $0;\n", fez_ideal)
    assert refused.code is ErrorCode.PARSE_ERROR
    assert "switch needs a single bit or a whole bit register" in refused.message


def test_a_construct_the_device_does_not_list_is_refused_by_name(fez: Snapshot) -> None:
    refused = _refusal(HEAD + "bit[1] c;\nwhile (!c[0]) { sx $0; c[0] = measure $0; }\n", fez)
    assert refused.code is ErrorCode.NOT_ADMISSIBLE
    assert "ibm-fez does not execute `while`" in refused.message
    assert refused.detail["construct"] == "while_loop"


def test_a_device_without_control_flow_refuses_an_if(fez_ideal: Snapshot) -> None:
    static = fez_ideal.model_copy(update={"control_flow": []})
    refused = _refusal(HEAD + "bit[2] c;\nc[0] = measure $0;\nif (c[0]) { x $1; }\nc[1] = measure $1;\n", static)
    assert refused.code is ErrorCode.NOT_ADMISSIBLE
    assert "does not execute `if/else`" in refused.message and "executes: none" in refused.message


def test_a_gate_inside_a_block_on_an_uncoupled_pair_is_refused(fez: Snapshot) -> None:
    refused = _refusal(HEAD + "bit[2] c;\nc[0] = measure $0;\nif (c[0]) { cz $1, $5; }\nc[1] = measure $1;\n", fez)
    assert refused.code is ErrorCode.NOT_ADMISSIBLE
    assert "NO_COUPLING: cz on qubits [1, 5] inside if/else" in refused.message
    assert refused.detail[0]["within"] == "if_else"


def test_a_gate_inside_a_block_on_an_unavailable_coupling_is_refused(fez: Snapshot) -> None:
    source = HEAD + "bit[1] c;\nc[0] = measure $27;\nif (c[0]) { cz $27, $28; }\n"  # 27-28 is UNAVAILABLE
    assert "NO_COUPLING: cz on qubits [27, 28]" in _refusal(source, fez).message


def test_a_gate_inside_a_nested_block_on_an_offline_qubit_is_refused(fez_ideal: Snapshot) -> None:
    qubits = [q.model_copy(update={"status": QubitStatus.OFFLINE}) if q.index == 3 else q for q in fez_ideal.qubits]
    broken = fez_ideal.model_copy(update={"qubits": qubits})
    source = HEAD + "bit[1] c;\nc[0] = measure $0;\nfor uint i in [0:1] { if (c[0]) { sx $3; } }\n"
    refused = _refusal(source, broken)
    assert "QUBIT_OFFLINE: sx on qubits [3] inside if/else" in refused.message


def test_a_non_native_gate_left_inside_a_block_is_refused(fez_ideal: Snapshot) -> None:
    # What translation would remove: check_admissible is the defence when it has not.
    circuit = QuantumCircuit(2, 1)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], True)):
        circuit.h(1)
    with pytest.raises(InvalidPayload, match=r"UNKNOWN_GATE: h on qubits \[1\] inside if/else"):
        check_admissible(circuit, fez_ideal)


def test_block_qubits_are_mapped_to_the_physical_qubits_of_the_construct(fez_ideal: Snapshot) -> None:
    circuit = parse(HEAD + "bit[1] c;\nc[0] = measure $9;\nif (c[0]) { sx $8; }\n", "qasm3", fez_ideal)
    check_admissible(circuit, fez_ideal)  # 8 and 9 are coupled-free single-qubit uses: accepted
    qubits = [q.model_copy(update={"status": QubitStatus.OFFLINE}) if q.index == 8 else q for q in fez_ideal.qubits]
    with pytest.raises(InvalidPayload, match=r"sx on qubits \[8\]"):
        check_admissible(circuit, fez_ideal.model_copy(update={"qubits": qubits}))


def test_a_circuit_that_measures_only_inside_a_block_has_counts(fez_ideal: Snapshot) -> None:
    source = HEAD + "bit[2] c;\nif (!c[0]) { x $0; c[1] = measure $0; }\n"
    assert _run(source, fez_ideal).counts == {"10": SHOTS}


@pytest.mark.parametrize("method", ["statevector", "density_matrix", "matrix_product_state"])
def test_every_method_runs_a_noisy_dynamic_circuit(fez: Snapshot, method: str) -> None:
    source = HEAD + "bit[2] c;\nx $0;\nc[0] = measure $0;\nif (c[0]) { x $1; }\nc[1] = measure $1;\n"
    result = _run(source, fez, shots=2_000, method=method, noise_model="relaxation")
    assert result.provenance.method == method
    assert result.counts.get("11", 0) > 0.9 * 2_000, result.counts


def test_a_circuit_ending_in_control_flow_reports_only_its_own_counts_and_memory(every_construct: Snapshot) -> None:
    # The runner anchors such a circuit's end for Aer with a probability save; none of it may show.
    source = HEAD + "bit[2] c;\nx $1;\nc[1] = measure $1;\nwhile (!c[0]) { sx $0; c[0] = measure $0; }\n"
    result = _run(source, every_construct, shots=50, memory=True)
    assert result.counts == {"11": 50}
    assert result.memory == ["11"] * 50


@pytest.mark.slow
def test_noisy_trajectories_give_the_right_counts_run_after_run(fez: Snapshot) -> None:
    # Aer 0.18.2's shot branching lost one qubit's x in half the shots of about 3 runs in 100 of this
    # circuit (gate and readout noise together); the runner's CPU trajectories run without it.
    source = HEAD + "bit[2] c;\nx $0;\nx $1;\nc[0] = measure $0;\nc[1] = measure $1;\n"
    for _ in range(100):
        result = _run(source, fez, shots=2_000, method="statevector")
        assert result.counts.get("11", 0) > 0.9 * 2_000, result.counts
