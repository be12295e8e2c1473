"""The PUB documents: what a task of Sampler or Estimator PUBs may hold, and what its price adds up to."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from device_registry import Snapshot
from device_registry.admissibility import Checker
from harness.documents import TIMINGS, provenance
from vqpu_protocol import pricing
from vqpu_protocol.api.tasks import SubmitTask
from vqpu_protocol.pubs import (
    MAX_PUB_BINDINGS,
    SAMPLED_SHOT_BYTES,
    EstimatorPub,
    EstimatorPubs,
    PauliTerm,
    SamplerPub,
    SamplerPubs,
    broadcast,
    resolved,
    sampled_shots,
)
from vqpu_protocol.rundir import ResultDocument, RunOptions

BELL = "OPENQASM 3.0;\nbit[2] c;\nsx $0;\ncz $0, $1;\nc[0] = measure $0;\nc[1] = measure $1;\n"
Z0 = {"paulis": "Z", "qubits": [0], "coeff": 1.0}


def _submit(**fields: Any) -> SubmitTask:
    return SubmitTask.model_validate_json(json.dumps({"device": "ibm-fez", "dialect": "qasm3"} | fields))


def test_a_task_holds_a_circuit_or_pubs_never_both_nor_neither() -> None:
    sampler = {"kind": "sampler", "pubs": [{"circuit": BELL}]}
    assert _submit(pubs=sampler, shots=100).pubs is not None
    with pytest.raises(ValidationError, match="not both"):
        _submit(pubs=sampler, circuit=BELL, shots=100)
    with pytest.raises(ValidationError, match="either"):
        _submit(shots=100)
    with pytest.raises(ValidationError, match="needs `shots`"):
        _submit(circuit=BELL)


def test_an_estimator_task_takes_precision_not_shots_nor_memory() -> None:
    estimator = {"kind": "estimator", "pubs": [{"circuit": BELL, "observables": [[Z0]]}]}
    assert _submit(pubs=estimator).shots is None
    with pytest.raises(ValidationError, match="no `shots`"):
        _submit(pubs=estimator, shots=10)
    with pytest.raises(ValidationError, match="an estimator samples none"):
        _submit(pubs=estimator, options={"memory": True})


def test_a_sampler_task_keeps_memory_for_at_most_max_memory_shots_in_all() -> None:
    def pubs(last: int) -> dict[str, Any]:
        return {"kind": "sampler", "pubs": [{"circuit": BELL, "shape": [10]}, {"circuit": BELL, "shots": last}]}

    assert _submit(pubs=pubs(10), shots=9_999, options={"memory": True}).options.memory  # 99,990 + 10 shots
    with pytest.raises(ValidationError, match="the PUBs sample 100001 in all"):
        _submit(pubs=pubs(11), shots=9_999, options={"memory": True})


@pytest.mark.parametrize(
    ("a", "b"), [([3], [1]), ([2, 1], [3]), ([], [4, 2]), ([5], [5]), ([2, 3], [4, 3]), ([0], [1])]
)
def test_shapes_broadcast_as_numpy_broadcasts_them(a: list[int], b: list[int]) -> None:
    try:
        expected: list[int] | None = list(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        expected = None
    assert broadcast(a, b) == expected


def test_rows_must_fill_the_shape_and_be_one_width() -> None:
    assert SamplerPub(circuit=BELL, parameter_values=[[0.1], [0.2]]).bindings_shape == [2]
    assert SamplerPub(circuit=BELL, parameter_values=[[0.0]] * 6, shape=[2, 3]).bindings == 6
    assert SamplerPub(circuit=BELL, shape=[4]).bindings == 4  # a parameterless circuit run four times
    with pytest.raises(ValidationError, match="holds 4 bindings"):
        SamplerPub(circuit=BELL, parameter_values=[[0.0]] * 6, shape=[2, 2])
    with pytest.raises(ValidationError, match="differ in length"):
        SamplerPub(circuit=BELL, parameter_values=[[0.0], [0.0, 1.0]])
    with pytest.raises(ValidationError):
        SamplerPub.model_validate_json(json.dumps({"circuit": BELL, "parameter_values": [[float("nan")]]}))


def test_observables_must_broadcast_against_the_bindings() -> None:
    obs = [[PauliTerm(paulis="Z", qubits=[0], coeff=1.0)]] * 3
    pub = EstimatorPub(circuit=BELL, observables=obs, observables_shape=[3, 1], parameter_values=[[0.0]] * 4)
    assert pub.result_shape == [3, 4]
    with pytest.raises(ValidationError, match="do not broadcast"):
        EstimatorPub(circuit=BELL, observables=obs, parameter_values=[[0.0]] * 4)
    with pytest.raises(ValidationError, match="at most"):
        EstimatorPub(
            circuit=BELL, observables=obs, observables_shape=[3, 1], parameter_values=[[0.0]] * MAX_PUB_BINDINGS
        )


def test_a_pauli_term_names_one_distinct_qubit_per_operator() -> None:
    with pytest.raises(ValidationError, match="on 1 qubit"):
        PauliTerm(paulis="ZZ", qubits=[0], coeff=1.0)
    with pytest.raises(ValidationError, match="twice"):
        PauliTerm(paulis="ZZ", qubits=[3, 3], coeff=1.0)
    with pytest.raises(ValidationError):
        PauliTerm(paulis="ZA", qubits=[0, 1], coeff=1.0)


def test_resolved_pubs_give_every_shots_and_precision() -> None:
    sampler = SamplerPubs(pubs=[SamplerPub(circuit=BELL, shape=[3]), SamplerPub(circuit=BELL, shots=7)])
    done = resolved(sampler, 100)
    assert [p.shots for p in done.pubs] == [100, 7]  # type: ignore[union-attr]
    assert sampled_shots(done, None) == 3 * 100 + 7
    with pytest.raises(ValueError, match="PUB 0 gives no shots"):
        resolved(sampler, None)
    estimator = resolved(
        EstimatorPubs(pubs=[EstimatorPub(circuit=BELL, observables=[[PauliTerm(paulis="Z", qubits=[0], coeff=1)]])]),
        None,
    )
    assert estimator.pubs[0].precision == 0.0  # type: ignore[union-attr]
    assert sampled_shots(estimator, None) == 0


def test_a_pub_result_has_its_outcomes_in_pubs_and_counts_add_up_per_binding(fez: Snapshot) -> None:
    provenance = _provenance()
    good = {
        "kind": "sampler",
        "pubs": [
            {
                "shape": [2],
                "shots": 3,
                "registers": [{"name": "c", "num_bits": 2}],
                "counts": [{"00": 3}, {"11": 1, "01": 2}],
            }
        ],
    }
    doc = ResultDocument.model_validate({"shots": 6, "timings": _timings(), "provenance": provenance, "pubs": good})
    assert doc.pubs is not None and doc.counts == {}
    bad = json.loads(json.dumps(good))
    bad["pubs"][0]["counts"][1] = {"11": 1}
    with pytest.raises(ValidationError, match="binding 1 add up to 1"):
        ResultDocument.model_validate({"shots": 6, "timings": _timings(), "provenance": provenance, "pubs": bad})
    with pytest.raises(ValidationError, match="none in `counts`"):
        ResultDocument.model_validate(
            {"shots": 6, "timings": _timings(), "provenance": provenance, "pubs": good, "counts": {"00": 6}}
        )
    with pytest.raises(ValidationError, match="at least one shot"):
        ResultDocument.model_validate({"shots": 0, "timings": _timings(), "provenance": provenance, "counts": {}})


def _stats(source: str, snapshot: Snapshot) -> Any:
    checker = Checker(source, "qasm3", snapshot, 10)
    assert checker.run() == []
    return checker.stats


def test_a_sampler_pub_costs_its_bindings_and_its_counts_add_up(fez: Snapshot) -> None:
    stats = _stats(BELL, fez)
    one = pricing.price(stats, fez, RunOptions(), 1000)
    pubs = SamplerPubs(pubs=[SamplerPub(circuit=BELL, shape=[100], shots=1000)])
    many = pricing.price_pubs([stats], fez, RunOptions(), pubs)
    # Bindings run one after another on one state; Aer's sampler keeps every sampled shot's outcome.
    assert many.memory_bytes == one.memory_bytes + 100 * 1000 * SAMPLED_SHOT_BYTES
    assert many.counts_chars == 100 * one.counts_chars
    assert one.estimated_runtime_s < many.estimated_runtime_s < 100 * one.estimated_runtime_s  # one start, one Aer run
    two = pricing.price_pubs([stats, stats], fez, RunOptions(), SamplerPubs(pubs=pubs.pubs * 2))
    assert two.counts_chars == 2 * many.counts_chars
    assert two.estimated_simulate_s == pytest.approx(2 * many.estimated_simulate_s)


def test_an_estimator_simulates_the_qubits_its_observables_name(fez: Snapshot) -> None:
    stats = _stats(BELL, fez)
    far = PauliTerm(paulis="ZZ", qubits=[0, 100], coeff=0.5)
    pub = EstimatorPub(circuit=BELL, observables=[[far]], precision=0.0)
    price = pricing.price_pubs([stats], fez, RunOptions(), EstimatorPubs(pubs=[pub]))
    assert price.active_qubits == 3 and price.counts_chars == 0
    with pytest.raises(ValueError, match="1 circuit sizes for 2 PUBs"):
        pricing.price_pubs([stats], fez, RunOptions(), EstimatorPubs(pubs=[pub, pub]))


def _timings() -> dict[str, float]:
    return dict(TIMINGS)


def _provenance() -> dict[str, Any]:
    return provenance(
        "t1",
        device_id="ibm-fez",
        epoch=1,
        seed=1,
        seed_source="task",
        noise_empty=False,
        method="density_matrix",
        method_reason="r",
        active_qubits=[0, 1],
        runner="r",
        python="3",
        hostname="h",
    )
