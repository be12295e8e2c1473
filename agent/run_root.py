"""The run root, checked before the agent trusts it with any tenant's task, and made private if missing.

Another account on the login node must not be able to own, replace or write the run root: whoever can
swap a run directory can forge a result the agent then reports. The rules (docs/agent.md, "run_root"):

- run_root is a real directory (never a symlink) owned by the agent's account and writable by no one
  else. Missing, it is created 0700, missing parents too, and checked again after `mkdir`: a directory
  someone else made first in between is refused like any other. An existing one that others may read
  is narrowed to 0700 (it is the agent's own; nothing in it is anyone else's to read).
- `run_root_policy: private` (the default): every directory above it belongs to root or the agent's
  account and none is writable by its group or others, unless it has the sticky bit (like /tmp): there
  no one but the entry's owner and root can rename or remove the entry the agent made. A symlink on
  the way belongs to root or the agent's account, and the directories it leads to are checked as well.
- `run_root_policy: shared-filesystem`: the directories above may belong to others (a project
  directory on a shared filesystem, writable by a group the site trusts); run_root itself is still
  checked as above.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from agent.site import RunRootPolicy
from vqpu_protocol.rundir import PRIVATE_DIR_MODE, make_missing_dirs

log = logging.getLogger("agent")

_HINT = (
    "use a run_root under the agent's home (e.g. ~/.local/share/vqpu/runs), or set run_root_policy: "
    "shared-filesystem if the directories above it are a shared filesystem the site trusts"
)


class RunRootError(Exception):
    """The agent must not use this run root; the message names the path and what is wrong with it."""


def ensure_run_root(run_root: Path, policy: RunRootPolicy = "private") -> None:
    """Check the run root and the directories above it (per `policy`), creating what is missing 0700."""
    me = os.geteuid()
    if policy == "private":
        _check_ancestors(run_root, me)
    _create_missing(run_root)
    if policy == "private":  # again: a parent made just now, by us or by someone quicker
        _check_ancestors(run_root, me)
    _check_root(run_root, me)


def _check_ancestors(run_root: Path, me: int) -> None:
    for directory in _ancestors(run_root):
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            continue  # not made yet: made by us 0700, then checked again
        owner = st.st_uid
        if stat.S_ISLNK(st.st_mode):
            if owner not in (0, me):
                raise RunRootError(
                    f"run_root {run_root}: {directory} is a symlink owned by uid {owner}, not by root or this "
                    f"agent's account (uid {me}); {_HINT}"
                )
            continue  # where it leads is checked through the resolved path
        if not stat.S_ISDIR(st.st_mode):
            raise RunRootError(f"run_root {run_root}: {directory} is not a directory")
        if owner not in (0, me):
            raise RunRootError(
                f"run_root {run_root}: {directory} is owned by uid {owner}, not by root or this agent's account "
                f"(uid {me}); {_HINT}"
            )
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise RunRootError(
                f"run_root {run_root}: {directory} is writable by {_writers(st.st_mode)} (mode "
                f"{_mode(st.st_mode)}) without the sticky bit: another account could replace what is in it; {_HINT}"
            )


def _ancestors(run_root: Path) -> list[Path]:
    """The directories above run_root as written (from /), then as resolved, when a symlink leads elsewhere."""
    written = list(reversed(run_root.parents))
    resolved = Path(os.path.realpath(run_root.parent))
    seen = set(written)
    return written + [d for d in [*reversed(resolved.parents), resolved] if d not in seen]


def _create_missing(run_root: Path) -> None:
    try:
        made = make_missing_dirs(run_root)  # one someone was quicker to make: the checks that follow judge it
    except OSError as exc:
        raise RunRootError(f"run_root {run_root}: cannot create {exc.filename}: {exc.strerror}") from None
    for directory in made:
        log.info("created %s (mode 0700)", directory)


def _check_root(run_root: Path, me: int) -> None:
    try:
        st = os.lstat(run_root)
    except OSError as exc:
        raise RunRootError(f"run_root {run_root}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise RunRootError(
            f"run_root {run_root} is a symlink (to {os.readlink(run_root)}), owned by uid {st.st_uid}: "
            "name the directory itself"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise RunRootError(f"run_root {run_root} is not a directory")
    if st.st_uid != me:
        raise RunRootError(
            f"run_root {run_root} is owned by uid {st.st_uid}, not by this agent's account (uid {me}): "
            "another account made it; remove it or choose another run_root"
        )
    if st.st_mode & 0o022:
        raise RunRootError(
            f"run_root {run_root} is writable by {_writers(st.st_mode)} (mode {_mode(st.st_mode)}): what is in it "
            "cannot be trusted; make it 0700 after checking its contents, or choose another run_root"
        )
    if st.st_mode & 0o077:
        _narrow(run_root, st)


def _narrow(run_root: Path, seen: os.stat_result) -> None:
    """Make our own run root 0700, through a descriptor of the very directory checked (never a swapped-in one)."""
    fd = os.open(run_root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino):
            raise RunRootError(f"run_root {run_root} changed while it was checked")
        os.fchmod(fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)
    log.warning("run_root %s was mode %s: made it 0700 (it holds tenants' work)", run_root, _mode(seen.st_mode))


def _writers(mode: int) -> str:
    return {0o020: "its group", 0o002: "all accounts"}.get(mode & 0o022, "its group and all accounts")


def _mode(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"
