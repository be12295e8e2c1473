"""Server settings: every field from `VQPU_<FIELD>`, the command line wins, a bad value names its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqpu_service import cli
from vqpu_service.config import Settings, env_name, load_settings
from vqpu_service.domain.errors import InvalidRequest


def test_every_setting_has_an_environment_variable_that_sets_it() -> None:
    values = {
        "database_url": "sqlite:////tmp/elsewhere.db",
        "keys_file": "/tmp/keys.json",
        "register_catalog": "false",
        "auto_requeue": "1",
    }
    environ = {env_name(f): values.get(f, "7") for f in Settings.model_fields}
    settings = load_settings(environ)
    for field, default in Settings().model_dump().items():
        assert getattr(settings, field) != default, f"{env_name(field)} did not set {field}"
    assert settings.sse_queue_size == 7 and settings.claim_recheck_s == 7.0
    assert settings.auto_requeue is True and settings.register_catalog is False
    assert settings.keys_file == Path("/tmp/keys.json")


def test_the_command_line_wins_over_the_environment_and_other_vqpu_variables_are_ignored() -> None:
    environ = {"VQPU_DATABASE_URL": "sqlite:////tmp/env.db", "VQPU_REQUIRE_SLURM": "1"}
    settings = load_settings(environ, database_url="sqlite:////tmp/cli.db", keys_file=None)
    assert settings.database_url == "sqlite:////tmp/cli.db"
    assert settings.keys_file == Settings().keys_file  # None means "not given", not "unset it"


@pytest.mark.parametrize(
    ("environ", "overrides", "named"),
    [
        ({"VQPU_SSE_QUEUE_SIZE": "lots"}, {}, "VQPU_SSE_QUEUE_SIZE"),
        ({"VQPU_CLAIM_RECHECK_S": "0"}, {}, "VQPU_CLAIM_RECHECK_S"),
        ({"VQPU_MAX_CLAIM_WAIT_S": "301"}, {}, "VQPU_MAX_CLAIM_WAIT_S"),
        ({"VQPU_AUTO_REQUEUE": "maybe"}, {}, "VQPU_AUTO_REQUEUE"),
        ({}, {"database_url": 5}, "database_url (command line)"),
    ],
)
def test_a_bad_value_is_a_typed_error_naming_where_it_was_set(
    environ: dict[str, str], overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        load_settings(environ, **overrides)
    assert err.value.code == "INVALID_SETTINGS"
    assert named in err.value.message


def test_the_cli_refuses_a_bad_setting_with_status_2_and_the_variable_in_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VQPU_LIVENESS_WINDOW_S", "-1")
    status = cli.main(["keys", "create", "--role", "user", "--name", "a", "--keys-file", str(tmp_path / "k.json")])
    assert status == 2
    err = capsys.readouterr().err
    assert "INVALID_SETTINGS" in err and "VQPU_LIVENESS_WINDOW_S" in err
    assert not (tmp_path / "k.json").exists()  # refused before doing anything


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VQPU_MAX_SHOTS": "10000001"}, ["VQPU_MAX_SHOTS"]),  # every runner refuses more than 10^7
        ({"VQPU_MAX_CIRCUIT_BYTES": str(64 * 1024 * 1024)}, ["VQPU_MAX_CIRCUIT_BYTES"]),
        ({"VQPU_CLAIM_RECHECK_S": "40"}, ["VQPU_CLAIM_RECHECK_S", "VQPU_MAX_CLAIM_WAIT_S"]),
        ({"VQPU_SWEEP_INTERVAL_S": "61"}, ["VQPU_SWEEP_INTERVAL_S", "VQPU_LIVENESS_WINDOW_S"]),
        ({"VQPU_CLAIM_ACK_WINDOW_S": "2"}, ["VQPU_SWEEP_INTERVAL_S", "VQPU_CLAIM_ACK_WINDOW_S"]),
        (
            {"VQPU_MAX_BODY_BYTES": "1000", "VQPU_MAX_CIRCUIT_BYTES": "2000"},
            ["VQPU_MAX_CIRCUIT_BYTES", "VQPU_MAX_BODY_BYTES"],
        ),
    ],
)
def test_settings_that_contradict_each_other_or_the_protocol_are_refused_naming_the_variables(
    environ: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as err:
        load_settings(environ)
    assert err.value.code == "INVALID_SETTINGS"
    for variable in named:
        assert variable in err.value.message


def test_the_protocols_own_limits_are_valid_settings() -> None:
    settings = load_settings({"VQPU_MAX_SHOTS": "10000000", "VQPU_CLAIM_RECHECK_S": "30"})
    assert settings.max_shots == 10_000_000 and settings.claim_recheck_s == settings.max_claim_wait_s
