"""API keys from a keys file, hashed at rest: `{"keys": [{"name", "role", "sha256", "created_at"}]}`.

A key is 256 random bits, so a plain SHA-256 is enough to make the file useless to a reader (no
dictionary to attack). The file is re-read when it changes, so `vqpu-server keys create` takes
effect on a running server.

Who may change the file decides who is admin, so the server trusts it as OpenSSH trusts
`authorized_keys`: a file (or its directory) that another account owns or can write is refused, at
start and on every re-read; a file other accounts can read is served with a warning (it names every
key and role, though the digests are useless to them). `create_key` writes it 0600 from the first byte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.errors import Conflict, InvalidRequest, Unauthenticated, Unavailable
from vqpu_service.domain.model import Principal, Role

PREFIX = "vqpu_"
log = logging.getLogger(__name__)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(path: Path, name: str, role: Role) -> str:
    """Add a key to the file (created 0600 if missing) and return the key; names are unique."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_.@" for c in name):
        raise InvalidRequest("a key name is 1-64 characters of letters, digits, - _ . @", {"name": name})
    entries = _read(path)
    if any(e["name"] == name for e in entries):
        raise Conflict(f"a key named {name!r} exists already", {"name": name}, code=ErrorCode.KEY_EXISTS)
    key = PREFIX + secrets.token_urlsafe(32)
    entries.append(
        {"name": name, "role": str(role), "sha256": digest(key), "created_at": datetime.now(UTC).isoformat()}
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # never write through a file (or a link) someone else left there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"keys": entries}, fh, indent=2)
    os.replace(tmp, path)
    return key


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        entries = list(data["keys"])
        for e in entries:
            Role(e["role"]), e["name"], e["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"keys file {path} is not valid: {exc}") from exc
    return entries


def untrusted(path: Path) -> str | None:
    """Why the keys file cannot be trusted (another account owns it or can change it), or None."""
    try:
        st = path.stat()
        parent = path.parent.stat()
    except FileNotFoundError:
        return None  # no file, no keys: every request is 401
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return f"keys file {path} belongs to uid {st.st_uid}, not to this server's account (uid {me})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"keys file {path} is writable by other accounts (mode {stat.filemode(st.st_mode)}): chmod 600 it"
    if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not parent.st_mode & stat.S_ISVTX:
        return f"the directory of keys file {path} is writable by other accounts: they could replace the file"
    return None


def exposure(path: Path) -> str | None:
    """A warning when other accounts can read the keys file, or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (
            f"keys file {path} is readable by other accounts (mode {stat.filemode(mode)}): it names every key "
            "and its role; chmod 600 it"
        )
    return None


def check_keys_file(path: Path) -> None:
    """At start: refuse an untrusted keys file (exit status 2), warn about a readable one."""
    reason = untrusted(path)
    if reason is not None:
        raise InvalidRequest(f"refusing to start: {reason}", {"keys_file": str(path)}, code=ErrorCode.INVALID_SETTINGS)
    warning = exposure(path)
    if warning is not None:
        log.warning("%s", warning)


class KeyRing:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._by_digest: dict[str, Principal] = {}

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <key>'")
        principal = self._keys().get(digest(key.strip()))
        if principal is None:
            raise Unauthenticated("unknown API key")
        return principal

    def _keys(self) -> dict[str, Principal]:
        try:
            st = self._path.stat()
            stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_uid, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                reason = untrusted(self._path)
                if reason is not None:  # fail closed until it is fixed: nobody is authenticated by it
                    self._stamp, self._by_digest = None, {}
                    raise Unavailable(f"the server refuses its keys file: {reason}")
                warning = exposure(self._path)
                if warning is not None:
                    log.warning("%s", warning)
                self._by_digest = {e["sha256"]: Principal(e["name"], Role(e["role"])) for e in _read(self._path)}
                self._stamp = stamp
            return self._by_digest
