"""The runner's side of the run directory: its inputs read through the protocol, every failure typed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device_registry import Snapshot, SnapshotError, parse_snapshot
from runner.errors import InvalidPayload
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import SNAPSHOT_FILE, RunDirError, TaskDocument, read_json, read_task


@dataclass(frozen=True)
class RunInputs:
    task: TaskDocument
    snapshot: Snapshot
    snapshot_sha256: str | None = None
    """The snapshot's digest, where `read_inputs` computed it (and checked it against the task's binding): the
    caches' key, so that a run hashes its 156-qubit snapshot once, not three times."""


def read_inputs(run_dir: Path) -> RunInputs:
    if not run_dir.is_dir():
        raise InvalidPayload(ErrorCode.MISSING_FILE, f"run directory {run_dir} does not exist")
    try:
        task = read_task(run_dir)
        raw = read_json(run_dir / SNAPSHOT_FILE)
    except RunDirError as exc:
        raise InvalidPayload(exc.code, exc.message, exc.detail) from None
    try:
        snapshot = parse_snapshot(raw)
    except SnapshotError as exc:
        raise InvalidPayload(ErrorCode.INVALID_SNAPSHOT, str(exc), exc.problems) from None
    actual = snapshot.sha256()
    if actual != task.snapshot_sha256:
        raise InvalidPayload(
            ErrorCode.SNAPSHOT_MISMATCH,
            "snapshot.json is not the snapshot this task was bound to",
            {"expected": task.snapshot_sha256, "actual": actual},
        )
    return RunInputs(task=task, snapshot=snapshot, snapshot_sha256=actual)
