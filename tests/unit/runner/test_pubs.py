"""The runner's PUB path in pieces: the compaction an estimator's circuit gets and the noise built for it,
bounds checked before simulating, and the PUB forms the wire allows (qasm2, unused inputs, no rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from device_registry import Snapshot
from runner import circuit, pipeline, pubs, simulate
from runner.errors import InvalidPayload, SimulationFailed
from runner.noise import build_noise_model
from runner.pipeline import Caches
from runner.rundir import RunInputs
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import NoiseModelName, NoiseOptions, ResultDocument, TaskDocument

MEASURED_X = "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n"


def _inputs(snapshot: Snapshot, pubs_: dict[str, Any], **fields: Any) -> RunInputs:
    task = TaskDocument.model_validate(
        {
            "task_id": "t",
            "pubs": pubs_,
            "dialect": fields.pop("dialect", "qasm3"),
            "shots": fields.pop("shots", 0),
            "seed": 7,
            "snapshot_sha256": snapshot.sha256(),
            **fields,
        }
    )
    return RunInputs(task=task, snapshot=snapshot)


def _run(snapshot: Snapshot, pubs_: dict[str, Any], **fields: Any) -> ResultDocument:
    return pipeline.execute(_inputs(snapshot, pubs_, **fields), Caches())


def test_compact_keeps_the_operations_on_the_qubits_they_act_on() -> None:
    qc = QuantumCircuit(103, 2)
    qc.h(100)
    qc.barrier()
    qc.cx(100, 102)
    qc.measure([100, 102], [0, 1])
    compacted, layout = circuit.compact(qc, frozenset({100, 102, 7}))
    assert layout == (7, 100, 102)
    assert compacted.num_qubits == 3 and compacted.num_clbits == 2
    assert [inst.operation.name for inst in compacted.data] == ["h", "barrier", "cx", "measure", "measure"]
    assert [compacted.find_bit(q).index for q in compacted.data[1].qubits] == [0, 1, 2]  # the barrier: kept ones
    bell = Statevector(compacted.remove_final_measurements(inplace=False))
    assert bell.probabilities_dict() == pytest.approx({"000": 0.5, "110": 0.5})


def test_noise_for_a_compacted_circuit_is_the_same_channels_on_its_qubits(fez: Snapshot) -> None:
    qubits = frozenset({3, 4, 9})
    physical = build_noise_model(fez, qubits, NoiseModelName.RELAXATION, NoiseOptions())
    compacted = build_noise_model(fez, qubits, NoiseModelName.RELAXATION, NoiseOptions(), (3, 4, 9))
    assert physical.model is not None and compacted.model is not None
    assert compacted.channels == physical.channels
    relabel = {3: 0, 4: 1, 9: 2}
    for gate, errors in physical.model._local_quantum_errors.items():
        moved = compacted.model._local_quantum_errors[gate]
        assert set(moved) == {tuple(relabel[q] for q in on) for on in errors}
        for on, error in errors.items():
            assert moved[tuple(relabel[q] for q in on)] == error
    assert set(compacted.model._local_readout_errors) == {(0,), (1,), (2,)}


def test_an_estimator_pub_in_openqasm_2_without_parameters(fez_ideal: Snapshot) -> None:
    source = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nx q[1];\n'
    observables = [[{"paulis": "Z", "qubits": [1], "coeff": 1.0}], [{"paulis": "Z", "qubits": [0], "coeff": 1.0}]]
    result = _run(
        fez_ideal,
        {
            "kind": "estimator",
            "pubs": [{"circuit": source, "observables": observables, "observables_shape": [2, 1], "shape": [3]}],
        },
        dialect="qasm2",
    )
    assert result.pubs is not None and result.pubs.kind == "estimator"
    only = result.pubs.pubs[0]
    assert only.shape == [2, 3]  # observables [2, 1] broadcast against three bindings of no parameter
    assert only.evs == pytest.approx([-1.0] * 3 + [1.0] * 3)


def test_an_input_the_circuit_never_uses_takes_its_column(fez_ideal: Snapshot) -> None:
    source = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] unused;\ninput float[64] phi;\n'
        "bit[1] c;\nrx(phi) $0;\nc[0] = measure $0;\n"
    )
    result = _run(
        fez_ideal,
        {
            "kind": "sampler",
            "pubs": [{"circuit": source, "parameter_values": [[0.0, np.pi], [np.pi, 0.0]], "shots": 20}],
        },
    )
    assert result.pubs is not None and result.pubs.kind == "sampler"
    assert result.pubs.pubs[0].counts == [{"1": 20}, {"0": 20}]


def test_declared_inputs_without_rows_are_an_invalid_task(fez_ideal: Snapshot) -> None:
    source = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] phi;\nbit[1] c;\nrx(phi) $0;\nc[0] = measure $0;\n'
    )
    with pytest.raises(InvalidPayload) as refused:
        _run(
            fez_ideal,
            {"kind": "sampler", "pubs": [{"circuit": MEASURED_X, "shots": 5}, {"circuit": source, "shots": 5}]},
        )
    assert refused.value.code is ErrorCode.INVALID_TASK
    assert refused.value.message.startswith("pubs[1]: parameter_values gives no values")


def test_a_sampler_pub_that_measures_nothing_is_refused(fez_ideal: Snapshot) -> None:
    with pytest.raises(InvalidPayload) as refused:
        _run(fez_ideal, {"kind": "sampler", "pubs": [{"circuit": "OPENQASM 3.0;\nx $0;\n", "shots": 5}]})
    assert refused.value.code is ErrorCode.NO_MEASUREMENTS and refused.value.message.startswith("pubs[0]: ")


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run was simulated")

    monkeypatch.setattr(pubs, "sample", refuse)
    monkeypatch.setattr(pubs, "estimate", refuse)


@pytest.mark.usefixtures("no_simulation")
def test_a_pub_task_over_the_sites_memory_fails_before_simulating(fez: Snapshot) -> None:
    sampler = {"kind": "sampler", "pubs": [{"circuit": MEASURED_X, "shots": 5}]}
    with pytest.raises(SimulationFailed) as refused:
        _run(fez, sampler, limits={"memory_bytes": 1 << 20})
    assert refused.value.code is ErrorCode.OUT_OF_MEMORY
    assert refused.value.detail["limit"] == 1 << 20


@pytest.mark.usefixtures("no_simulation")
def test_a_pub_task_asking_for_a_missing_gpu_fails_before_simulating(fez: Snapshot) -> None:
    if simulate.gpu_available():
        pytest.skip("this node has a GPU")
    sampler = {"kind": "sampler", "pubs": [{"circuit": MEASURED_X, "shots": 5}]}
    with pytest.raises(SimulationFailed) as refused:
        _run(fez, sampler, options={"device": "GPU"})
    assert refused.value.code is ErrorCode.GPU_UNAVAILABLE


def test_precision_and_memory_options_reach_aer(fez: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[simulate.Plan] = []
    real = pubs.sample

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(pubs, "sample", spy)
    sampler = {"kind": "sampler", "pubs": [{"circuit": MEASURED_X, "shots": 5}]}
    result = _run(fez, sampler, options={"precision": "single"}, limits={"memory_bytes": 1 << 30})
    assert seen[0].options["precision"] == "single" and seen[0].options["max_memory_mb"] > 0
    assert result.provenance.simulator_options == seen[0].options


def test_a_sampler_pub_with_a_bit_outside_any_register_is_refused(fez_ideal: Snapshot) -> None:
    """Aer's SamplerV2 returns registers only: the loose bit's outcome would be dropped without a word."""
    source = "OPENQASM 3.0;\nbit b;\nbit[1] c;\nx $0;\nb = measure $0;\nc[0] = measure $1;\n"
    with pytest.raises(InvalidPayload) as refused:
        _run(fez_ideal, {"kind": "sampler", "pubs": [{"circuit": source, "shots": 5}]})
    assert refused.value.code is ErrorCode.INVALID_TASK and "outside any register" in refused.value.message
