"""The client's pure parts: the event-stream decoder, dialect detection, error mapping, retry safety."""

from __future__ import annotations

import json
import tracemalloc

import httpx
import pytest

from vqpu_client import calls, errors
from vqpu_client.sse import MAX_LINE_BYTES, Decoder, Lines, StreamBroken


def _frame(event_id: int, type_: str = "TASK_SUBMITTED") -> list[str]:
    data = {"id": event_id, "time": "2026-01-01T00:00:00+00:00", "type": type_, "subject": "t-1", "data": {}}
    return [f"id: {event_id}", f"event: {type_}", f"data: {json.dumps(data)}", ""]


def test_the_decoder_yields_each_event_once_and_skips_comments() -> None:
    decoder = Decoder()
    lines = [": keep-alive", "", *_frame(1), ": keep-alive", "", *_frame(2, "TASK_CLAIMED")]
    events = [e for line in lines for e in decoder.feed(line)]
    assert [(e.id, e.type) for e in events] == [(1, "TASK_SUBMITTED"), (2, "TASK_CLAIMED")]
    assert not decoder.evicted


def test_the_decoder_notices_eviction() -> None:
    decoder = Decoder()
    list(decoder.feed(": evicted: slow consumer, reconnect with Last-Event-ID"))
    assert decoder.evicted


def test_an_oversized_line_breaks_the_stream_instead_of_growing() -> None:
    with pytest.raises(StreamBroken):
        list(Decoder().feed("data: " + "x" * MAX_LINE_BYTES))


def test_data_that_is_not_an_event_breaks_the_stream() -> None:
    decoder = Decoder()
    list(decoder.feed("data: {not json"))
    with pytest.raises(StreamBroken):
        list(decoder.feed(""))


@pytest.mark.parametrize(
    ("source", "dialect"),
    [
        ("OPENQASM 2.0;\nqreg q[1];", "qasm2"),
        ("  // a comment\n/* block\n comment */ OPENQASM 3.0;\nqubit q;", "qasm3"),
        ("OPENQASM 3;\n", "qasm3"),
    ],
)
def test_the_dialect_comes_from_the_header(source: str, dialect: str) -> None:
    assert calls.dialect_of(source, None) == dialect


@pytest.mark.parametrize("source", ["qreg q[1];", "OPENQASM 4.0;", ""])
def test_a_circuit_without_a_known_header_needs_a_dialect(source: str) -> None:
    with pytest.raises(errors.UsageError, match="dialect"):
        calls.dialect_of(source, None)
    assert calls.dialect_of(source, "qasm2") == "qasm2"


def test_an_unknown_dialect_is_refused_before_sending() -> None:
    with pytest.raises(errors.UsageError):
        calls.dialect_of("OPENQASM 2.0;", "qasm4")


def test_bad_run_options_are_refused_before_sending() -> None:
    with pytest.raises(errors.UsageError, match="noise_model"):
        calls.options_body({"noise_model": "made-up"})
    assert calls.options_body({"noise_model": "relaxation"}) == {"noise_model": "relaxation"}
    assert calls.options_body({}) == {}


def _answer(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "INVALID_SHOTS", errors.InvalidRequestError),
        (401, "UNAUTHENTICATED", errors.AuthenticationError),
        (403, "FORBIDDEN", errors.PermissionDeniedError),
        (404, "NOT_FOUND", errors.NotFoundError),
        (409, "ILLEGAL_TRANSITION", errors.IllegalTransitionError),
        (409, "IDEMPOTENCY_CONFLICT", errors.IdempotencyConflictError),
        (409, "RESULT_NOT_READY", errors.ResultNotReadyError),
        (409, "NO_RESULT", errors.NoResultError),
        (413, "PAYLOAD_TOO_LARGE", errors.PayloadTooLargeError),
        (422, "NOT_ADMISSIBLE", errors.NotAdmissibleError),
        (503, "UNAVAILABLE", errors.UnavailableError),
        (500, "INTERNAL", errors.ServerError),
    ],
)
def test_each_error_answer_becomes_its_typed_exception(status: int, code: str, cls: type[errors.APIError]) -> None:
    body = {"error": {"code": code, "message": "m", "detail": {"x": 1}, "correlation_id": "c-1", "timestamp": "t"}}
    exc = calls.error_of(_answer(status, body, {"X-Correlation-ID": "c-1"}))
    assert type(exc) is cls
    assert (exc.code, exc.status, exc.detail, exc.correlation_id) == (code, status, {"x": 1}, "c-1")
    assert "c-1" in str(exc)


def test_a_not_admissible_error_lists_its_violations() -> None:
    violation = {"code": "NO_COUPLING", "line": 2, "gate": "cz", "operands": [0, 2], "message": "no coupler"}
    body = {"error": {"code": "NOT_ADMISSIBLE", "message": "m", "detail": {"violations": [violation]}}}
    exc = calls.error_of(_answer(422, body))
    assert isinstance(exc, errors.NotAdmissibleError)
    assert exc.violations == [violation]


