"""API keys from a keys file, hashed at rest: `{"keys": [{"name", "role", "sha256", "created_at"}]}`.

A key is 256 random bits, so a plain SHA-256 is enough to make the file useless to a reader (no
dictionary to attack). The file is re-read when it changes, so `vqpu-server keys create` takes
effect on a running server.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.errors import Conflict, InvalidRequest, Unauthenticated
from vqpu_service.domain.model import Principal, Role

PREFIX = "vqpu_"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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


class KeyRing:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
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
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._by_digest = {e["sha256"]: Principal(e["name"], Role(e["role"])) for e in _read(self._path)}
                self._stamp = stamp
            return self._by_digest
