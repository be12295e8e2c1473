"""API keys (hashed at rest, roles, reload on change) and the TTL device cache (invalidate at once)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from vqpu_service.adapters.auth import KeyRing, create_key
from vqpu_service.adapters.cache import TTLCache
from vqpu_service.domain.errors import Conflict, InvalidRequest, Unauthenticated
from vqpu_service.domain.model import Principal, Role


def test_a_created_key_authenticates_as_its_name_and_role_and_is_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, "alice", Role.USER)
    assert KeyRing(path).authenticate(f"Bearer {key}") == Principal("alice", Role.USER)
    assert key not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["keys"][0]["role"] == "user"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer vqpu_not-a-key"])
def test_missing_malformed_or_unknown_keys_are_unauthenticated(tmp_path: Path, header: str | None) -> None:
    path = tmp_path / "keys.json"
    create_key(path, "alice", Role.USER)
    with pytest.raises(Unauthenticated):
        KeyRing(path).authenticate(header)


def test_a_key_created_while_serving_is_accepted_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path)
    create_key(path, "alice", Role.USER)
    ring.authenticate(f"Bearer {create_key(path, 'ops', Role.ADMIN)}")
    key = create_key(path, "agent-1", Role.AGENT)
    assert ring.authenticate(f"Bearer {key}").role is Role.AGENT


def test_key_names_are_unique_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_key(path, "alice", Role.USER)
    with pytest.raises(Conflict):
        create_key(path, "alice", Role.ADMIN)
    with pytest.raises(InvalidRequest):
        create_key(path, "has space", Role.USER)


def test_a_damaged_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"name": "x", "role": "superuser", "sha256": "00"}]}')
    with pytest.raises(InvalidRequest, match="not valid"):
        KeyRing(path).authenticate("Bearer vqpu_x")


def test_the_ttl_cache_serves_until_expiry_and_forgets_at_once_on_invalidate() -> None:
    clock = [0.0]
    cache: TTLCache[str, int] = TTLCache(5.0, clock=lambda: clock[0])
    loads = iter(range(100))
    assert cache.get("fez", lambda: next(loads)) == 0
    clock[0] = 4.9
    assert cache.get("fez", lambda: next(loads)) == 0
    clock[0] = 5.1
    assert cache.get("fez", lambda: next(loads)) == 1
    cache.invalidate("fez")
    assert cache.get("fez", lambda: next(loads)) == 2


def test_a_load_that_raced_an_invalidation_is_not_kept() -> None:
    cache: TTLCache[str, str] = TTLCache(60.0)

    def stale_load() -> str:
        cache.invalidate("fez")  # a mutation commits while this read is in flight
        return "stale"

    assert cache.get("fez", stale_load) == "stale"
    assert cache.get("fez", lambda: "fresh") == "fresh"
