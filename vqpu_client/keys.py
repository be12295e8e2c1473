"""Where an API key comes from: the environment or a key file private to its owner, never argv alone.

Every account on a machine can read every process's command line (`/proc/PID/cmdline`), so a key
given as an argument is a key given to them. A process's environment is readable only by its own
account (and root), and a key file is trusted only if it is private: owned by the account that reads
it, with no permission for its group or anyone else (the rule OpenSSH applies to private keys).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from vqpu_client.errors import KeyFileError, UsageError

KEY_ENV = "VQPU_KEY"
KEY_FILE_ENV = "VQPU_KEY_FILE"
MAX_KEY_FILE_BYTES = 4096
"""A key is one short token; a longer file is not a key file (and is not read whole)."""
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | getattr(os, "O_NONBLOCK", 0)
"""O_NONBLOCK: a FIFO planted at the path must not block the open; it is refused as not a regular file."""


def read_key_file(path: str | os.PathLike[str]) -> str:
    """The key in `path` (`~` expanded), once the file itself passes: checked open, not by its name."""
    shown = str(path)
    try:
        fd = os.open(Path(path).expanduser(), _OPEN_FLAGS)
    except OSError as exc:
        raise KeyFileError(shown, f"cannot read key file {shown}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _check(shown, info)
        content = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(content) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(shown, f"key file {shown} is larger than {MAX_KEY_FILE_BYTES} bytes: it holds no single key")
    return _one_key(shown, content)


def _check(shown: str, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(shown, f"key file {shown} is not a regular file")
    me = os.geteuid()
    if info.st_uid != me:
        raise KeyFileError(shown, f"key file {shown} is owned by uid {info.st_uid}, not by you (uid {me})")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            shown,
            f"key file {shown} has mode {mode:04o}: other accounts may read or replace it; "
            f"it must be private to you (chmod 600 {shown})",
            mode,
        )


def _one_key(shown: str, content: bytes) -> str:
    try:
        key = content.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError(shown, f"key file {shown} does not hold an API key (not ASCII text)") from None
    if not key or not all("!" <= ch <= "~" for ch in key):
        raise KeyFileError(shown, f"key file {shown} does not hold one API key (empty, or more than one word)")
    return key


def client_key(key: str | None, key_file: str | os.PathLike[str] | None) -> str:
    """What `Client(url, key)` / `Client(url, key_file=PATH)` was given: the key, or the one read from the file."""
    if key is not None and key_file is None:
        return key
    if key is None and key_file is not None:
        return read_key_file(key_file)
    raise UsageError("pass the API key as key= or key_file=, one of the two")


def resolve(environ: Mapping[str, str], *, key: str | None = None, key_file: str | None = None) -> str | None:
    """The key the command line's flags, or else the environment, name (None: none); flags win.

    Two flags, or two variables, that each give a key are refused: which one was meant is not guessed.
    """
    if key is not None and key_file is not None:
        raise UsageError("both --key and --key-file give a key: pass one")
    if key_file is not None:
        return read_key_file(key_file)
    if key is not None:
        return key
    env_key, env_file = environ.get(KEY_ENV) or None, environ.get(KEY_FILE_ENV) or None
    if env_key is not None and env_file is not None:
        raise UsageError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set: unset one")
    if env_file is not None:
        return read_key_file(env_file)
    return env_key
