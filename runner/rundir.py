"""Reading and writing a run directory: the only files the runner touches (DESIGN §6)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_registry import Snapshot, SnapshotError, parse_snapshot
from runner.errors import InvalidPayload
from runner.task import TaskSpec, parse_task

TASK_FILE = "task.json"
SNAPSHOT_FILE = "snapshot.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "runner.log"
MAX_INPUT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RunInputs:
    task: TaskSpec
    snapshot: Snapshot


def read_inputs(run_dir: Path) -> RunInputs:
    if not run_dir.is_dir():
        raise InvalidPayload("MISSING_FILE", f"run directory {run_dir} does not exist")
    task = parse_task(_read_json(run_dir / TASK_FILE))
    try:
        snapshot = parse_snapshot(_read_json(run_dir / SNAPSHOT_FILE))
    except SnapshotError as exc:
        raise InvalidPayload("INVALID_SNAPSHOT", str(exc), exc.problems) from None
    actual = snapshot.sha256()
    if actual != task.snapshot_sha256:
        raise InvalidPayload(
            "SNAPSHOT_MISMATCH",
            "snapshot.json is not the snapshot this task was bound to",
            {"expected": task.snapshot_sha256, "actual": actual},
        )
    return RunInputs(task=task, snapshot=snapshot)


def write_inputs(run_dir: Path, task: TaskSpec, snapshot: Snapshot) -> None:
    """Materialise a run directory; snapshot.json holds the snapshot's canonical bytes."""
    if task.snapshot_sha256 != snapshot.sha256():
        raise ValueError("task.snapshot_sha256 does not identify this snapshot")
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(run_dir / SNAPSHOT_FILE, snapshot.canonical_json())
    _atomic_write(run_dir / TASK_FILE, task.model_dump(mode="json", by_alias=True))


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    _atomic_write(run_dir / RESULT_FILE, result)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)


def write_error(run_dir: Path, error: dict[str, Any]) -> None:
    _atomic_write(run_dir / ERROR_FILE, error)
    (run_dir / RESULT_FILE).unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InvalidPayload("INVALID_TASK", f"{path.name} is {size} bytes; the limit is {MAX_INPUT_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidPayload("MISSING_FILE", f"{path.name} is missing from the run directory") from None
    except OSError as exc:
        raise InvalidPayload("MISSING_FILE", f"cannot read {path.name}: {exc.strerror}") from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload("INVALID_JSON", f"{path.name} is not valid JSON: {exc}") from None


def _atomic_write(path: Path, content: dict[str, Any] | bytes) -> None:
    """Write then rename, so a reader sees the old file or the whole new one, never a torn one."""
    if isinstance(content, dict):
        content = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
