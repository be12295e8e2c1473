"""The REST calls as data, shared by the sync `Client` and the `AsyncClient` (no I/O here).

Each method of the clients builds a `Call` — method, path, query, body, headers, whether a retry is
safe, and how to read the answer — and hands it to its transport loop. Reading an answer is the same
for both: an error body becomes the typed exception of `errors`, a success is validated with the
protocol package's model for that route.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from device_registry import Snapshot
from device_registry.snapshot import parse_snapshot
from vqpu_client.errors import APIError, QueueFullError, TransportError, UsageError, WaitTimeoutError, api_error
from vqpu_client.sse import EVENT_STREAM, StreamBroken
from vqpu_protocol.api.devices import DevicePatch, EpochView, ViabilityView
from vqpu_protocol.api.tasks import EventView, TaskView, check_task_kind
from vqpu_protocol.limits import Dialect
from vqpu_protocol.pubs import EstimatorPubs, Pubs, SamplerPubs
from vqpu_protocol.rundir import RunOptions

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
TERMINAL_EVENTS = frozenset({"TASK_COMPLETED", "TASK_FAILED", "TASK_CANCELLED"})
RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers that mean "not now" (a proxy, a draining or starting server, a database that did not answer)."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
STREAM_READ_TIMEOUT_S = 60.0
"""An event stream silent this long is dead: the server sends a keep-alive comment every 15 s by default."""
DEADLINE_SLACK_S = 0.5
"""How far past its deadline a `wait()` may still be reading. A read cannot be shortened once the stream
is open (httpx fixes its timeout per request), and each keep-alive starts a new read: a stream whose
next read could outlast the deadline by more than this is reopened with a shorter read timeout."""
POLL_INTERVAL_S = 1.0
"""How often `wait()` re-reads the task when the server offers no event stream."""
_HEADER = re.compile(r"\A\s*(?://[^\n]*\n\s*|/\*.*?\*/\s*)*OPENQASM\s+([0-9]+)", re.DOTALL)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer.

    `retry`: "any" — safe to send again whatever happened (reads, and a submit with its idempotency key);
    "unsent" — only when the request certainly never reached the server (a connection that was never
    made), because sending it twice would do it twice (a new device epoch).
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry: str = "any"

    def request(self, http: httpx.Client | httpx.AsyncClient, deadline: float | None = None) -> httpx.Request:
        content = None if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()
        headers = dict(self.headers)
        if content is not None:
            headers["Content-Type"] = "application/json"
        params = {k: v for k, v in self.params.items() if v is not None}
        timeout = within(http.timeout, deadline)
        return http.build_request(
            self.method, self.path, params=params, content=content, headers=headers, timeout=timeout
        )

    def may_retry(self, exc: Exception | None) -> bool:
        """After `exc` (None: a retryable status), may the same request be sent again?"""
        if self.retry == "any":
            return True
        return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n) seconds."""

    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def left(deadline: float | None) -> float:
    """Seconds until `deadline` (a `time.monotonic()` value; None: no deadline, infinite)."""
    return math.inf if deadline is None else max(0.0, deadline - time.monotonic())


def within(timeout: httpx.Timeout, deadline: float | None, *, read: float | None = None) -> httpx.Timeout:
    """`timeout` (its read phase replaced by `read` if given) with no phase longer than what is left."""
    remaining = left(deadline)

    def cap(value: float | None) -> float | None:
        if remaining == math.inf:
            return value
        return max(0.05, remaining if value is None else min(value, remaining))

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read if read is None else read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def retry_delay(backoff: Backoff, attempt: int, deadline: float | None) -> float:
    """How long to sleep before attempt `attempt + 1`: the backoff, never past the deadline."""
    return min(backoff.delay(attempt), left(deadline))


