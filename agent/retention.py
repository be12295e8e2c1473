"""Retention: finished run directories do not stay under run_root forever, so the disk cannot fill.

A run directory is finished when its claim note records how the claim ended (`ended`), or when it has
no readable note (an orphan nothing will ever report). `retention.keep_days` after its last change it is
removed, or, in mode `bundle`, first packed as RUN_ROOT/.bundles/TASK-ID.ATTEMPT.tar.gz (task.json,
snapshot.json, result.json or error.json: enough to replay the run; created 0600, the claim token left
out). An open claim's run directory, or one the engine is running, is never touched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import shutil
import stat
import tarfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from agent.claims import read_note
from agent.site import Retention
from vqpu_protocol.rundir import (
    ERROR_FILE,
    RESULT_FILE,
    SNAPSHOT_FILE,
    TASK_FILE,
    RunDirError,
    parse_run_dir_name,
    private_dir,
    read_file,
)

log = logging.getLogger("agent.retention")

BUNDLE_DIR = ".bundles"
BUNDLE_SUFFIX = ".tar.gz"
BUNDLED = (TASK_FILE, SNAPSHOT_FILE, RESULT_FILE, ERROR_FILE)
DAY_S = 86_400.0


@dataclass
class Swept:
    removed: list[str] = field(default_factory=list)
    bundled: list[str] = field(default_factory=list)
    bundles_removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep(run_root: Path, policy: Retention, *, busy: Collection[Path] = (), now: float | None = None) -> Swept:
    """One pass over run_root: each finished run directory older than `keep_days` removed or bundled."""
    now = time.time() if now is None else now
    cutoff = now - policy.keep_days * DAY_S
    swept = Swept()
    try:
        entries = sorted(os.scandir(run_root), key=lambda e: e.name)
    except FileNotFoundError:
        return swept
    for entry in entries:
        run_dir = run_root / entry.name
        if parse_run_dir_name(entry.name) is None or not entry.is_dir(follow_symlinks=False) or run_dir in busy:
            continue
        try:
            if not _finished(run_dir) or _last_change(run_dir) > cutoff:
                continue
            if policy.mode == "bundle":
                bundle(run_dir, private_dir(run_root / BUNDLE_DIR))
                swept.bundled.append(entry.name)
            _remove(run_dir)
            swept.removed.append(entry.name)
        except OSError as exc:
            log.warning("retention: cannot clear %s: %s", run_dir, exc)
            swept.failed.append(entry.name)
    if policy.mode == "bundle" and policy.bundle_keep_days is not None:
        swept.bundles_removed = _expire_bundles(run_root / BUNDLE_DIR, now - policy.bundle_keep_days * DAY_S)
    return swept


def _finished(run_dir: Path) -> bool:
    note = read_note(run_dir)
    return note is None or note.ended is not None


def _last_change(run_dir: Path) -> float:
    """The newest mtime of the directory and what is directly in it (the runner's log grows while it runs)."""
    newest = os.lstat(run_dir).st_mtime
    with os.scandir(run_dir) as entries:
        for entry in entries:
            newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _remove(run_dir: Path) -> None:
    st = os.lstat(run_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"{run_dir} is not a directory of this account's")
    shutil.rmtree(run_dir)  # descriptor-based on Linux: it never follows a symlink out of the directory


def bundle(run_dir: Path, into: Path) -> Path:
    """RUN_DIR's replay files as INTO/NAME.tar.gz, 0600 from creation, complete or not there at all."""
    name = run_dir.name + BUNDLE_SUFFIX
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    dir_fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                    for member in BUNDLED:
                        _add(tar, run_dir, member)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)
    return into / name


def _add(tar: tarfile.TarFile, run_dir: Path, member: str) -> None:
    path = run_dir / member
    if not os.path.lexists(path):
        return
    try:
        data = read_file(path)  # never through a link, never a special file
    except RunDirError as exc:
        raise OSError(f"{path}: {exc.message}") from None
    info = tarfile.TarInfo(f"{run_dir.name}/{member}")
    info.size, info.mode, info.mtime = len(data), 0o600, int(os.lstat(path).st_mtime)
    tar.addfile(info, io.BytesIO(data))


def _expire_bundles(bundles: Path, cutoff: float) -> list[str]:
    removed: list[str] = []
    try:
        entries = sorted(os.scandir(bundles), key=lambda e: e.name)
    except FileNotFoundError:
        return removed
    for entry in entries:
        old = entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff
        if entry.name.endswith(BUNDLE_SUFFIX) and old:
            os.unlink(bundles / entry.name)
            removed.append(entry.name)
    return removed
