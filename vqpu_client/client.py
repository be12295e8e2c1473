"""`Client`: the synchronous Python client of the REST API (see `AsyncClient` for asyncio).

    with Client("http://vqpu.example:8000", key) as vqpu:
        task = vqpu.submit("ibm-fez", qasm, shots=1000)
        vqpu.wait(task.id)
        counts = vqpu.result(task.id).counts

Retries: a call that met a transport error or a 502/503/504 is sent again with jittered exponential
backoff, up to `retries` times, when that is safe: reads always; a submit because it carries one
idempotency key for all its attempts (the server answers a repeat with the task the first made);
device writes only when the request was certainly never sent. `wait()` follows the task's event
stream, reconnects with `Last-Event-ID` when the stream drops (a restarted server, a proxy timeout),
and polls the task only when the server offers no event stream.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from device_registry import Snapshot
from vqpu_client import calls
from vqpu_client.calls import (
    STREAM_READ_TIMEOUT_S,
    TERMINAL_EVENTS,
    TERMINAL_STATES,
    Backoff,
    Call,
    StreamUnavailable,
)
from vqpu_client.errors import (
    IllegalTransitionError,
    TaskCancelledError,
    TaskFailedError,
    TransportError,
)
from vqpu_client.keys import client_key
from vqpu_client.sse import Decoder, Lines, StreamBroken
from vqpu_protocol.api.admin import Health
from vqpu_protocol.api.devices import (
    DeviceList,
    DevicePatch,
    DeviceSummary,
    EpochEntry,
    EpochList,
    EpochView,
    ViabilityView,
)
from vqpu_protocol.api.inspect import QueuedViolations, TaskCircuit
from vqpu_protocol.api.tasks import EventList, EventView, TaskPage, TaskView
from vqpu_protocol.pubs import EstimatorPubs, SamplerPubs
from vqpu_protocol.rundir import ResultDocument, RunOptions

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0
MAX_OUTAGE_S = 300.0
"""`wait()` and `events()` keep reconnecting to an unreachable server this long before giving up."""


class Client:
    """One user's (or operator's) connection to the control plane at `url` with API key `key`.

    `key_file=PATH` reads the key from a file instead; the file must be yours and private (mode 0600
    or stricter), else `KeyFileError` naming the path and its mode.
    """

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        key_file: str | os.PathLike[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = 5,
        backoff: Backoff | None = None,
        max_outage_s: float = MAX_OUTAGE_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff or Backoff()
        self.max_outage_s = max_outage_s
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {client_key(key, key_file)}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    # --- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _send(self, call: Call[T], deadline: float | None = None) -> T:
        return self._attempts(call, deadline)[0]

    def _attempts(self, call: Call[T], deadline: float | None = None) -> tuple[T, int]:
        """The answer read, and how many attempts it took; no attempt or sleep runs past `deadline`."""
        attempt = 0
        while True:
            try:
                response = self._http.send(call.request(self._http, deadline))
            except httpx.TransportError as exc:
                if calls.give_up(call, attempt, self.retries, exc, deadline):
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code not in calls.RETRY_STATUSES:
                    return call.read(response), attempt + 1
                if calls.give_up(call, attempt, self.retries, None, deadline):
                    return call.read(response), attempt + 1
            time.sleep(calls.retry_delay(self.backoff, attempt, deadline))
            attempt += 1

    # --- devices -------------------------------------------------------------------------------

    def health(self) -> Health:
        return self._send(Call("GET", "/v1/health", calls.model(Health)))

    def devices(self) -> list[DeviceSummary]:
        found: list[DeviceSummary] = self._send(Call("GET", "/v1/devices", calls.field_of(DeviceList, "devices")))
        return found

    def snapshot(self, device_id: str, epoch: int | None = None) -> Snapshot:
        path = f"/v1/devices/{device_id}" if epoch is None else f"/v1/devices/{device_id}/epochs/{epoch}"
        return self._send(Call("GET", path, calls.snapshot))

    def epochs(self, device_id: str) -> list[EpochEntry]:
        found: list[EpochEntry] = self._send(
            Call("GET", f"/v1/devices/{device_id}/epochs", calls.field_of(EpochList, "epochs"))
        )
        return found

    def viability(
        self,
        device_id: str,
        circuit: str,
        *,
        dialect: str | None = None,
        epoch: int | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
        shots: int | None = None,
    ) -> ViabilityView:
        return self._send(
            calls.viability(device_id, circuit, dialect=dialect, epoch=epoch, options=options, shots=shots)
        )

    def queued_violations(self, device_id: str, epoch: int, *, after: str | None = None) -> QueuedViolations:
        """Your QUEUED, unpinned tasks on the device (every one for an admin) that `epoch` would refuse, oldest
        first. One answer re-checks a bounded amount of source: when it is `truncated`, ask again with
        `after=answer.next_after` for the rest."""
        path = f"/v1/devices/{device_id}/epochs/{epoch}/queued-violations"
        return self._send(Call("GET", path, calls.model(QueuedViolations), params={"after": after}))

    def register_device(self, snapshot: Snapshot) -> EpochView:
        """Admin: register a new device (its epoch 0 is this snapshot)."""
        return self._send(calls.device_write("POST", "/v1/devices", snapshot.to_json_dict()))

    def put_device(self, device_id: str, snapshot: Snapshot) -> EpochView:
        """Admin: `snapshot` becomes the device's next epoch."""
        return self._send(calls.device_write("PUT", f"/v1/devices/{device_id}", snapshot.to_json_dict()))

    def patch_device(self, device_id: str, patch: DevicePatch | Mapping[str, Any]) -> EpochView:
        """Admin: change some qubits' or edges' fields; the result is the device's next epoch."""
        return self._send(calls.device_write("PATCH", f"/v1/devices/{device_id}", calls.patch_body(patch)))

    # --- tasks ---------------------------------------------------------------------------------

    def submit(
        self,
        device: str,
        circuit: str | None = None,
        *,
        shots: int | None = None,
        pubs: SamplerPubs | EstimatorPubs | Mapping[str, Any] | None = None,
        dialect: str | None = None,
        seed: int | None = None,
        epoch: int | None = None,
        tags: Iterable[str] = (),
        options: RunOptions | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> TaskView:
        """Submit one circuit (`circuit`, `shots`), or Sampler or Estimator PUBs as one task (`pubs=`, a
        `vqpu_protocol.pubs.SamplerPubs` / `EstimatorPubs` or its JSON form; `shots` is then a sampler's default
        shots per PUB, and an estimator task takes none). The task is QUEUED when this returns; its result's
        `pubs` holds a PUB task's outcomes. Retried safely (one idempotency key)."""
        return self._send(
            calls.submit(
                device,
                circuit,
                shots=shots,
                dialect=dialect,
                seed=seed,
                epoch=epoch,
                tags=tags,
                options=options,
                idempotency_key=idempotency_key,
                pubs=pubs,
            )
        )

    def task(self, task_id: str) -> TaskView:
        return self._send(Call("GET", f"/v1/tasks/{task_id}", calls.model(TaskView)))

    def tasks(
        self, *, state: str | None = None, device: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        """One page of your tasks (all tasks for an admin), oldest first; pass `next_cursor` for the next."""
        params = {"state": state, "device": device, "limit": limit, "cursor": cursor}
        return self._send(Call("GET", "/v1/tasks", calls.model(TaskPage), params=params))

    def iter_tasks(
        self, *, state: str | None = None, device: str | None = None, page_size: int = 100
    ) -> Iterator[TaskView]:
        """Every task, page by page."""
        cursor: str | None = None
        while True:
            page = self.tasks(state=state, device=device, limit=page_size, cursor=cursor)
            yield from page.tasks
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, task_id: str) -> TaskView:
        """QUEUED: CANCELLED at once. RUNNING: `cancel_requested`, CANCELLED once the agent has stopped it."""
        try:
            view, _ = self._attempts(calls.cancel(task_id))
            return view
        except IllegalTransitionError:
            # A retried cancel whose first attempt took effect finds the task already cancelled.
            task = self.task(task_id)
            if task.state == "CANCELLED" or task.cancel_requested:
                return task
            raise

    def result(self, task_id: str) -> ResultDocument:
        return self._send(Call("GET", f"/v1/tasks/{task_id}/result", calls.model(ResultDocument)))

    def task_circuit(self, task_id: str) -> TaskCircuit:
        """The circuit as it was submitted (its source and dialect), to resubmit it."""
        return self._send(Call("GET", f"/v1/tasks/{task_id}/circuit", calls.model(TaskCircuit)))

    def task_events(self, task_id: str) -> list[EventView]:
        found: list[EventView] = self._send(
            Call("GET", f"/v1/tasks/{task_id}/events", calls.field_of(EventList, "events"))
        )
        return found

    def run(
        self,
        device: str,
        circuit: str | None = None,
        *,
        shots: int | None = None,
        timeout_s: float | None = None,
        **submit: Any,
    ) -> ResultDocument:
        """Submit, wait, and return the result; a task that fails or is cancelled raises its `TaskError`."""
        task = self.submit(device, circuit, shots=shots, **submit)
        return self.result_of(self.wait(task.id, timeout_s=timeout_s))

    def result_of(self, task: TaskView) -> ResultDocument:
        """The result of a finished task, or its `TaskFailedError` / `TaskCancelledError`."""
        if task.state == "FAILED":
            raise TaskFailedError(task)
        if task.state == "CANCELLED":
            raise TaskCancelledError(task)
        return self.result(task.id)

    # --- events and waiting --------------------------------------------------------------------

    def events(
        self,
        *,
        task: str | None = None,
        device: str | None = None,
        types: Iterable[str] | None = None,
        last_event_id: int = 0,
    ) -> Iterator[EventView]:
        """The live event stream (after `last_event_id`; 0 replays from the start), forever.

        Reconnects with `Last-Event-ID` whenever the stream drops, so no event is lost or repeated;
        raises `TransportError` after the server has been unreachable for `max_outage_s`.
        """
        last = last_event_id
        outage: float | None = None
        attempt = 0
        while True:
            try:
                for event in self._stream(calls.event_params(task, device, types), last, None, STREAM_READ_TIMEOUT_S):
                    outage, attempt = None, 0
                    last = event.id
                    yield event
            except (httpx.TransportError, StreamBroken) as exc:
                outage = outage if outage is not None else time.monotonic()
                if time.monotonic() - outage > self.max_outage_s:
                    raise TransportError(f"the event stream kept failing for {self.max_outage_s} s: {exc}") from exc
            time.sleep(self.backoff.delay(attempt))
            attempt += 1

    def wait(
        self,
        task_id: str,
        *,
        timeout_s: float | None = None,
        on_event: Callable[[EventView], None] | None = None,
    ) -> TaskView:
        """Block until the task is COMPLETED, FAILED or CANCELLED and return its final record.

        Follows the task's event stream (`on_event` sees each event); reconnects with `Last-Event-ID`
        after a drop and re-reads the task each time, so a restarted server is waited out; polls only
        if the server offers no event stream. `WaitTimeoutError` after `timeout_s`; `TransportError`
        after the server has been unreachable for `max_outage_s`.
        """
        waiter = calls.Waiter(task_id, timeout_s, self.max_outage_s)
        params = calls.event_params(task_id, None, None)
        while True:
            task = self._observe(waiter)
            if task is not None:
                return task
            if waiter.polling:
                time.sleep(waiter.poll_delay())
                continue
            try:
                read_s = waiter.open_stream()
                stream = self._stream(params, waiter.last_event_id, waiter.deadline, read_s, waiter.reopen_due)
                with contextlib.closing(stream):  # a break closes the connection now, not when collected
                    for event in stream:
                        waiter.saw(event)
                        if on_event is not None:
                            on_event(event)
                        if event.type in TERMINAL_EVENTS:
                            break
                    else:  # the server ended the stream (shutting down, or evicted us), or the deadline nears
                        if not waiter.reopen_due():
                            waiter.dropped(None)
                            time.sleep(waiter.backoff_delay(self.backoff))
            except StreamUnavailable:
                waiter.polling = True
            except (httpx.TransportError, StreamBroken) as exc:
                waiter.dropped(exc)
                time.sleep(waiter.backoff_delay(self.backoff))

    def _observe(self, waiter: calls.Waiter) -> TaskView | None:
        """Re-read the task: its final record once terminal; raise on timeout or a long outage."""
        waiter.check_deadline()
        try:
            task = self._send(Call("GET", f"/v1/tasks/{waiter.task_id}", calls.model(TaskView)), waiter.deadline)
        except TransportError as exc:
            waiter.unreachable(exc)
            return None
        waiter.reached(task)
        return task if task.state in TERMINAL_STATES else None

    def _stream(
        self,
        params: dict[str, Any],
        last_event_id: int,
        deadline: float | None,
        read_timeout_s: float,
        stop: Callable[[], bool] | None = None,
    ) -> Generator[EventView, None, None]:
        """The events of one connection to the stream; it ends early, between two chunks, once `stop()` says so."""
        timeout = calls.within(self._http.timeout, deadline, read=read_timeout_s)
        headers = calls.stream_headers(last_event_id)
        with self._http.stream("GET", "/v1/events", params=params, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise calls.stream_failure(response)
            refused = calls.stream_refusal(response)
            if refused is not None:
                raise refused
            lines, decoder = Lines(), Decoder()
            for chunk in response.iter_raw():
                for line in lines.feed(chunk):
                    yield from decoder.feed(line)
                if stop is not None and stop():
                    return
