"""Where `vqpu` and `Client` take the API key from: the environment or a private key file; `--key` only
with a warning, because every account on the machine reads a process's command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vqpu_client import Client, errors
from vqpu_client.cli import main
from vqpu_client.cli.exits import Exit
from vqpu_client.keys import read_key_file

KEY = "vqpu_u_0123456789abcdef"


class Made(Exception):
    """Raised by the fake client factory: the command got as far as making a client, with this key."""


def _record(url: str, key: str) -> Any:
    raise Made(key)


def _key_file(tmp_path: Path, mode: int, content: str = KEY + "\n", name: str = "key") -> Path:
    path = tmp_path / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    os.chmod(path, mode)  # the test's own file, made open on purpose
    return path


def _key_used(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The key the command would send, and what it wrote on stderr."""
    with pytest.raises(Made) as made:
        main([*argv, "devices", "list"], environ=environ, make_client=_record)
    return str(made.value), capsys.readouterr().err


def test_the_key_comes_from_vqpu_key_without_any_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert _key_used([], {"VQPU_KEY": KEY}, capsys) == (KEY, "")


def test_a_key_on_the_command_line_works_but_warns_that_every_account_can_read_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, err = _key_used(["--key", KEY], {}, capsys)
    assert key == KEY
    assert err.startswith("vqpu: warning: --key puts your API key in this process's command line")
    assert "every account on this machine" in err and "VQPU_KEY" in err and "--key-file" in err
    _, as_json = _key_used(["--json", "--key", KEY], {}, capsys)
    assert json.loads(as_json)["warning"]["code"] == "KEY_ON_COMMAND_LINE"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_private_key_file_gives_the_key(how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _key_file(tmp_path, 0o600)
    argv, environ = (["--key-file", str(path)], {}) if how == "flag" else ([], {"VQPU_KEY_FILE": str(path)})
    assert _key_used(argv, environ, capsys) == (KEY, "")


def test_the_key_file_flag_wins_over_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _key_file(tmp_path, 0o400)
    assert _key_used(["--key-file", str(path)], {"VQPU_KEY": "k-env"}, capsys)[0] == KEY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_open_to_other_accounts_is_refused_naming_its_path_and_mode(
    mode: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _key_file(tmp_path, mode)
    assert main(["--json", "--key-file", str(path), "devices", "list"], environ={}, make_client=_record) == Exit.USAGE
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["code"] == "USAGE" and error["detail"] == {"path": str(path), "mode": f"{mode:04o}"}
    assert f"{path} has mode {mode:04o}" in error["message"] and f"chmod 600 {path}" in error["message"]
    assert KEY not in error["message"]
    assert main(["--key-file", str(path), "devices", "list"], environ={}, make_client=_record) == Exit.USAGE
    assert f"{mode:04o}" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another account needs root")
def test_a_key_file_another_account_owns_is_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path, 0o600)
    os.chown(path, 64_123, 64_123)
    with pytest.raises(errors.KeyFileError, match="owned by uid 64123, not by you"):
        read_key_file(path)


@pytest.mark.parametrize(
    ("content", "said"),
    [("", "does not hold one API key"), (f"{KEY} second-word", "more than one word"), ("x" * 5000, "larger than")],
)
def test_a_key_file_that_is_not_one_key_is_refused_without_showing_its_content(
    content: str, said: str, tmp_path: Path
) -> None:
    with pytest.raises(errors.KeyFileError, match=said) as refused:
        read_key_file(_key_file(tmp_path, 0o600, content))
    assert KEY not in str(refused.value)


def test_a_key_file_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # would block a plain open; refused at once
    with pytest.raises(errors.KeyFileError, match="not a regular file"):
        read_key_file(fifo)
    with pytest.raises(errors.KeyFileError, match="cannot read key file"):
        read_key_file(tmp_path / "missing")


@pytest.mark.parametrize(
    ("argv", "environ", "said"),
    [
        (["--key", "a", "--key-file", "b"], {}, "both --key and --key-file"),
        ([], {"VQPU_KEY": "a", "VQPU_KEY_FILE": "b"}, "both VQPU_KEY and VQPU_KEY_FILE"),
        ([], {}, "no API key: set VQPU_KEY, or VQPU_KEY_FILE or --key-file"),
    ],
)
def test_two_keys_or_none_are_usage_errors_before_anything_is_sent(
    argv: list[str], environ: dict[str, str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--json", "devices", "list"], environ=environ, make_client=_record) == Exit.USAGE
    assert said in json.loads(capsys.readouterr().err.splitlines()[-1])["error"]["message"]


def test_the_python_client_reads_a_private_key_file_and_refuses_an_open_one(tmp_path: Path) -> None:
    with Client("http://vqpu.invalid", key_file=_key_file(tmp_path, 0o600)) as vqpu:
        assert vqpu._http.headers["Authorization"] == f"Bearer {KEY}"
    with pytest.raises(errors.KeyFileError, match="mode 0644"):
        Client("http://vqpu.invalid", key_file=_key_file(tmp_path, 0o644, name="open"))
    with pytest.raises(errors.UsageError, match="key= or key_file="):
        Client("http://vqpu.invalid")
