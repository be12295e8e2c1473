"""The runner's side of the run directory: its inputs read through the protocol, every failure typed."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from device_registry import Snapshot, SnapshotError, parse_snapshot
from runner.errors import InvalidPayload
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import SNAPSHOT_FILE, RunDirError, TaskDocument, decode_json, read_file, read_task

_SNAPSHOTS = 8


@dataclass(frozen=True)
class RunInputs:
    task: TaskDocument
    snapshot: Snapshot
    snapshot_sha256: str | None = None
    """The snapshot's digest, where `read_inputs` computed it (and checked it against the task's binding): the
    caches' key, so that a run hashes its 156-qubit snapshot once, not three times."""


class SnapshotCache:
    """Parsed snapshots with their digests, by the sha256 of snapshot.json's bytes: a process that runs many
    tasks on one calibration epoch (a warm runner, whose forked children inherit what it parsed) validates and
    hashes the 156-qubit document once. The same bytes always parse to the same snapshot, so a hit is exactly
    what parsing again would give; whether it is the snapshot the task was bound to is still checked on every
    run (`read_inputs`)."""

    def __init__(self, size: int = _SNAPSHOTS) -> None:
        self._size = size
        self._parsed: OrderedDict[str, tuple[Snapshot, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parsed)

    def load(self, path: Path) -> tuple[Snapshot, str, bool]:
        """The snapshot in `path`, its digest (`Snapshot.sha256`), and whether it was parsed here before."""
        try:
            raw = read_file(path)
        except RunDirError as exc:
            raise InvalidPayload(exc.code, exc.message, exc.detail) from None
        key = hashlib.sha256(raw).hexdigest()
        if key in self._parsed:
            self._parsed.move_to_end(key)
            snapshot, digest = self._parsed[key]
            return snapshot, digest, True
        try:
            snapshot = parse_snapshot(decode_json(path, raw))
        except RunDirError as exc:
            raise InvalidPayload(exc.code, exc.message, exc.detail) from None
        except SnapshotError as exc:
            raise InvalidPayload(ErrorCode.INVALID_SNAPSHOT, str(exc), exc.problems) from None
        digest = snapshot.sha256()
        self._parsed[key] = (snapshot, digest)
        if len(self._parsed) > self._size:
            self._parsed.popitem(last=False)
        return snapshot, digest, False


def read_inputs(run_dir: Path, snapshots: SnapshotCache | None = None) -> RunInputs:
    """The run's task and snapshot; `snapshots`: a process's cache of parsed snapshots (none: parse it here)."""
    if not run_dir.is_dir():
        raise InvalidPayload(ErrorCode.MISSING_FILE, f"run directory {run_dir} does not exist")
    try:
        task = read_task(run_dir)
    except RunDirError as exc:
        raise InvalidPayload(exc.code, exc.message, exc.detail) from None
    cache = snapshots if snapshots is not None else SnapshotCache(size=1)
    snapshot, actual, _ = cache.load(run_dir / SNAPSHOT_FILE)
    if actual != task.snapshot_sha256:
        raise InvalidPayload(
            ErrorCode.SNAPSHOT_MISMATCH,
            "snapshot.json is not the snapshot this task was bound to",
            {"expected": task.snapshot_sha256, "actual": actual},
        )
    return RunInputs(task=task, snapshot=snapshot, snapshot_sha256=actual)