def give_up(call: Call[Any], attempt: int, retries: int, exc: Exception | None, deadline: float | None) -> bool:
    """After a failed attempt: no retries left, not safe to send again, or no time left before `deadline`."""
    return attempt >= retries or not call.may_retry(exc) or (deadline is not None and left(deadline) <= 0)


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed exception for an error answer; return for a success."""
    if response.status_code < 400:
        return
    raise error_of(response)


def error_of(response: httpx.Response) -> APIError:
    status = response.status_code
    correlation = response.headers.get("X-Correlation-ID")
    try:
        info = response.json()["error"]
        error = api_error(status, str(info["code"]), str(info["message"]), info.get("detail"), correlation)
        if isinstance(error, QueueFullError):
            error.retry_after_s = _retry_after(response.headers.get("Retry-After"))
        return error
    except (ValueError, KeyError, TypeError):
        # Not our error body: a proxy or load balancer answered. Keep its words, bounded.
        text = response.text[:300].strip() or response.reason_phrase
        return api_error(status, f"HTTP_{status}", text, None, correlation)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the server sends seconds; an HTTP date from a proxy is not read)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        raise_for_error(response)
        try:
            return cls.model_validate_json(response.content)
        except ValidationError as exc:
            raise api_error(
                response.status_code,
                "INVALID_RESPONSE",
                f"the server's answer is not a valid {cls.__name__}: {exc.errors(include_url=False)[:3]}",
                None,
                response.headers.get("X-Correlation-ID"),
            ) from None

    return read


def field_of(cls: type[M], name: str) -> Callable[[httpx.Response], Any]:
    """Read the answer as `cls` and return one of its fields (a list of devices, of epochs, ...)."""
    read = model(cls)
    return lambda response: getattr(read(response), name)


def snapshot(response: httpx.Response) -> Snapshot:
    raise_for_error(response)
    return parse_snapshot(response.content)


def dialect_of(circuit: str, dialect: str | None) -> Dialect:
    """The dialect given, or the one the source's `OPENQASM 2`/`OPENQASM 3` header names."""
    if dialect is not None:
        if dialect not in ("qasm2", "qasm3"):
            raise UsageError(f"dialect must be 'qasm2' or 'qasm3', not {dialect!r}")
        return dialect  # type: ignore[return-value]
    found = _HEADER.match(circuit[:65536])
    if found is None or found.group(1) not in ("2", "3"):
        raise UsageError("the circuit has no 'OPENQASM 2' or 'OPENQASM 3' header; pass dialect='qasm2' or 'qasm3'")
    return "qasm2" if found.group(1) == "2" else "qasm3"


