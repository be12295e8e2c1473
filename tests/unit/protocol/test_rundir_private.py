"""Run directories are private from the first byte and built only from ids that are one safe path
component; nothing planted in place of a run directory or one of its files is written through or read."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_registry import catalog
from harness.documents import result_document
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import (
    RESULT_FILE,
    SNAPSHOT_FILE,
    TASK_FILE,
    ResultDocument,
    RunDirError,
    UnsafeRunDir,
    UnsafeRunDirName,
    atomic_write,
    materialise,
    parse_run_dir_name,
    read_json,
    read_outcome,
    run_dir_for,
    write_error,
    write_result,
)

OTHER_UID = 64_123


def _claimed(task_id: str = "t-0123456789abcdef0123") -> ClaimedTask:
    snapshot = catalog.load("line-16").canonical_json().decode()
    return ClaimedTask.model_validate(
        {
            "task": {
                "id": task_id,
                "device": "line-16",
                "circuit": "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n",
                "dialect": "qasm3",
                "shots": 100,
                "seed": 7,
                "options": {},
                "tags": [],
                "epoch": 0,
                "snapshot_sha256": hashlib.sha256(snapshot.encode()).hexdigest(),
            },
            "snapshot": snapshot,
            "claim_token": "tok",
            "attempt": 1,
        }
    )


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 000: whatever comes out private is private because of how it was created, not the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        pytest.fail("a mode was changed after creation (chmod): files must be created private")

    for name in ("chmod", "fchmod", "lchmod"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refused)


def _modes(root: Path) -> dict[str, str]:
    found = {".": f"{stat.S_IMODE(os.lstat(root).st_mode):o}"}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = f"{stat.S_IMODE(os.lstat(path).st_mode):o}"
    return found


# --- paths from ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id",
    ["../../x", "a/b", ".", "..", "a\x00b", "a\nb", "t-1\n", "", "/abs", "-x", ".hidden", "a.b", "x" * 129, "é"],
)
def test_an_id_that_is_not_one_plain_path_component_names_no_run_directory(tmp_path: Path, task_id: str) -> None:
    with pytest.raises(UnsafeRunDirName, match="cannot name a run directory"):
        run_dir_for(tmp_path, task_id, 1)


@pytest.mark.parametrize("attempt", [-1, 2**31, True, "1"])
def test_an_attempt_that_is_not_a_serial_names_no_run_directory(tmp_path: Path, attempt: Any) -> None:
    with pytest.raises(UnsafeRunDirName):
        run_dir_for(tmp_path, "t-1", attempt)


def test_a_control_plane_id_names_a_run_directory_directly_under_the_root_and_back(tmp_path: Path) -> None:
    run_dir = run_dir_for(tmp_path, "t-0123456789abcdef0123", 3)
    assert run_dir.parent == tmp_path and run_dir.name == "t-0123456789abcdef0123.3"
    assert parse_run_dir_name(run_dir.name) == ("t-0123456789abcdef0123", 3)


@pytest.mark.parametrize("name", [".prefect-results", ".bundles", "t-1", "t-1.", "t-1.01", "t-1.x", "a/b.1", "..1"])
def test_only_a_run_directory_name_parses_as_one(name: str) -> None:
    assert parse_run_dir_name(name) is None


# --- private from the first byte -----------------------------------------------------------------


def test_a_materialised_run_directory_is_0700_with_0600_files_whatever_the_umask(
    tmp_path: Path, open_umask: None, no_chmod: None
) -> None:
    run_dir = materialise(tmp_path / "runs" / "t-1.1", _claimed("t-1"))
    assert _modes(tmp_path / "runs") == {
        ".": "700",
        "t-1.1": "700",
        f"t-1.1/{SNAPSHOT_FILE}": "600",
        f"t-1.1/{TASK_FILE}": "600",
    }
    write_result(run_dir, ResultDocument.model_validate(result_document(_claimed().model_dump(), {"1": 100})))
    assert stat.S_IMODE(os.lstat(run_dir / RESULT_FILE).st_mode) == 0o600
    write_error(run_dir, ErrorDocument(code=ErrorCode.SIMULATION_ERROR, message="Aer failed"))
    assert _modes(run_dir)["error.json"] == "600"


def test_a_file_is_created_exclusively_0600_without_following_a_link_under_an_unpredictable_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None, no_chmod: None
) -> None:
    created: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append((str(path), flags, mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    atomic_write(tmp_path / "claim.json", b"{}")
    atomic_write(tmp_path / "claim.json", b"{}")
    assert len(created) == 2
    for name, flags, mode in created:
        assert mode == 0o600 and flags & os.O_EXCL and flags & os.O_NOFOLLOW, (name, oct(flags), oct(mode))
    first, second = (Path(name).name for name, _, _ in created)
    assert first != second, "the temporary name is predictable"
    assert str(os.getpid()) not in first
    assert sorted(os.listdir(tmp_path)) == ["claim.json"]


def test_a_link_planted_at_a_file_name_is_replaced_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("theirs")
    run_dir = materialise(tmp_path / "run", _claimed())
    (run_dir / RESULT_FILE).symlink_to(outside)
    write_result(run_dir, ResultDocument.model_validate(result_document(_claimed().model_dump(), {"1": 100})))
    assert outside.read_text() == "theirs"
    assert not (run_dir / RESULT_FILE).is_symlink()


def test_a_link_planted_where_a_run_directory_goes_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir(mode=0o700)
    planted = tmp_path / "runs" / "t-1.1"
    planted.symlink_to(elsewhere)
    with pytest.raises(UnsafeRunDir, match="symbolic link"):
        materialise(planted, _claimed("t-1"))
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(OSError) as caught:
        atomic_write(planted / RESULT_FILE, b"{}")
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another uid needs root")
def test_a_run_directory_another_account_made_first_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "t-1.1"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeRunDir, match=f"owned by uid {OTHER_UID}"):
        materialise(theirs, _claimed("t-1"))
    assert list(theirs.iterdir()) == []


def test_a_run_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "t-1.1"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeRunDir, match="writable by other accounts"):
        materialise(shared, _claimed("t-1"))


# --- reading -------------------------------------------------------------------------------------


def test_an_outcome_planted_as_a_link_is_malformed_not_followed(tmp_path: Path) -> None:
    forged = tmp_path / "forged.json"
    forged.write_bytes(b'{"schema": "vqpu.result/1"}')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RESULT_FILE).symlink_to(forged)
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ErrorDocument) and outcome.code == ErrorCode.RESULT_MALFORMED
    (run_dir / RESULT_FILE).unlink()
    (run_dir / RESULT_FILE).symlink_to(tmp_path / "dangling")
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ErrorDocument) and outcome.code == ErrorCode.RESULT_MALFORMED


def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / TASK_FILE)
    with pytest.raises(RunDirError, match="not a regular file"):
        read_json(tmp_path / TASK_FILE)
