"""The `vqpu` command line's parsing: global options anywhere, run options from flags, and bad arguments
reported as typed usage errors (exit 2, JSON on stderr with --json) before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vqpu_client.cli import COMMANDS, main
from vqpu_client.cli.arguments import DEFAULT_URL, build_parser, run_options
from vqpu_client.cli.exits import CliError, Exit

NO_CLIENT = "a command that fails to parse must not reach for a client"


def _parse(argv: list[str], environ: dict[str, str] | None = None) -> Any:
    return build_parser(environ or {}, COMMANDS).parse_args(argv)


def _refuse(url: str, key: str) -> Any:
    raise AssertionError(NO_CLIENT)


def test_global_options_come_from_the_environment_and_may_follow_the_command() -> None:
    args = _parse(["devices", "list"], {"VQPU_URL": "http://cp:9000", "VQPU_KEY": "k-env"})
    assert (args.url, args.key, args.json, args.run) == ("http://cp:9000", None, False, COMMANDS["devices list"])
    after = _parse(["devices", "show", "ibm-fez", "--json", "--key-file", "k.txt", "--epoch", "2"])
    assert (after.url, after.key_file, after.json, after.epoch) == (DEFAULT_URL, "k.txt", True, 2)
    before = _parse(["--json", "--url", "http://x", "status", "t-1"])
    assert (before.json, before.url, before.task) == (True, "http://x", "t-1")


def test_submit_flags_become_validated_run_options() -> None:
    args = _parse(
        [
            "submit", "c.qasm", "--device", "ibm-fez", "--shots", "100", "--noise-model", "relaxation",
            "--noise-scale", "gate_2q=2.5", "--noise-scale", "relaxation=0", "--noise-disable", "readout",
            "--memory", "--tag", "a", "--tag", "b", "--seed", "7", "--epoch", "3",
        ]
    )  # fmt: skip
    options = run_options(args)
    assert options is not None
    assert options.noise_model == "relaxation" and options.memory is True
    assert options.noise.scale == {"gate_2q": 2.5, "relaxation": 0.0} and options.noise.disable == ["readout"]
    assert (args.tag, args.seed, args.epoch, args.shots, args.wait) == (["a", "b"], 7, 3, 100, False)
    assert run_options(_parse(["submit", "c.qasm", "--device", "d", "--shots", "1"])) is None


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--noise-scale", "relaxation=2"], "relaxation exists only under noise_model 'relaxation'"),
        (["--noise-scale", "gate_1q=2", "--noise-disable", "gate_1q"], "both scaled and disabled"),
        (["--noise-scale", "gate_1q=2", "--noise-scale", "gate_1q=3"], "names gate_1q more than once"),
        (["--noise-scale", "gate_1q=-1"], "greater than or equal to 0"),
    ],
)
def test_contradictory_run_options_are_usage_errors_naming_the_problem(flags: list[str], said: str) -> None:
    args = _parse(["submit", "c.qasm", "--device", "d", "--shots", "1", *flags])
    with pytest.raises(CliError, match=said) as refused:
        run_options(args)
    assert refused.value.exit_status is Exit.USAGE


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["submit", "c.qasm", "--shots", "10"], "--device"),
        (["submit", "c.qasm", "--device", "d", "--shots", "0"], "must be at least 1"),
        (["submit", "c.qasm", "--device", "d", "--shots", "many"], "'many' is not an integer"),
        (["submit", "c.qasm", "--device", "d", "--shots", "1", "--noise-scale", "gate_3q=2"], "KIND=X"),
        (["submit", "c.qasm", "--device", "d", "--shots", "1", "--noise-model", "quantum"], "invalid choice"),
        (["submit", "c.qasm", "--device", "d", "--shots", "1", "--wait", "--timeout", "nan"], "positive number"),
        (["devices", "diff", "ibm-fez", "1"], "required: B"),
        (["devices", "show", "ibm-fez", "--epoch", "-1"], "-1 is negative"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_the_usage_error_as_json_on_stderr(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--json"] if argv else ["--json"], environ={}, make_client=_refuse) == Exit.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    error = json.loads(captured.err)["error"]
    assert error["code"] == "USAGE" and said in error["message"] and error["correlation_id"] is None
    assert error["detail"]["usage"].startswith("usage: vqpu")


def test_without_json_a_usage_error_is_one_line_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"], environ={}, make_client=_refuse) == Exit.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "vqpu: error: vqpu status: the following arguments are required: TASK",
        "usage: vqpu status [-h] [--url URL] [--key-file PATH] [--json] [-q] TASK",
    ]


def test_a_command_without_a_key_is_a_usage_error_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "devices", "list"], environ={}, make_client=_refuse) == Exit.USAGE
    assert "no API key" in json.loads(capsys.readouterr().err)["error"]["message"]


def test_an_unreadable_circuit_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    missing = str(tmp_path / "nope.qasm")
    argv = ["--json", "submit", missing, "--device", "d", "--shots", "1"]
    assert main(argv, environ={"VQPU_KEY": "k"}, make_client=_refuse) == Exit.USAGE
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["code"] == "USAGE" and error["detail"] == {"path": missing}


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "--help"], environ={}, make_client=_refuse) == Exit.OK
    assert "--noise-scale KIND=X" in capsys.readouterr().out
