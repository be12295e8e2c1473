"""A runner process's parsed snapshots (`runner.rundir.SnapshotCache`): what a warm runner parses once for all the
runs of a calibration epoch. Parsing is skipped only for the very same bytes, and whether the snapshot is the one
the task was bound to is still checked on every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_registry import Snapshot
from harness.circuits import BELL
from runner.errors import InvalidPayload
from runner.rundir import SnapshotCache, read_inputs
from tests.conftest import MakeRunDir
from vqpu_protocol.rundir import SNAPSHOT_FILE


def _run_dir(make_run_dir: MakeRunDir, bound: Snapshot, written: Snapshot | None = None) -> Path:
    """A run directory bound to `bound`; its snapshot.json replaced by `written`, as a tampered one would hold."""
    run_dir = make_run_dir(BELL, bound, dialect="qasm3")
    if written is not None:
        (run_dir / SNAPSHOT_FILE).write_bytes(written.canonical_json())
    return run_dir


def test_the_same_snapshot_is_parsed_once(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    cache = SnapshotCache()
    first = read_inputs(_run_dir(make_run_dir, fez), cache)
    second = read_inputs(_run_dir(make_run_dir, fez), cache)
    assert first.snapshot == fez
    assert second.snapshot is first.snapshot
    assert second.snapshot_sha256 == fez.sha256()
    assert len(cache) == 1


def test_a_file_rewritten_in_place_is_parsed_again(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    cache = SnapshotCache()
    run_dir = _run_dir(make_run_dir, fez)
    cache.load(run_dir / SNAPSHOT_FILE)
    later = fez.with_epoch(fez.epoch + 1)
    (run_dir / SNAPSHOT_FILE).write_bytes(later.canonical_json())
    snapshot, digest, parsed_before = cache.load(run_dir / SNAPSHOT_FILE)
    assert (snapshot.epoch, digest, parsed_before) == (later.epoch, later.sha256(), False)


def test_a_cached_snapshot_must_still_be_the_one_the_task_was_bound_to(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    later = fez.with_epoch(fez.epoch + 1)
    cache = SnapshotCache()
    read_inputs(_run_dir(make_run_dir, fez), cache)
    read_inputs(_run_dir(make_run_dir, later), cache)
    # Both snapshots are cached now: neither run dir below may run on the one its task was not bound to.
    for bound, written in ((fez, later), (later, fez)):
        with pytest.raises(InvalidPayload) as refused:
            read_inputs(_run_dir(make_run_dir, bound, written), cache)
        assert refused.value.code == "SNAPSHOT_MISMATCH"
        assert refused.value.detail == {"expected": bound.sha256(), "actual": written.sha256()}


def test_an_unusable_snapshot_is_refused_each_time_and_not_kept(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    cache = SnapshotCache()
    run_dir = _run_dir(make_run_dir, fez)
    (run_dir / SNAPSHOT_FILE).write_text('{"schema": "vqpu.snapshot/1"}')
    for _ in range(2):
        with pytest.raises(InvalidPayload) as refused:
            read_inputs(run_dir, cache)
        assert refused.value.code == "INVALID_SNAPSHOT"
    (run_dir / SNAPSHOT_FILE).write_text("{not json")
    with pytest.raises(InvalidPayload) as refused:
        read_inputs(run_dir, cache)
    assert refused.value.code == "INVALID_JSON"
    assert len(cache) == 0


def test_the_oldest_snapshot_is_dropped_past_the_size(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    cache = SnapshotCache(size=2)
    epochs = [fez.with_epoch(fez.epoch + i) for i in range(3)]
    paths = [_run_dir(make_run_dir, s) / SNAPSHOT_FILE for s in epochs]
    for path in paths:
        cache.load(path)
    assert len(cache) == 2
    assert cache.load(paths[2])[2] is True
    assert cache.load(paths[0])[2] is False
