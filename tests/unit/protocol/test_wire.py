"""The protocol's strict wire types and the safe decoding every request body goes through."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from vqpu_protocol.api.tasks import SubmitTask
from vqpu_protocol.codes import ErrorCode, code_for_fields
from vqpu_protocol.limits import MAX_JSON_DEPTH, MAX_SERIAL
from vqpu_protocol.wire import UnsafeText, decode_json, unsafe_reason

SUBMIT = {"device": "line-16", "circuit": "OPENQASM 3.0;", "dialect": "qasm3", "shots": 10}


@pytest.mark.parametrize(
    "body",
    [
        '{"a": "nul \\u0000 inside"}',
        '{"a": ["\\ud800"]}',
        '{"\\udc00": 1}',
        '{"a": {"b": "\\udbff trailing high surrogate"}}',
    ],
)
def test_decode_json_refuses_text_that_cannot_be_stored(body: str) -> None:
    with pytest.raises(UnsafeText):
        decode_json(body.encode())


def test_decode_json_keeps_real_astral_characters_and_ordinary_text() -> None:
    assert decode_json(b'{"emoji": "\\ud83d\\ude00", "plain": "ok"}') == {"emoji": "😀", "plain": "ok"}


def test_decode_json_bounds_nesting_even_past_pythons_recursion_limit() -> None:
    assert decode_json(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()) is not None
    with pytest.raises(UnsafeText, match="nests deeper"):
        decode_json(("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode())
    with pytest.raises(UnsafeText, match="nests deeper"):
        decode_json(("[" * 200_000 + "]" * 200_000).encode())


@pytest.mark.parametrize("body", [b"{not json", b"\xff", b'{"a": "\xc3\x28"}'])
def test_decode_json_raises_a_decode_error_for_malformed_json_and_for_bytes_that_are_not_utf8(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        decode_json(body)


def test_unsafe_reason_names_the_problem() -> None:
    assert unsafe_reason("fine") is None
    assert unsafe_reason("a\x00b") == "contains a NUL character"
    assert unsafe_reason("a\ud800b") == "contains a lone UTF-16 surrogate"


@pytest.mark.parametrize(
    "change",
    [{"shots": True}, {"shots": "10"}, {"shots": 10.0}, {"seed": "1"}, {"epoch": MAX_SERIAL + 1}, {"device": "a\x00"}],
)
def test_submissions_are_strict(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SubmitTask.model_validate({**SUBMIT, **change})


def test_a_submission_with_options_as_strings_from_json_is_accepted() -> None:
    task = SubmitTask.model_validate({**SUBMIT, "options": {"noise_model": "relaxation", "device": "GPU"}})
    assert task.options.noise_model == "relaxation" and task.options.device == "GPU"


def test_a_problem_confined_to_one_field_gets_that_fields_code() -> None:
    assert code_for_fields(["options", "options"], ErrorCode.INVALID_REQUEST) is ErrorCode.INVALID_OPTIONS
    assert code_for_fields(["shots"], ErrorCode.INVALID_TASK) is ErrorCode.INVALID_SHOTS
    assert code_for_fields(["shots", "options"], ErrorCode.INVALID_REQUEST) is ErrorCode.INVALID_REQUEST
    assert code_for_fields(["device"], ErrorCode.INVALID_REQUEST) is ErrorCode.INVALID_REQUEST
