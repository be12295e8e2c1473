"""The flow run's summary artifact says what noise a task ran with, so a run that lost its noise shows it."""

from __future__ import annotations

from typing import Any

from agent.artifacts import noise_summary
from harness.documents import result_document
from vqpu_protocol.rundir import ResultDocument


def _provenance(**changes: Any) -> Any:
    claimed = {
        "task": {
            "id": "t-1",
            "device": "ibm-fez",
            "epoch": 0,
            "snapshot_sha256": "0" * 64,
            "seed": 1,
            "options": {"noise_model": "relaxation"},
            "dialect": "qasm2",
        },
        "attempt": 1,
    }
    doc = result_document(claimed, {"00": 10})
    doc["provenance"].update(changes)
    return ResultDocument.model_validate(doc).provenance


def test_the_summary_names_the_noise_options_and_the_channels_applied() -> None:
    p = _provenance(noise={"scale": {"gate_2q": 2.0}, "disable": ["readout"]}, noise_empty=False, noise_channels=7)
    assert noise_summary(p) == "relaxation (gate_2q scaled 2, readout off): 7 error channels"


def test_the_summary_says_when_no_noise_was_applied() -> None:
    p = _provenance(noise={"scale": {}, "disable": ["gate_1q", "gate_2q", "readout", "relaxation"]}, noise_channels=0)
    assert noise_summary(p).endswith(": no noise applied, the run was ideal")
    assert "readout off" in noise_summary(p)
