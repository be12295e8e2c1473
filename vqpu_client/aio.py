"""`AsyncClient`: the asyncio twin of `Client` — the same methods, awaited, with the same retries.

    async with AsyncClient(url, key) as vqpu:
        task = await vqpu.submit("ibm-fez", qasm, shots=1000)
        final = await vqpu.wait(task.id)

The requests themselves and how their answers are read are shared with `Client` (`vqpu_client.calls`);
only the I/O loops are written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
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
from vqpu_client.client import DEFAULT_TIMEOUT_S, MAX_OUTAGE_S
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


class AsyncClient:
    """`Client` for asyncio: see its docstrings; every method here is a coroutine (or an async iterator)."""

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff or Backoff()
        self.max_outage_s = max_outage_s
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {client_key(key, key_file)}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def _send(self, call: Call[T], deadline: float | None = None) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.send(call.request(self._http, deadline))
            except httpx.TransportError as exc:
                if calls.give_up(call, attempt, self.retries, exc, deadline):
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code not in calls.RETRY_STATUSES:
                    return call.read(response)
                if calls.give_up(call, attempt, self.retries, None, deadline):
                    return call.read(response)
            await asyncio.sleep(calls.retry_delay(self.backoff, attempt, deadline))
            attempt += 1

    # --- devices -------------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._send(Call("GET", "/v1/health", calls.model(Health)))

    async def devices(self) -> list[DeviceSummary]:
        found: list[DeviceSummary] = await self._send(Call("GET", "/v1/devices", calls.field_of(DeviceList, "devices")))
        return found

    async def snapshot(self, device_id: str, epoch: int | None = None) -> Snapshot:
        path = f"/v1/devices/{device_id}" if epoch is None else f"/v1/devices/{device_id}/epochs/{epoch}"
        return await self._send(Call("GET", path, calls.snapshot))

    async def epochs(self, device_id: str) -> list[EpochEntry]:
        found: list[EpochEntry] = await self._send(
            Call("GET", f"/v1/devices/{device_id}/epochs", calls.field_of(EpochList, "epochs"))
        )
        return found

    async def viability(
        self,
        device_id: str,
        circuit: str,
        *,
        dialect: str | None = None,
        epoch: int | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
        shots: int | None = None,
    ) -> ViabilityView:
        return await self._send(
            calls.viability(device_id, circuit, dialect=dialect, epoch=epoch, options=options, shots=shots)
        )

    async def queued_violations(self, device_id: str, epoch: int, *, after: str | None = None) -> QueuedViolations:
        """Your QUEUED, unpinned tasks on the device (every one for an admin) that `epoch` would refuse, oldest
        first. One answer re-checks a bounded amount of source: when it is `truncated`, ask again with
        `after=answer.next_after` for the rest."""
        path = f"/v1/devices/{device_id}/epochs/{epoch}/queued-violations"
        return await self._send(Call("GET", path, calls.model(QueuedViolations), params={"after": after}))

    async def register_device(self, snapshot: Snapshot) -> EpochView:
        return await self._send(calls.device_write("POST", "/v1/devices", snapshot.to_json_dict()))

    async def put_device(self, device_id: str, snapshot: Snapshot) -> EpochView:
        return await self._send(calls.device_write("PUT", f"/v1/devices/{device_id}", snapshot.to_json_dict()))

    async def patch_device(self, device_id: str, patch: DevicePatch | Mapping[str, Any]) -> EpochView:
        return await self._send(calls.device_write("PATCH", f"/v1/devices/{device_id}", calls.patch_body(patch)))

    # --- tasks ---------------------------------------------------------------------------------

    async def submit(
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
        return await self._send(
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

    async def task(self, task_id: str) -> TaskView:
        return await self._send(Call("GET", f"/v1/tasks/{task_id}", calls.model(TaskView)))

    async def tasks(
        self, *, state: str | None = None, device: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        params = {"state": state, "device": device, "limit": limit, "cursor": cursor}
        return await self._send(Call("GET", "/v1/tasks", calls.model(TaskPage), params=params))

    async def iter_tasks(
        self, *, state: str | None = None, device: str | None = None, page_size: int = 100
    ) -> AsyncIterator[TaskView]:
        cursor: str | None = None
        while True:
            page = await self.tasks(state=state, device=device, limit=page_size, cursor=cursor)
            for task in page.tasks:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> TaskView:
        try:
            return await self._send(calls.cancel(task_id))
        except IllegalTransitionError:
            task = await self.task(task_id)
            if task.state == "CANCELLED" or task.cancel_requested:
                return task
            raise

    async def result(self, task_id: str) -> ResultDocument:
        return await self._send(Call("GET", f"/v1/tasks/{task_id}/result", calls.model(ResultDocument)))

    async def task_circuit(self, task_id: str) -> TaskCircuit:
        """The circuit as it was submitted (its source and dialect), to resubmit it."""
        return await self._send(Call("GET", f"/v1/tasks/{task_id}/circuit", calls.model(TaskCircuit)))

    async def task_events(self, task_id: str) -> list[EventView]:
        found: list[EventView] = await self._send(
            Call("GET", f"/v1/tasks/{task_id}/events", calls.field_of(EventList, "events"))
        )
        return found

    async def run(
        self,
        device: str,
        circuit: str | None = None,
        *,
        shots: int | None = None,
        timeout_s: float | None = None,
        **submit: Any,
    ) -> ResultDocument:
        task = await self.submit(device, circuit, shots=shots, **submit)
        return await self.result_of(await self.wait(task.id, timeout_s=timeout_s))

    async def result_of(self, task: TaskView) -> ResultDocument:
        if task.state == "FAILED":
            raise TaskFailedError(task)
        if task.state == "CANCELLED":
            raise TaskCancelledError(task)
        return await self.result(task.id)

    # --- events and waiting --------------------------------------------------------------------

    async def events(
        self,
        *,
        task: str | None = None,
        device: str | None = None,
        types: Iterable[str] | None = None,
        last_event_id: int = 0,
    ) -> AsyncIterator[EventView]:
        last = last_event_id
        outage: float | None = None
        attempt = 0
        while True:
            try:
                params = calls.event_params(task, device, types)
                async for event in self._stream(params, last, None, STREAM_READ_TIMEOUT_S):
                    outage, attempt = None, 0
                    last = event.id
                    yield event
            except (httpx.TransportError, StreamBroken) as exc:
                outage = outage if outage is not None else time.monotonic()
                if time.monotonic() - outage > self.max_outage_s:
                    raise TransportError(f"the event stream kept failing for {self.max_outage_s} s: {exc}") from exc
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1

    async def wait(
        self,
        task_id: str,
        *,
        timeout_s: float | None = None,
        on_event: Callable[[EventView], None] | None = None,
    ) -> TaskView:
        waiter = calls.Waiter(task_id, timeout_s, self.max_outage_s)
        params = calls.event_params(task_id, None, None)
        while True:
            task = await self._observe(waiter)
            if task is not None:
                return task
            if waiter.polling:
                await asyncio.sleep(waiter.poll_delay())
                continue
            try:
                read_s = waiter.open_stream()
                stream = self._stream(params, waiter.last_event_id, waiter.deadline, read_s, waiter.reopen_due)
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        waiter.saw(event)
                        if on_event is not None:
                            on_event(event)
                        if event.type in TERMINAL_EVENTS:
                            break
                    else:
                        if not waiter.reopen_due():
                            waiter.dropped(None)
                            await asyncio.sleep(waiter.backoff_delay(self.backoff))
            except StreamUnavailable:
                waiter.polling = True
            except (httpx.TransportError, StreamBroken) as exc:
                waiter.dropped(exc)
                await asyncio.sleep(waiter.backoff_delay(self.backoff))

    async def _observe(self, waiter: calls.Waiter) -> TaskView | None:
        waiter.check_deadline()
        try:
            task = await self._send(Call("GET", f"/v1/tasks/{waiter.task_id}", calls.model(TaskView)), waiter.deadline)
        except TransportError as exc:
            waiter.unreachable(exc)
            return None
        waiter.reached(task)
        return task if task.state in TERMINAL_STATES else None

    async def _stream(
        self,
        params: dict[str, Any],
        last_event_id: int,
        deadline: float | None,
        read_timeout_s: float,
        stop: Callable[[], bool] | None = None,
    ) -> AsyncGenerator[EventView, None]:
        timeout = calls.within(self._http.timeout, deadline, read=read_timeout_s)
        headers = calls.stream_headers(last_event_id)
        async with self._http.stream("GET", "/v1/events", params=params, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                raise calls.stream_failure(response)
            refused = calls.stream_refusal(response)
            if refused is not None:
                raise refused
            lines, decoder = Lines(), Decoder()
            async for chunk in response.aiter_raw():
                for line in lines.feed(chunk):
                    for event in decoder.feed(line):
                        yield event
                if stop is not None and stop():
                    return
