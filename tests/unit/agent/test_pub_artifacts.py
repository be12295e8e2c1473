"""What an operator's artifacts show of a PUB task: what ran, and (where the site opts in) its outcomes per PUB."""

from __future__ import annotations

from typing import Any

from agent.artifacts import counts_table, ran, summary_markdown
from tests.unit.protocol.test_pubs import _provenance, _timings
from vqpu_protocol.rundir import ResultDocument


def _result(pubs: dict[str, Any], shots: int) -> ResultDocument:
    return ResultDocument.model_validate(
        {"shots": shots, "timings": _timings(), "provenance": _provenance(), "pubs": pubs}
    )


SAMPLER = {
    "kind": "sampler",
    "pubs": [
        {"shape": [2], "shots": 4, "registers": [{"name": "c", "num_bits": 1}], "counts": [{"0": 1, "1": 3}, {"0": 4}]},
    ],
}


def test_a_sampler_task_is_summarised_by_its_pubs_and_its_table_names_pub_and_binding() -> None:
    result = _result(SAMPLER, 8)
    assert ran(result) == "1 sampler PUB, 8 shots"
    assert "| PUBs | 1 sampler PUB, 8 shots |" in summary_markdown("t1", "http://cp/t1", result, counts=False)
    assert counts_table(result) == [
        {"pub": 0, "binding": 1, "bitstring": "0", "count": 4, "probability": 1.0},
        {"pub": 0, "binding": 0, "bitstring": "1", "count": 3, "probability": 0.75},
        {"pub": 0, "binding": 0, "bitstring": "0", "count": 1, "probability": 0.25},
    ]


def test_an_estimator_task_is_summarised_without_shots_and_its_table_holds_its_values() -> None:
    pubs = {"kind": "estimator", "pubs": [{"shape": [2], "evs": [0.5, -0.25], "stds": [0.0, 0.0], "precision": 0.0}]}
    result = _result(pubs, 0)
    assert ran(result) == "1 estimator PUB"
    assert counts_table(result) == [
        {"pub": 0, "index": 0, "ev": 0.5, "std": 0.0},
        {"pub": 0, "index": 1, "ev": -0.25, "std": 0.0},
    ]