def test_an_answer_that_is_not_the_error_body_keeps_its_status_and_words() -> None:
    exc = calls.error_of(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(exc, errors.ServerError)
    assert exc.code == "HTTP_502"
    assert "Bad Gateway" in exc.message


def test_device_writes_are_resent_only_when_they_certainly_never_left() -> None:
    write = calls.device_write("PUT", "/v1/devices/x", {})
    assert write.may_retry(httpx.ConnectError("refused"))
    assert not write.may_retry(httpx.ReadError("reset"))
    assert not write.may_retry(None)  # a 503 after the body was sent
    read = calls.Call("GET", "/v1/devices", calls.model(calls.EpochView))
    assert read.may_retry(httpx.ReadError("reset")) and read.may_retry(None)


def test_every_attempt_of_one_submit_carries_the_same_idempotency_key() -> None:
    call = calls.submit(
        "d", "OPENQASM 3.0;", shots=1, dialect=None, seed=None, epoch=None, tags=(), options=None, idempotency_key=None
    )
    http = httpx.Client(base_url="http://x")
    first, second = call.request(http), call.request(http)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    other = calls.submit(
        "d", "OPENQASM 3.0;", shots=1, dialect=None, seed=None, epoch=None, tags=(), options=None, idempotency_key=None
    )
    assert other.request(http).headers["Idempotency-Key"] != first.headers["Idempotency-Key"]
    http.close()


# --- the event-stream reader holds at most about a line's limit ---------------------------------


def test_lines_are_cut_at_lf_crlf_and_cr_even_when_a_chunk_splits_them() -> None:
    lines = Lines()
    chunks = [b"id: 1\r", b"\ndata: a\rdata: b\n", b"\n: keep-", b"alive\r\n\r", b"\nlast"]
    assert [line for chunk in chunks for line in lines.feed(chunk)] == [
        "id: 1", "data: a", "data: b", "", ": keep-alive", ""
    ]  # fmt: skip
    assert list(lines.feed(b"\n")) == ["last"]  # the CRLF's LF was not a second line end


def test_an_endless_line_breaks_the_stream_once_past_the_limit_holding_little_more_than_it() -> None:
    chunk = b"data: " + b"x" * 65536
    lines, fed = Lines(), 0
    tracemalloc.start()
    try:
        with pytest.raises(StreamBroken, match=f"more than {MAX_LINE_BYTES} bytes"):
            for _ in range(300 * 16):  # 300 MiB, if it were all read
                fed += len(chunk)
                list(lines.feed(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fed <= MAX_LINE_BYTES + 2 * len(chunk)  # it stopped reading at the limit
    assert peak < 3 * MAX_LINE_BYTES


def test_many_empty_data_lines_count_against_the_events_limit() -> None:
    decoder = Decoder()
    with pytest.raises(StreamBroken, match="an event of more than"):
        for _ in range(MAX_LINE_BYTES + 1):
            list(decoder.feed("data:"))


# --- wait() holds its deadline while a stream is open ----------------------------------------


def test_a_stream_near_the_deadline_is_reopened_rather_than_trusted_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(calls.time, "monotonic", lambda: now[0])
    waiter = calls.Waiter("t-1", 2.0, 300.0)
    assert waiter.open_stream() == 2.0  # the stream's reads are never trusted past the deadline
    now[0] += calls.DEADLINE_SLACK_S * 0.9  # a keep-alive arrives: the next read may last 2 s more
    assert not waiter.reopen_due()
    now[0] += calls.DEADLINE_SLACK_S * 0.2  # later: a 2 s read would end more than the slack past the deadline
    assert waiter.reopen_due()
    assert waiter.open_stream() == pytest.approx(2.0 - 1.1 * calls.DEADLINE_SLACK_S)
    now[0] += 5.0
    assert waiter.reopen_due()
    with pytest.raises(errors.WaitTimeoutError, match=r"within 2\.0 s"):
        waiter.check_deadline()
    unbounded = calls.Waiter("t-1", None, 300.0)
    assert unbounded.open_stream() == calls.STREAM_READ_TIMEOUT_S and not unbounded.reopen_due()


def test_requests_made_while_waiting_never_time_out_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls.time, "monotonic", lambda: 50.0)
    client_timeout = httpx.Timeout(30.0)
    capped = calls.within(client_timeout, 52.5, read=60.0)
    assert (capped.connect, capped.read, capped.write, capped.pool) == (2.5, 2.5, 2.5, 2.5)
    assert calls.within(client_timeout, None, read=60.0).read == 60.0
    assert calls.retry_delay(calls.Backoff(base_s=100, cap_s=100), 3, 51.0) <= 1.0
    read = calls.Call("GET", "/v1/tasks/t-1", calls.model(calls.TaskView))
    assert calls.give_up(read, 0, 5, None, 49.0) and not calls.give_up(read, 0, 5, None, 51.0)
