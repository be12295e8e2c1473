"""The claim note: 0600 from its creation (it holds the claim token), and found again after a restart only
in a real run directory whose name is the task and attempt the note is for."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.claims import CLAIM_FILE, Claim, open_claims

CLAIM = Claim(task_id="t-1", attempt=2, claim_token="secret-token", device="line-16", agent_id="agent-1")


def _run_dir(root: Path, name: str = "t-1.2") -> Path:
    run_dir = root / name
    run_dir.mkdir(mode=0o700)
    return run_dir


def test_the_claim_note_is_0600_from_its_creation_never_chmod_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, **kwargs)

    def refused(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the claim note's mode was changed after it was written")

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "chmod", refused)
    monkeypatch.setattr(os, "fchmod", refused)
    previous = os.umask(0)
    try:
        CLAIM.save(_run_dir(tmp_path))
        CLAIM.save(tmp_path / "t-1.2", ended="reported")
    finally:
        os.umask(previous)
    assert created == [0o600, 0o600]
    assert stat.S_IMODE(os.lstat(tmp_path / "t-1.2" / CLAIM_FILE).st_mode) == 0o600


def test_an_open_claim_is_found_again_in_its_own_run_directory(tmp_path: Path) -> None:
    CLAIM.save(_run_dir(tmp_path))
    assert open_claims(tmp_path, "agent-1") == [(CLAIM, tmp_path / "t-1.2")]
    assert open_claims(tmp_path, "agent-2") == []
    CLAIM.save(tmp_path / "t-1.2", ended="reported")
    assert open_claims(tmp_path, "agent-1") == []


def test_a_note_moved_into_another_run_directory_or_behind_a_link_is_not_a_claim(tmp_path: Path) -> None:
    CLAIM.save(_run_dir(tmp_path, "t-9.1"))  # a note for t-1.2 in t-9.1's directory (swapped directories)
    elsewhere = _run_dir(tmp_path, "elsewhere")
    CLAIM.save(elsewhere)
    (tmp_path / "t-1.2").symlink_to(elsewhere)
    CLAIM.save(_run_dir(tmp_path, ".t-1.2"))
    assert open_claims(tmp_path, "agent-1") == []


def test_a_claim_note_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    outside = _run_dir(tmp_path, "outside")
    CLAIM.save(outside)
    (_run_dir(tmp_path) / CLAIM_FILE).symlink_to(outside / CLAIM_FILE)
    assert open_claims(tmp_path, "agent-1") == []
