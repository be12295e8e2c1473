"""Committed events reach SSE clients through the pump and the broker, over SQLite and PostgreSQL (D9).

Every scenario runs on a real event loop (asyncio.run) against the real store: what a client sees
must be exactly the committed event table, with no gap and no duplicate, whatever the timing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest

from device_registry import parse_snapshot
from tests.integration.control_plane.claiming import ClaimingStore
from tests.integration.control_plane.tasks import LINE, new_task
from vqpu_service.adapters.broker import Broker
from vqpu_service.adapters.pg_listen import PostgresListener, libpq_conninfo
from vqpu_service.adapters.pump import EventPump
from vqpu_service.adapters.sql.engine import make_engine
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.adapters.sql.tx import NOTIFY_CHANNEL
from vqpu_service.api.sse import EVICTED, KEEPALIVE, event_stream
from vqpu_service.domain.events import Event, EventType
from vqpu_service.domain.model import Task
from vqpu_service.ports import EventFilter, Store

FEZ = "ibm-fez"
WAIT_S = 20.0  # generous: only a hang reaches it


def now() -> datetime:
    return datetime.now(UTC)


def submit(store: SqlStore, owner: str = "alice", device: str = LINE) -> Task:
    return store.submit(new_task(store, owner, device=device), now())[0]


ALL = EventFilter()


def committed_ids(store: SqlStore, flt: EventFilter = ALL, after: int = 0) -> list[int]:
    return [e.id for e in store.events_after(after, flt, 100_000)]


async def connected() -> bool:
    return False


def stream(store: Store, broker: Broker, last_id: int, *, keepalive_s: float = 5.0, maxsize: int = 1000) -> Any:
    return event_stream(
        store.events_after,
        broker,
        EventFilter(),
        last_id,
        keepalive_s=keepalive_s,
        maxsize=maxsize,
        is_disconnected=connected,
    )


def frame_id(frame: str) -> int:
    lines = dict(line.split(": ", 1) for line in frame.strip("\n").split("\n"))
    assert set(lines) == {"id", "event", "data"}, frame
    return int(lines["id"])


async def next_id(frames: AsyncIterator[str]) -> int:
    """The id of the next event frame, skipping keep-alive comments."""
    while True:
        frame = await asyncio.wait_for(anext(frames), WAIT_S)
        if not frame.startswith(":"):
            return frame_id(frame)


async def read_until(frames: AsyncIterator[str], last_id: int, into: list[int]) -> None:
    while not into or into[-1] < last_id:
        into.append(await next_id(frames))


@asynccontextmanager
async def running_pump(
    store: SqlStore, broker: Broker, *, poll_s: float = 0.05, on_event: Callable[[Event], None] | None = None
) -> AsyncIterator[EventPump]:
    """The pump wired as a server wires it: poked after every local commit."""
    pump = EventPump(store, broker, on_event or (lambda e: None), poll_s)
    store.tx.after_commit.append(pump.poke)
    task = asyncio.create_task(pump.run())
    try:
        await asyncio.wait_for(pump.started.wait(), WAIT_S)
        yield pump
    finally:
        store.tx.after_commit.remove(pump.poke)
        await asyncio.wait_for(pump.stop(), WAIT_S)
        await task


async def caught_up(pump: EventPump, store: SqlStore) -> None:
    target = await asyncio.to_thread(store.last_event_id)
    deadline = time.monotonic() + WAIT_S
    while pump.last_id != target:
        assert time.monotonic() < deadline, "the pump did not catch up"
        await asyncio.sleep(0.01)


def test_a_client_that_reconnects_with_its_last_event_id_misses_no_event_and_gets_none_twice(store: SqlStore) -> None:
    async def scenario() -> list[int]:
        broker = Broker()
        seen: list[int] = []
        async with running_pump(store, broker):
            for _ in range(5):
                await asyncio.to_thread(submit, store)
            first = stream(store, broker, 0)
            seen += [await next_id(first) for _ in range(4)]
            await first.aclose()  # the client goes away mid-replay
            assert broker.subscribers == 0

            for owner in ("alice", "bob", "alice"):  # committed while nobody listens
                await asyncio.to_thread(submit, store, owner)
            await asyncio.to_thread(store.claim, "agent-1", 3, None, now())

            second = stream(store, broker, seen[-1])  # what an EventSource sends as Last-Event-ID
            await read_until(second, await asyncio.to_thread(store.last_event_id), seen)
            delivered_before = broker.delivered
            for _ in range(3):  # committed while the client follows live
                await asyncio.to_thread(submit, store, "bob", FEZ)
            await asyncio.to_thread(store.claim, "agent-2", 10, None, now())
            await read_until(second, await asyncio.to_thread(store.last_event_id), seen)
            await second.aclose()
            assert broker.delivered > delivered_before  # the live part really came through the broker
        return seen

    seen = asyncio.run(scenario())
    assert seen == committed_ids(store)
    assert seen == list(range(1, len(seen) + 1))  # ids from a fresh table: contiguous, so nothing skipped


class RacingStore:
    """A store whose first replay read races commits: one lands (and is published) just before the read,
    so it is both replayed and queued; one lands just after, so it is only queued."""

    def __init__(self, store: SqlStore, pump: EventPump) -> None:
        self._store, self._pump, self.raced = store, pump, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def events_after(self, last_id: int, flt: EventFilter, limit: int) -> list[Event]:
        if self.raced:
            return self._store.events_after(last_id, flt, limit)
        self.raced = True
        self._commit_and_wait_published()
        page = self._store.events_after(last_id, flt, limit)
        self._commit_and_wait_published()
        return page

    def _commit_and_wait_published(self) -> None:
        submit(self._store)
        target, deadline = self._store.last_event_id(), time.monotonic() + WAIT_S
        while self._pump.last_id != target:  # this is a worker thread: the loop publishes meanwhile
            assert time.monotonic() < deadline, "the pump did not publish"
            time.sleep(0.005)


def test_an_event_committed_while_the_replay_is_read_is_sent_exactly_once(store: SqlStore) -> None:
    async def scenario() -> list[int]:
        broker = Broker()
        async with running_pump(store, broker) as pump:
            racing = RacingStore(store, pump)
            frames = stream(cast(Store, racing), broker, 0)
            seen: list[int] = []
            before = await asyncio.to_thread(store.last_event_id)
            await read_until(frames, before + 2, seen)  # the two racing commits
            await frames.aclose()
            assert racing.raced
        return seen

    seen = asyncio.run(scenario())
    assert seen == committed_ids(store)


def test_a_slow_consumer_is_evicted_while_a_fast_one_gets_everything_and_the_pump_keeps_up(store: SqlStore) -> None:
    n = 30

    async def scenario() -> None:
        broker = Broker()
        async with running_pump(store, broker) as pump:
            start = pump.last_id
            assert start is not None
            stuck = broker.subscribe(EventFilter(), 2)  # never read at all
            slow = stream(store, broker, start, keepalive_s=0.05, maxsize=2)
            assert await asyncio.wait_for(anext(slow), WAIT_S) == KEEPALIVE  # parked at a yield from now on
            fast = stream(store, broker, start)
            fast_seen: list[int] = []
            reader = asyncio.create_task(read_until(fast, start + n, fast_seen))

            ids = [(await asyncio.to_thread(submit, store)).id for _ in range(n)]
            await asyncio.wait_for(reader, WAIT_S)
            await caught_up(pump, store)  # stuck subscribers held nothing back

            assert stuck.evicted and stuck.closed.is_set()
            assert [f async for f in slow] == [EVICTED]  # the slow stream ends, telling the client why
            assert broker.evicted == 2 and broker.subscribers == 1
            assert fast_seen == list(range(start + 1, start + n + 1))
            await fast.aclose()

            again = stream(store, broker, start)  # the evicted client reconnects and loses nothing
            replayed: list[int] = []
            await read_until(again, start + n, replayed)
            await again.aclose()
            assert replayed == fast_seen
            events = await asyncio.to_thread(store.events_after, start, EventFilter(), 1000)
            assert [e.task_id for e in events] == ids

    asyncio.run(scenario())


def test_an_idle_stream_sends_keep_alive_comments(store: SqlStore) -> None:
    async def scenario() -> list[str]:
        broker = Broker()
        last = await asyncio.to_thread(store.last_event_id)
        frames = stream(store, broker, last, keepalive_s=0.02)
        got = [await asyncio.wait_for(anext(frames), WAIT_S) for _ in range(3)]
        await frames.aclose()
        return got

    assert asyncio.run(scenario()) == [KEEPALIVE] * 3


def test_the_broker_and_the_store_select_the_same_events_for_every_filter(store: SqlStore) -> None:
    filters = [
        EventFilter(),
        EventFilter(owner="alice"),
        EventFilter(owner="bob"),
        EventFilter(device_id=FEZ),
        EventFilter(types=frozenset({EventType.TASK_CLAIMED, EventType.DEVICE_UPDATED, EventType.AGENT_SEEN})),
        EventFilter(owner="alice", device_id=LINE, types=frozenset({EventType.TASK_SUBMITTED})),
    ]

    async def scenario() -> tuple[int, list[list[int]]]:
        broker = Broker()
        async with running_pump(store, broker) as pump:
            start = pump.last_id
            assert start is not None
            subs = [broker.subscribe(f, 1000) for f in filters]
            a = await asyncio.to_thread(submit, store, "alice")
            await asyncio.to_thread(submit, store, "bob", FEZ)
            await asyncio.to_thread(submit, store, "alice", FEZ)
            await asyncio.to_thread(store.claim, "agent-1", 2, None, now())
            await asyncio.to_thread(store.cancel, a.id, "alice", now())
            data = store.current_epoch(FEZ).snapshot().to_json_dict()
            data["qubits"][0]["status"] = "OFFLINE"
            await asyncio.to_thread(store.new_epoch, FEZ, parse_snapshot(data), now())
            await caught_up(pump, store)
            got = [[s.queue.get_nowait().id for _ in range(s.queue.qsize())] for s in subs]
        return start, got

    start, got = asyncio.run(scenario())
    for flt, ids in zip(filters, got, strict=True):
        assert ids == committed_ids(store, flt, start), flt
    assert got[1] != got[2]  # the tenancy filter really separated something


def test_the_pump_delivers_events_another_process_commits_by_polling_or_at_once_by_notify(
    store: SqlStore, database_url: str
) -> None:
    """SQLite: the periodic poll finds them. PostgreSQL: NOTIFY wakes the pump long before its 30 s poll."""
    other = ClaimingStore(make_engine(database_url))  # another server process: its commits never poke our pump
    hooked: list[Event] = []

    async def scenario() -> float:
        broker = Broker()
        poll_s = 0.1 if store.tx.sqlite else 30.0
        async with running_pump(store, broker, poll_s=poll_s, on_event=hooked.append) as pump:
            listener = None if store.tx.sqlite else PostgresListener(database_url, pump.poke)
            if listener is not None:
                listener.start()
                assert await asyncio.to_thread(listener.listening.wait, WAIT_S)
            try:
                sub = broker.subscribe(EventFilter(), 100)
                t0 = time.monotonic()
                task = await asyncio.to_thread(submit, other, "carol")
                event = await asyncio.wait_for(sub.queue.get(), WAIT_S)
                elapsed = time.monotonic() - t0
                assert (event.type, event.task_id) == (EventType.TASK_SUBMITTED, task.id)
                if listener is not None:
                    assert listener.notifications >= 1
            finally:
                if listener is not None:
                    await asyncio.to_thread(listener.stop)
        return elapsed

    try:
        elapsed = asyncio.run(scenario())
    finally:
        other.close()
    assert [e.type for e in hooked] == [EventType.TASK_SUBMITTED]  # the server's hook saw it too
    if not store.tx.sqlite:
        assert elapsed < 5.0, f"delivered after {elapsed:.1f} s: by the 30 s poll, not by NOTIFY"


def test_the_pump_stops_cleanly_on_request_and_on_cancellation(store: SqlStore) -> None:
    async def scenario() -> None:
        for how in ("stop", "cancel"):
            pump = EventPump(store, Broker(), lambda e: None, 30.0)
            task = asyncio.create_task(pump.run())
            await asyncio.wait_for(pump.started.wait(), WAIT_S)
            if how == "stop":
                await asyncio.wait_for(pump.stop(), WAIT_S)  # well before the 30 s poll
                await task
            else:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            pump.poke()  # a late commit after shutdown is harmless
        await EventPump(store, Broker(), lambda e: None, 1.0).stop()  # never started: returns at once

    asyncio.run(scenario())


def test_a_failing_event_hook_does_not_stop_the_pump(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    def hook(event: Event) -> None:
        raise RuntimeError(f"hook broke on {event.id}")

    async def scenario() -> list[int]:
        broker = Broker()
        async with running_pump(store, broker, on_event=hook) as pump:
            sub = broker.subscribe(EventFilter(), 100)
            for _ in range(3):
                await asyncio.to_thread(submit, store)
            await caught_up(pump, store)
            return [sub.queue.get_nowait().id for _ in range(sub.queue.qsize())]

    with caplog.at_level(logging.ERROR, logger="vqpu_service.adapters.pump"):
        ids = asyncio.run(scenario())
    assert len(ids) == 3 and "hook broke" in caplog.text


def test_the_listener_reconnects_after_its_connection_is_killed(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pokes = threading.Semaphore(0)
    listener = PostgresListener(postgres_url, pokes.release, backoff_s=(0.05, 0.5))
    conninfo = libpq_conninfo(postgres_url)
    with caplog.at_level(logging.WARNING, logger="vqpu_service.adapters.pg_listen"):
        listener.start()
        try:
            assert pokes.acquire(timeout=WAIT_S)  # the poke on connecting
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(f"NOTIFY {NOTIFY_CHANNEL}")
                assert pokes.acquire(timeout=WAIT_S)
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
                ).fetchall()
                assert killed and all(ok for (ok,) in killed)  # ours, and any other listener on this scratch db
                assert pokes.acquire(timeout=WAIT_S)  # the poke on reconnecting: a gap is read at once
                assert listener.listening.wait(WAIT_S)
                admin.execute(f"NOTIFY {NOTIFY_CHANNEL}")
                assert pokes.acquire(timeout=WAIT_S)
        finally:
            t0 = time.monotonic()
            listener.stop()
            stopped_in = time.monotonic() - t0
    assert stopped_in < 3.0
    assert "reconnecting" in caplog.text
