"""The run root the agent trusts: its own, writable by no one else, below directories no other account can
replace it in (or a shared filesystem the site said it trusts); made private when missing.

Another account is stood in for by chown to a uid that is not ours (root only); the attacks by a real
second account are in tests/e2e/test_site_security_rundirs.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.run_root import RunRootError, ensure_run_root
from agent.site import parse_site

OTHER = 64_123
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a path to another uid needs root")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _refusal(run_root: Path, policy: Any = "private") -> str:
    with pytest.raises(RunRootError) as caught:
        ensure_run_root(run_root, policy)
    return str(caught.value)


def test_a_missing_run_root_is_made_0700_with_its_missing_parents_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        ensure_run_root(tmp_path / "state" / "vqpu" / "runs")
    finally:
        os.umask(previous)
    for path in (tmp_path / "state", tmp_path / "state" / "vqpu", tmp_path / "state" / "vqpu" / "runs"):
        assert _mode(path) == 0o700, path


def test_an_existing_run_root_of_ours_that_others_may_read_is_narrowed_to_0700(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs").chmod(0o755)
    ensure_run_root(tmp_path / "runs")
    assert _mode(tmp_path / "runs") == 0o700


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_run_root_others_may_write_is_refused_naming_its_mode(tmp_path: Path, mode: int) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs").chmod(mode)
    message = _refusal(tmp_path / "runs")
    assert message.startswith(f"run_root {tmp_path / 'runs'} is writable by ")
    assert f"(mode {mode:04o})" in message
    assert "writable by" in _refusal(tmp_path / "runs", "shared-filesystem")


@as_root
def test_a_run_root_another_account_made_is_refused_naming_its_owner(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir(mode=0o700)
    os.chown(tmp_path / "runs", OTHER, OTHER)
    expected = (
        f"run_root {tmp_path / 'runs'} is owned by uid {OTHER}, not by this agent's account (uid 0): "
        "another account made it; remove it or choose another run_root"
    )
    assert _refusal(tmp_path / "runs") == expected
    assert _refusal(tmp_path / "runs", "shared-filesystem") == expected


@as_root
def test_a_run_root_someone_else_makes_between_the_check_and_mkdir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdir = os.mkdir

    def quicker(path: Any, mode: int = 0o777) -> None:
        real_mkdir(path, 0o777)
        os.chown(path, OTHER, OTHER)  # the other account won the race
        raise FileExistsError(path)

    monkeypatch.setattr(os, "mkdir", quicker)
    assert f"is owned by uid {OTHER}" in _refusal(tmp_path / "runs")


def test_a_symlink_at_the_run_root_is_refused_even_our_own(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "runs").symlink_to(tmp_path / "real")
    message = _refusal(tmp_path / "runs")
    assert message.startswith(f"run_root {tmp_path / 'runs'} is a symlink (to {tmp_path / 'real'})")


@as_root
def test_a_parent_another_account_owns_is_refused_unless_the_site_trusts_a_shared_filesystem(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir(mode=0o2770)
    os.chown(project, OTHER, OTHER)
    message = _refusal(project / "runs")
    assert message.startswith(
        f"run_root {project / 'runs'}: {project} is owned by uid {OTHER}, not by root or this agent's account (uid 0)"
    )
    assert not (project / "runs").exists(), "nothing is made below a directory that was refused"
    ensure_run_root(project / "runs", "shared-filesystem")
    assert _mode(project / "runs") == 0o700


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o777, "its group and all accounts"), (0o757, "all accounts"), (0o775, "its group"), (0o2770, "its group")],
)
def test_a_parent_others_may_write_without_the_sticky_bit_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    message = _refusal(shared / "runs")
    assert message.startswith(
        f"run_root {shared / 'runs'}: {shared} is writable by {who} (mode {mode:04o}) without the sticky bit"
    )
    assert not (shared / "runs").exists()


def test_a_parent_like_tmp_writable_by_all_but_sticky_is_accepted(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    ensure_run_root(sticky / "vqpu-runs")
    assert _mode(sticky / "vqpu-runs") == 0o700


@as_root
def test_a_symlink_on_the_way_is_judged_by_its_owner_and_by_where_it_leads(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER, OTHER)
    (tmp_path / "home").symlink_to(theirs)  # our link, into another account's directory
    assert f"{theirs} is owned by uid {OTHER}" in _refusal(tmp_path / "home" / "runs")

    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    (tmp_path / "sticky").mkdir()
    (tmp_path / "sticky").chmod(0o1777)
    link = tmp_path / "sticky" / "link"
    link.symlink_to(ours)
    os.lchown(link, OTHER, OTHER)  # their link in a sticky directory: they may point it anywhere
    assert f"{link} is a symlink owned by uid {OTHER}" in _refusal(link / "runs")


def test_the_policy_is_a_site_setting_private_by_default() -> None:
    raw: dict[str, Any] = {"site": "x", "slots": 1, "run_root": "/r", "scheduler": {"kind": "local"}}
    assert parse_site(raw).run_root_policy == "private"
    assert parse_site({**raw, "run_root_policy": "shared-filesystem"}).run_root_policy == "shared-filesystem"
