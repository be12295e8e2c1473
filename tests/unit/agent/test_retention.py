"""Retention: finished run directories go (or become replay bundles) `keep_days` after their last change;
an open claim's, a running one's, a recent one's and anything that is not a run directory stay."""

from __future__ import annotations

import os
import stat
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from agent.claims import Claim
from agent.retention import BUNDLE_DIR, sweep
from agent.site import Retention, SiteError, parse_site
from vqpu_protocol.rundir import RESULT_FILE, SNAPSHOT_FILE, TASK_FILE

NOW = 2_000_000_000.0
DAY = 86_400.0


def _run(root: Path, task_id: str, *, ended: Any = "reported", age_days: float, note: bool = True) -> Path:
    run_dir = root / f"{task_id}.1"
    run_dir.mkdir(mode=0o700)
    for name in (TASK_FILE, SNAPSHOT_FILE, RESULT_FILE):
        (run_dir / name).write_text(f'{{"{name}": "{task_id}"}}')
    (run_dir / "scratch").mkdir()
    if note:
        Claim(task_id, 1, "secret-token", "line-16", "agent-1").save(run_dir, ended=ended)
    _age(run_dir, age_days)
    return run_dir


def _age(path: Path, days: float) -> None:
    when = NOW - days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (when, when), follow_symlinks=False)


def test_finished_run_directories_older_than_keep_days_are_removed_and_no_other(tmp_path: Path) -> None:
    old_done = _run(tmp_path, "t-done", age_days=15)
    old_fenced = _run(tmp_path, "t-fenced", ended="fenced", age_days=30)
    orphan = _run(tmp_path, "t-orphan", note=False, age_days=15)
    open_claim = _run(tmp_path, "t-open", ended=None, age_days=400)
    recent = _run(tmp_path, "t-recent", age_days=13)
    busy = _run(tmp_path, "t-busy", age_days=15)
    growing = _run(tmp_path, "t-growing", age_days=15)
    os.utime(growing / RESULT_FILE, (NOW, NOW))
    (tmp_path / ".prefect-results").mkdir()
    _age(tmp_path / ".prefect-results", 100)
    (tmp_path / "not-a-run-dir").mkdir()
    _age(tmp_path / "not-a-run-dir", 100)
    (tmp_path / "t-link.1").symlink_to(old_done)

    swept = sweep(tmp_path, Retention(keep_days=14), busy={busy}, now=NOW)

    assert sorted(swept.removed) == ["t-done.1", "t-fenced.1", "t-orphan.1"]
    assert not old_done.exists() and not old_fenced.exists() and not orphan.exists()
    for kept in (open_claim, recent, busy, growing, tmp_path / ".prefect-results", tmp_path / "not-a-run-dir"):
        assert kept.is_dir(), kept
    assert (tmp_path / "t-link.1").is_symlink()
    assert not (tmp_path / BUNDLE_DIR).exists()


def test_bundle_mode_keeps_a_private_replay_bundle_without_the_claim_token(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "t-done", age_days=8)
    (run_dir / "runner.log").write_text("log")
    _age(run_dir, 8)
    previous = os.umask(0)
    try:
        swept = sweep(tmp_path, Retention(keep_days=7, mode="bundle"), now=NOW)
    finally:
        os.umask(previous)
    assert swept.bundled == swept.removed == ["t-done.1"] and not run_dir.exists()
    bundles = tmp_path / BUNDLE_DIR
    bundle = bundles / "t-done.1.tar.gz"
    assert stat.S_IMODE(os.lstat(bundles).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(bundle).st_mode) == 0o600
    assert os.listdir(bundles) == ["t-done.1.tar.gz"]
    with tarfile.open(bundle) as tar:
        names = sorted(tar.getnames())
        content = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert names == [f"t-done.1/{n}" for n in sorted((RESULT_FILE, SNAPSHOT_FILE, TASK_FILE))]
    assert content[f"t-done.1/{TASK_FILE}"] == f'{{"{TASK_FILE}": "t-done"}}'.encode()
    assert all(b"secret-token" not in data for data in content.values())


def test_a_run_directory_with_a_planted_link_is_left_for_an_operator_not_bundled_through_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not yours")
    run_dir = _run(tmp_path, "t-done", age_days=8)
    (run_dir / RESULT_FILE).unlink()
    (run_dir / RESULT_FILE).symlink_to(secret)
    _age(run_dir, 8)
    swept = sweep(tmp_path, Retention(keep_days=7, mode="bundle"), now=NOW)
    assert swept.failed == ["t-done.1"] and run_dir.is_dir() and secret.read_text() == "not yours"
    assert os.listdir(tmp_path / BUNDLE_DIR) == []


def test_bundles_older_than_bundle_keep_days_are_removed(tmp_path: Path) -> None:
    _run(tmp_path, "t-old", age_days=8)
    sweep(tmp_path, Retention(keep_days=7, mode="bundle"), now=NOW)
    bundle = tmp_path / BUNDLE_DIR / "t-old.1.tar.gz"
    os.utime(bundle, (NOW - 31 * DAY, NOW - 31 * DAY))
    swept = sweep(tmp_path, Retention(keep_days=7, mode="bundle", bundle_keep_days=30), now=NOW)
    assert swept.bundles_removed == ["t-old.1.tar.gz"] and not bundle.exists()


def test_a_sweep_of_a_missing_run_root_does_nothing(tmp_path: Path) -> None:
    assert sweep(tmp_path / "absent", Retention(), now=time.time()).removed == []


def test_retention_is_a_site_setting_with_a_default() -> None:
    raw: dict[str, Any] = {"site": "x", "slots": 1, "run_root": "/r", "scheduler": {"kind": "local"}}
    assert parse_site(raw).retention == Retention(keep_days=14, mode="delete")
    bundled = parse_site({**raw, "retention": {"keep_days": 3, "mode": "bundle", "bundle_keep_days": 90}})
    assert bundled.retention.bundle_keep_days == 90
    with pytest.raises(SiteError, match=r"retention\.bundle_keep_days: set, but mode is 'delete'"):
        parse_site({**raw, "retention": {"bundle_keep_days": 9}})
    with pytest.raises(SiteError, match=r"retention\.keep_days"):
        parse_site({**raw, "retention": {"keep_days": 0}})