def options_body(options: RunOptions | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Run options as JSON, validated here first so a typo fails before anything is sent."""
    if options is None:
        return None
    if isinstance(options, RunOptions):
        return options.model_dump(mode="json", exclude_defaults=True)
    try:
        return RunOptions.model_validate(dict(options)).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as exc:
        raise UsageError(f"invalid run options: {exc.errors(include_url=False)}") from None


def pubs_document(pubs: SamplerPubs | EstimatorPubs | Mapping[str, Any]) -> SamplerPubs | EstimatorPubs:
    """A PUB document (`vqpu_protocol.pubs`): given as one, or as its JSON form, validated here first so a
    mistake fails before anything is sent (`UsageError`)."""
    if isinstance(pubs, SamplerPubs | EstimatorPubs):
        return pubs
    try:
        return _PUBS.validate_python(dict(pubs))
    except (ValidationError, TypeError, ValueError) as exc:
        errors = exc.errors(include_url=False)[:5] if isinstance(exc, ValidationError) else str(exc)
        raise UsageError(f"invalid pubs: {errors}") from None


_PUBS: TypeAdapter[SamplerPubs | EstimatorPubs] = TypeAdapter(Pubs)


def submit_body(
    device: str,
    circuit: str | None,
    *,
    shots: int | None,
    dialect: str | None,
    seed: int | None,
    epoch: int | None,
    tags: Iterable[str],
    options: RunOptions | Mapping[str, Any] | None,
    pubs: SamplerPubs | EstimatorPubs | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of POST /v1/tasks: a circuit task (`circuit`, `shots`) or a PUB task (`pubs`; `shots` the
    sampler's default shots per PUB, none for an estimator), checked as the server checks it."""
    opts = options_body(options)
    document = None if pubs is None else pubs_document(pubs)
    try:
        check_task_kind(circuit, document, shots, RunOptions(memory=bool((opts or {}).get("memory", False))))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    body: dict[str, Any] = {"device": device}
    if document is not None:
        body["pubs"] = document.model_dump(mode="json", exclude_none=True)
        # A PUB's circuit is OpenQASM 3 (its parameters are `input float[64]` declarations).
        body["dialect"] = "qasm3" if dialect is None else dialect_of("", dialect)
    if circuit is not None:
        body["circuit"] = circuit
        body["dialect"] = dialect_of(circuit, dialect)
    if shots is not None:
        body["shots"] = shots
    if seed is not None:
        body["seed"] = seed
    if epoch is not None:
        body["epoch"] = epoch
    tags = list(tags)
    if tags:
        body["tags"] = tags
    if opts:
        body["options"] = opts
    return body


def new_idempotency_key() -> str:
    return f"vqpu-client-{uuid.uuid4()}"


def patch_body(patch: DevicePatch | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(patch, DevicePatch):
        return patch.model_dump(mode="json", exclude_none=True)
    return dict(patch)


# --- calls with more to them than a path --------------------------------------------------------


def viability(
    device_id: str,
    circuit: str,
    *,
    dialect: str | None,
    epoch: int | None,
    options: RunOptions | Mapping[str, Any] | None,
    shots: int | None = None,
) -> Call[ViabilityView]:
    body: dict[str, Any] = {"circuit": circuit, "dialect": dialect_of(circuit, dialect)}
    if epoch is not None:
        body["epoch"] = epoch
    if shots is not None:
        body["shots"] = shots
    opts = options_body(options)
    if opts:
        body["options"] = opts
    return Call("POST", f"/v1/devices/{device_id}/viability", model(ViabilityView), body=body)


def submit(
    device: str,
    circuit: str | None,
    *,
    shots: int | None,
    dialect: str | None,
    seed: int | None,
    epoch: int | None,
    tags: Iterable[str],
    options: RunOptions | Mapping[str, Any] | None,
    idempotency_key: str | None,
    pubs: SamplerPubs | EstimatorPubs | Mapping[str, Any] | None = None,
) -> Call[TaskView]:
    body = submit_body(
        device, circuit, shots=shots, dialect=dialect, seed=seed, epoch=epoch, tags=tags, options=options, pubs=pubs
    )
    key = idempotency_key if idempotency_key is not None else new_idempotency_key()
    # One key for every attempt of this call: a retry after a lost answer gets the task the first attempt made.
    return Call("POST", "/v1/tasks", model(TaskView), body=body, headers={IDEMPOTENCY_HEADER: key})


def cancel(task_id: str) -> Call[TaskView]:
    return Call("POST", f"/v1/tasks/{task_id}/cancel", model(TaskView))


def device_write(method: str, path: str, body: Any) -> Call[EpochView]:
    # Each accepted write makes a new epoch: never sent twice unless the first certainly never left.
    return Call(method, path, model(EpochView), body=body, retry="unsent")


def event_params(task: str | None, device: str | None, types: Iterable[str] | None) -> dict[str, Any]:
    params = {"task": task, "device": device, "type": ",".join(types) if types is not None else None}
    return {k: v for k, v in params.items() if v is not None}


class StreamUnavailable(Exception):
    """The server answers the events route, but not with an event stream (a proxy that does not pass it)."""


def stream_headers(last_event_id: int) -> dict[str, str]:
    # identity: the reader bounds the raw bytes it holds, and a compressed stream could expand one
    # small read far past that bound before the reader saw a byte of it.
    return {"Accept": EVENT_STREAM, "Last-Event-ID": str(last_event_id), "Accept-Encoding": "identity"}


def stream_missing(status: int) -> bool:
    """An answer to GET /v1/events that means "no event stream here" (a proxy, an old server), not an error."""
    return status in (404, 405, 406, 501)


def stream_failure(response: httpx.Response) -> Exception:
    """What an error answer (its body read) to GET /v1/events means for the waiting loops."""
    error = error_of(response)
    if stream_missing(response.status_code):
        return StreamUnavailable(str(error))
    if response.status_code in RETRY_STATUSES:
        return httpx.RemoteProtocolError(str(error))
    return error


def stream_refusal(response: httpx.Response) -> Exception | None:
    """Why a 2xx answer to GET /v1/events cannot be read as the event stream, or None when it can."""
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith(EVENT_STREAM):
        return StreamUnavailable(f"GET /v1/events answered {content_type!r}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return StreamBroken(f"the event stream came {encoding}-encoded, although identity was asked for")
    return None


class Waiter:
    """The state of one `wait()`: deadline, last event seen, outage clock, and whether it fell back to polling.

    The deadline holds everywhere a wait spends time: each request's timeouts and each retry's sleep
    are cut to what is left, and an open event stream is checked at every chunk it sends (keep-alive
    comments included), so a server that keeps talking without finishing the task cannot extend it.
    """

    def __init__(self, task_id: str, timeout_s: float | None, max_outage_s: float) -> None:
        self.task_id = task_id
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.max_outage_s = max_outage_s
        self.last_event_id = 0
        self.polling = False
        self.drops = 0
        self.task: TaskView | None = None
        self._outage_since: float | None = None
        self._stream_read_s = STREAM_READ_TIMEOUT_S

    def remaining(self) -> float:
        return left(self.deadline)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WaitTimeoutError(self.task_id, self.timeout_s or 0.0, self.task)

    def open_stream(self) -> float:
        """The read timeout of the stream about to be opened: how long silence is trusted, never past the deadline."""
        self._stream_read_s = max(0.05, min(STREAM_READ_TIMEOUT_S, self.remaining()))
        return self._stream_read_s

    def reopen_due(self) -> bool:
        """After a chunk of the open stream: True when its next read could run past the deadline by more
        than `DEADLINE_SLACK_S` (or the deadline has passed); the wait then re-reads the task and reopens."""
        remaining = self.remaining()
        return remaining <= 0 or remaining + DEADLINE_SLACK_S < self._stream_read_s

    def poll_delay(self) -> float:
        return min(POLL_INTERVAL_S, self.remaining())

    def backoff_delay(self, backoff: Backoff) -> float:
        """How long to sleep before reconnecting a dropped stream: never past the deadline."""
        return retry_delay(backoff, self.drops, self.deadline)

    def saw(self, event: EventView) -> None:
        self.last_event_id = event.id
        self.drops = 0

    def dropped(self, exc: Exception | None) -> None:
        self.drops += 1

    def reached(self, task: TaskView) -> None:
        self.task = task
        self._outage_since = None

    def unreachable(self, exc: Exception) -> None:
        now = time.monotonic()
        self._outage_since = self._outage_since if self._outage_since is not None else now
        if now - self._outage_since > self.max_outage_s:
            raise TransportError(
                f"task {self.task_id}: the server has been unreachable for {self.max_outage_s} s"
            ) from exc
