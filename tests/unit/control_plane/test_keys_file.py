"""Who may change the keys file decides who is admin: the server trusts it as OpenSSH trusts
`authorized_keys` (issue 17). Writable by others or owned by another account: refused, at start and
while serving. Readable by others: served, with a warning (digests only, but every name and role)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from vqpu_service.adapters.auth import KeyRing, check_keys_file, create_key
from vqpu_service.domain.errors import InvalidRequest, Unavailable
from vqpu_service.domain.model import Role


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys.json"
    return path, create_key(path, "ops", Role.ADMIN)


def test_a_created_keys_file_is_private_and_trusted(keys: tuple[Path, str]) -> None:
    path, key = keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check_keys_file(path)
    assert KeyRing(path).authenticate(f"Bearer {key}").role is Role.ADMIN


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_keys_file_others_can_write_stops_the_server_from_starting(keys: tuple[Path, str], mode: int) -> None:
    path, _ = keys
    path.chmod(mode)
    with pytest.raises(InvalidRequest) as refused:
        check_keys_file(path)
    assert refused.value.code == "INVALID_SETTINGS"
    assert str(path) in refused.value.message and "writable by other accounts" in refused.value.message


def test_a_keys_file_made_writable_while_serving_authenticates_nobody_until_it_is_fixed(
    keys: tuple[Path, str],
) -> None:
    path, key = keys
    ring = KeyRing(path)
    assert ring.authenticate(f"Bearer {key}").name == "ops"
    path.chmod(0o666)  # an anyone-may-add-an-admin file: fail closed
    with pytest.raises(Unavailable, match="writable by other accounts"):
        ring.authenticate(f"Bearer {key}")
    path.chmod(0o600)
    assert ring.authenticate(f"Bearer {key}").name == "ops"


def test_a_keys_file_in_a_directory_others_can_write_is_refused_unless_the_directory_is_sticky(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "keys.json"
    create_key(path, "ops", Role.ADMIN)
    shared.chmod(0o777)
    with pytest.raises(InvalidRequest, match="could replace the file"):
        check_keys_file(path)
    shared.chmod(0o1777)  # like /tmp: others cannot rename or remove what is ours
    check_keys_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another account needs root")
def test_a_keys_file_another_account_owns_is_refused(keys: tuple[Path, str]) -> None:
    path, _ = keys
    os.chown(path, 64_123, 64_123)
    with pytest.raises(InvalidRequest, match="belongs to uid 64123"):
        check_keys_file(path)


def test_a_keys_file_others_can_read_is_served_with_a_warning_naming_it(
    keys: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    path, key = keys
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="vqpu_service.adapters.auth"):
        check_keys_file(path)
        assert KeyRing(path).authenticate(f"Bearer {key}").name == "ops"
    assert any(str(path) in r.getMessage() and "readable by other accounts" in r.getMessage() for r in caplog.records)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # warned about, not changed behind the operator's back


def test_no_keys_file_is_no_keys(tmp_path: Path) -> None:
    check_keys_file(tmp_path / "none.json")
