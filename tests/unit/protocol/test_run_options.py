"""Run options at the door (`options.memory`, `options.noise`) and per-shot memory in a result document."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.documents import result_document
from vqpu_protocol.api.tasks import SubmitTask
from vqpu_protocol.codes import ErrorCode, code_for_fields
from vqpu_protocol.limits import MAX_MEMORY_CHARS, MAX_MEMORY_SHOTS, MAX_NOISE_SCALE
from vqpu_protocol.rundir import RESULT_FILE, ResultDocument, RunDirError, RunOptions, read_outcome, read_task

BELL = "OPENQASM 2.0;\nqreg q[2];\ncreg c[2];\nmeasure q -> c;\n"


def _submit(shots: int = 100, **options: Any) -> SubmitTask:
    return SubmitTask.model_validate(
        {"device": "ibm-fez", "circuit": BELL, "dialect": "qasm2", "shots": shots, "options": options}
    )


def _refusal(**body: Any) -> tuple[ErrorCode, str]:
    """What the API would answer: the code its validation handler derives, and each problem as
    `loc: msg` (the API's message names the locations, its detail holds the messages)."""
    with pytest.raises(ValidationError) as caught:
        _submit(**body)
    errors = caught.value.errors()
    code = code_for_fields((str(e["loc"][0]) for e in errors), ErrorCode.INVALID_REQUEST)
    return code, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)


BAD_NOISE = {
    "an unknown channel": ({"scale": {"t1": 2.0}}, "gate_1q"),
    "an unknown channel disabled": ({"disable": ["crosstalk"]}, "gate_1q"),
    "a negative scale": ({"scale": {"gate_2q": -0.5}}, "greater than or equal to 0"),
    "a NaN scale": ({"scale": {"readout": math.nan}}, "finite"),
    "an infinite scale": ({"scale": {"readout": math.inf}}, "finite"),
    "a scale past the maximum": ({"scale": {"gate_1q": MAX_NOISE_SCALE * 2}}, f"{MAX_NOISE_SCALE:g}"),
    "a string scale": ({"scale": {"gate_1q": "2"}}, "valid number"),
    "a channel scaled and disabled": ({"scale": {"readout": 2}, "disable": ["readout"]}, "both scaled and disabled"),
    "a channel disabled twice": ({"disable": ["gate_1q", "gate_1q"]}, "more than once"),
    "an unknown field": ({"scales": {"gate_1q": 2}}, "Extra inputs"),
    "relaxation under the paper model": ({"scale": {"relaxation": 2}}, "noise: Value error, noise channel relaxation"),
}


@pytest.mark.parametrize(("noise", "says"), BAD_NOISE.values(), ids=BAD_NOISE.keys())
def test_bad_noise_options_are_invalid_options_saying_why(noise: dict[str, Any], says: str) -> None:
    code, message = _refusal(noise=noise)
    assert code is ErrorCode.INVALID_OPTIONS
    assert says in message


def test_relaxation_can_be_scaled_or_disabled_under_the_relaxation_model() -> None:
    scaled = _submit(noise_model="relaxation", noise={"scale": {"relaxation": 3, "gate_2q": 0}})
    assert scaled.options.noise.factor("relaxation") == 3.0 and scaled.options.noise.factor("gate_2q") == 0.0
    disabled = _submit(noise_model="relaxation", noise={"disable": ["relaxation", "readout"]})
    assert disabled.options.noise.factor("relaxation") == 0.0
    code, message = _refusal(noise_model="paper", noise={"disable": ["relaxation"]})
    assert code is ErrorCode.INVALID_OPTIONS and "relaxation" in message


def test_default_options_carry_no_memory_and_no_noise_change() -> None:
    options = _submit().options
    assert options.memory is False and options.noise.cache_key() == ()
    assert RunOptions.model_validate({"noise": {"scale": {"gate_1q": 1}}}).noise.cache_key() == ()


def test_memory_is_refused_above_its_shot_limit_and_accepted_at_it() -> None:
    assert _submit(shots=MAX_MEMORY_SHOTS, memory=True).options.memory is True
    assert _submit(shots=MAX_MEMORY_SHOTS + 1).shots == MAX_MEMORY_SHOTS + 1  # no memory, no limit
    code, message = _refusal(shots=MAX_MEMORY_SHOTS + 1, memory=True)
    assert code is ErrorCode.INVALID_OPTIONS
    assert message.startswith("options.memory: ") and str(MAX_MEMORY_SHOTS) in message


def test_memory_must_be_a_boolean() -> None:
    code, _ = _refusal(memory="yes")
    assert code is ErrorCode.INVALID_OPTIONS


def test_the_runner_refuses_a_task_json_asking_memory_above_the_limit(tmp_path: Path) -> None:
    task = {
        "schema": "vqpu.task/1",
        "task_id": "t-1",
        "circuit": BELL,
        "dialect": "qasm2",
        "shots": MAX_MEMORY_SHOTS + 1,
        "snapshot_sha256": "0" * 64,
        "options": {"memory": True},
    }
    (tmp_path / "task.json").write_text(json.dumps(task))
    with pytest.raises(RunDirError) as caught:
        read_task(tmp_path)
    assert caught.value.code is ErrorCode.INVALID_OPTIONS and "options.memory" in caught.value.message


def _result(counts: dict[str, int], memory: list[str] | None) -> dict[str, Any]:
    claimed = {
        "task": {
            "id": "t-1",
            "device": "ibm-fez",
            "epoch": 0,
            "snapshot_sha256": "0" * 64,
            "seed": 1,
            "options": {"noise_model": "paper"},
            "dialect": "qasm2",
        },
        "attempt": 1,
    }
    return {**result_document(claimed, counts), "memory": memory}


def test_a_result_memory_must_unfold_its_counts() -> None:
    good = ResultDocument.model_validate(_result({"00": 2, "11": 1}, ["11", "00", "00"]))
    assert good.memory == ["11", "00", "00"]
    assert ResultDocument.model_validate(_result({"00": 3}, None)).memory is None
    for memory, says in (
        (["00", "00"], "memory holds 2 shots, not the 3 shots"),
        (["00", "00", "00"], "does not tally"),
        (["11", "00", "01"], "does not tally"),
        (["11", "00", "0 0"], "does not tally"),
        (["11", "00", "2"], "pattern"),
    ):
        with pytest.raises(ValidationError, match=says):
            ResultDocument.model_validate(_result({"00": 2, "11": 1}, memory))


def test_a_result_memory_over_the_size_limit_is_refused() -> None:
    width = MAX_MEMORY_CHARS // 1000 + 1
    memory = ["0" * width] * 1000
    with pytest.raises(ValidationError, match="characters; the limit"):
        ResultDocument.model_validate(_result({"0" * width: 1000}, memory))


def test_a_result_json_from_before_noise_options_and_memory_still_reads(tmp_path: Path) -> None:
    old = _result({"00": 3}, None)
    del old["memory"], old["provenance"]["noise"], old["provenance"]["noise_channels"]
    (tmp_path / RESULT_FILE).write_text(json.dumps(old))
    outcome = read_outcome(tmp_path)
    assert isinstance(outcome, ResultDocument)
    assert outcome.memory is None and outcome.provenance.noise_channels is None
    assert outcome.provenance.noise.cache_key() == ()
