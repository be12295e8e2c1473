"""A PUB task's result checked against its stored PUBs (domain.results, issue 19): one result per PUB, of
the task's kind, each of its PUB's shape, shots or precision, and counts keys as wide as its circuit's bits."""

from __future__ import annotations

from typing import Any

import pytest

from vqpu_protocol.pubs import EstimatorPub, SamplerPub
from vqpu_service.domain.results import bindings_shape, pub_problems, result_shape

TERM = {"paulis": "Z", "qubits": [0], "coeff": 1.0}


def sampler(**pub: Any) -> dict[str, Any]:
    return {"circuit": "x", "parameter_values": [], "shape": None, "shots": 10, **pub}


def estimator(**pub: Any) -> dict[str, Any]:
    return {"circuit": "x", "parameter_values": [], "shape": None, "observables": [[TERM]], "precision": 0.0, **pub}


@pytest.mark.parametrize(
    "pub",
    [
        sampler(),
        sampler(parameter_values=[[1.0], [2.0]]),
        sampler(shape=[2, 3]),
        sampler(parameter_values=[[1.0]] * 6, shape=[3, 2]),
    ],
)
def test_a_stored_pubs_bindings_shape_is_the_protocols(pub: dict[str, Any]) -> None:
    assert bindings_shape(pub) == SamplerPub.model_validate(pub).bindings_shape


@pytest.mark.parametrize(
    "pub",
    [
        estimator(),
        estimator(observables=[[TERM]] * 4, observables_shape=[4, 1], parameter_values=[[1.0]] * 3),
        estimator(observables=[[TERM]] * 2, parameter_values=[[1.0]] * 2),
        estimator(observables=[[TERM]], parameter_values=[[1.0]] * 6, shape=[2, 3]),
    ],
)
def test_a_stored_pubs_result_shape_is_the_protocols(pub: dict[str, Any]) -> None:
    assert result_shape(pub) == EstimatorPub.model_validate(pub).result_shape


def test_counts_keys_are_checked_against_each_pubs_own_layout() -> None:
    pubs = {"kind": "sampler", "pubs": [sampler(), sampler()]}
    ok = {"shape": [], "shots": 10, "registers": [], "counts": [{"01 1": 10}]}
    wide = {"shape": [], "shots": 10, "registers": [], "counts": [{"011": 10}]}
    result = {"pubs": {"kind": "sampler", "pubs": [ok, wide]}}
    [problem] = pub_problems(pubs, [[1, 2], [1, 2]], result)
    assert problem.field == "pubs.pubs[1]" and "pubs[1]: counts[0] key '011'" in problem.reason
    assert pub_problems(pubs, [[1, 2], [3]], result) == []
    assert pub_problems(pubs, None, result) == []  # no layouts recorded: widths go unchecked


def test_a_result_that_is_no_mapping_or_of_another_length_is_named() -> None:
    pubs = {"kind": "estimator", "pubs": [estimator()]}
    assert [p.field for p in pub_problems(pubs, None, {})] == ["pubs"]
    assert [p.field for p in pub_problems(pubs, None, {"pubs": {"kind": "estimator", "pubs": "x"}})] == ["pubs.pubs"]
    one = {"shape": [1], "evs": [0.0], "stds": [0.0], "precision": 0.0}
    assert pub_problems(pubs, None, {"pubs": {"kind": "estimator", "pubs": [one]}}) == []
    as_true = {**one, "precision": False}
    [problem] = pub_problems(pubs, None, {"pubs": {"kind": "estimator", "pubs": [as_true]}})
    assert "precision is False" in problem.reason
