"""The run directory as the protocol writes and reads it: byte-identical snapshots, typed outcomes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from device_registry import catalog
from harness.documents import result_document
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import (
    ERROR_FILE,
    RESULT_FILE,
    SNAPSHOT_FILE,
    TASK_FILE,
    ResultDocument,
    RunDirError,
    materialise,
    read_json,
    read_outcome,
    read_task,
    write_error,
    write_result,
)


def _claimed() -> ClaimedTask:
    snapshot = catalog.load("line-16").canonical_json().decode()
    return ClaimedTask.model_validate(
        {
            "task": {
                "id": "t-1",
                "device": "line-16",
                "circuit": "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n",
                "dialect": "qasm3",
                "shots": 100,
                "seed": 7,
                "options": {"noise_model": "paper", "method": "auto", "device": "auto"},
                "tags": [],
                "epoch": 0,
                "snapshot_sha256": hashlib.sha256(snapshot.encode()).hexdigest(),
            },
            "snapshot": snapshot,
            "claim_token": "tok",
            "attempt": 2,
        }
    )


def test_materialise_writes_the_claims_snapshot_byte_for_byte_and_a_readable_task(tmp_path: Path) -> None:
    claimed = _claimed()
    run_dir = materialise(tmp_path / "run", claimed)
    assert (run_dir / SNAPSHOT_FILE).read_bytes() == claimed.snapshot.encode()
    task = read_task(run_dir)
    assert (task.task_id, task.attempt, task.seed, task.shots) == ("t-1", 2, 7, 100)
    assert task.snapshot_sha256 == claimed.task.snapshot_sha256


def test_materialise_refuses_a_snapshot_that_is_not_the_one_the_task_was_bound_to(tmp_path: Path) -> None:
    claimed = _claimed()
    forged = claimed.model_copy(update={"snapshot": claimed.snapshot.replace('"epoch":0', '"epoch":1')})
    with pytest.raises(ValueError, match="does not identify"):
        materialise(tmp_path / "run", forged)
    assert not (tmp_path / "run").exists()


def test_read_outcome_finds_nothing_a_result_or_an_error(tmp_path: Path) -> None:
    claimed = _claimed()
    run_dir = materialise(tmp_path / "run", claimed)
    assert read_outcome(run_dir) is None
    result = ResultDocument.model_validate(result_document(claimed.model_dump(), {"1": 100}))
    write_result(run_dir, result)
    assert read_outcome(run_dir) == result
    error = ErrorDocument(code=ErrorCode.SIMULATION_ERROR, message="Aer failed")
    write_error(run_dir, error)
    assert read_outcome(run_dir) == error and not (run_dir / RESULT_FILE).exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (RESULT_FILE, b"{torn"),
        (RESULT_FILE, json.dumps({"schema": "vqpu.result/1", "counts": {"0": 5}, "shots": 5}).encode()),
        (ERROR_FILE, json.dumps({"message": "no code"}).encode()),
    ],
)
def test_a_malformed_outcome_is_a_typed_error_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    outcome = read_outcome(tmp_path)
    assert isinstance(outcome, ErrorDocument)
    assert outcome.code == ErrorCode.RESULT_MALFORMED and outcome.detail == {"file": name}


def test_reading_never_follows_a_symlink_out_of_the_run_directory(tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('{"schema": "vqpu.task/1"}')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / TASK_FILE).symlink_to(outside)
    with pytest.raises(RunDirError) as caught:
        read_json(run_dir / TASK_FILE)
    assert caught.value.code == ErrorCode.MISSING_FILE


def test_a_task_with_bad_options_is_invalid_options(tmp_path: Path) -> None:
    run_dir = materialise(tmp_path / "run", _claimed())
    data = json.loads((run_dir / TASK_FILE).read_text())
    data["options"]["noise_model"] = "bogus"
    (run_dir / TASK_FILE).write_text(json.dumps(data))
    with pytest.raises(RunDirError) as caught:
        read_task(run_dir)
    assert caught.value.code == ErrorCode.INVALID_OPTIONS and "options.noise_model" in caught.value.message
