"""The SSE broker: store filter semantics in memory, tenancy, and eviction instead of back-pressure."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime

import pytest

from vqpu_service.adapters.broker import Broker
from vqpu_service.domain.events import Event, EventType
from vqpu_service.ports import EventFilter

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def task_event(
    n: int, type_: EventType = EventType.TASK_SUBMITTED, *, task: str = "t-1", owner: str = "alice"
) -> Event:
    return Event(n, T0, type_, f"task:{task}", {}, task, "line-16", owner)


def device_event(n: int, device: str = "line-16") -> Event:
    return Event(n, T0, EventType.DEVICE_UPDATED, f"device:{device}", {}, None, device, None)


def agent_event(n: int) -> Event:
    return Event(n, T0, EventType.AGENT_SEEN, "agent:a1", {}, None, None, None)


def drain(queue: asyncio.Queue[Event]) -> list[int]:
    ids = []
    while not queue.empty():
        ids.append(queue.get_nowait().id)
    return ids


MIXED = [
    task_event(1),
    task_event(2, EventType.TASK_CLAIMED),
    task_event(3, task="t-2", owner="bob"),
    device_event(4),
    device_event(5, "ibm-fez"),
    agent_event(6),
    Event(7, T0, EventType.TASK_SUBMITTED, "task:t-3", {}, "t-3", "ibm-fez", "alice"),
]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (EventFilter(), [1, 2, 3, 4, 5, 6, 7]),
        (EventFilter(task_id="t-1"), [1, 2]),
        (EventFilter(device_id="ibm-fez"), [5, 7]),
        (EventFilter(types=frozenset({EventType.TASK_CLAIMED, EventType.AGENT_SEEN})), [2, 6]),
        (EventFilter(device_id="line-16", types=frozenset({EventType.TASK_SUBMITTED})), [1, 3]),
        (EventFilter(owner="alice"), [1, 2, 4, 5, 7]),
        (EventFilter(owner="bob"), [3, 4, 5]),
        (EventFilter(owner="carol"), [4, 5]),
        (EventFilter(owner="alice", device_id="ibm-fez"), [5, 7]),
    ],
)
def test_a_subscriber_receives_exactly_the_events_its_filter_selects(flt: EventFilter, expected: list[int]) -> None:
    async def scenario() -> list[int]:
        broker = Broker()
        sub = broker.subscribe(flt, 100)
        for e in MIXED:
            broker.publish(e)
        return drain(sub.queue)

    assert asyncio.run(scenario()) == expected


def test_a_tenant_sees_its_own_task_events_and_device_events_but_not_another_tenants_or_agent_events() -> None:
    async def scenario() -> tuple[list[int], list[int], list[int]]:
        broker = Broker()
        alice, bob, admin = (broker.subscribe(EventFilter(owner=o), 100) for o in ("alice", "bob", None))
        for e in MIXED:
            broker.publish(e)
        return drain(alice.queue), drain(bob.queue), drain(admin.queue)

    alice, bob, admin = asyncio.run(scenario())
    assert 3 not in alice and 6 not in alice
    assert bob == [3, 4, 5]
    assert admin == [e.id for e in MIXED]


def test_a_full_subscriber_is_evicted_while_the_others_keep_receiving() -> None:
    async def scenario() -> None:
        broker = Broker()
        stuck = broker.subscribe(EventFilter(), 3)
        fast = broker.subscribe(EventFilter(), 1000)
        other_tenant = broker.subscribe(EventFilter(owner="bob"), 1)  # never matches: never fills
        for n in range(1, 101):
            broker.publish(task_event(n))
        assert stuck.evicted and stuck.closed.is_set()
        assert drain(stuck.queue) == [1, 2, 3]  # what it had; the rest it replays after reconnecting
        assert drain(fast.queue) == list(range(1, 101))
        assert not other_tenant.evicted and not other_tenant.closed.is_set()
        assert broker.subscribers == 2
        assert (broker.published, broker.evicted) == (100, 1)
        assert broker.delivered == 3 + 100

    asyncio.run(scenario())


def test_publication_never_blocks_or_awaits_even_with_many_stuck_subscribers() -> None:
    assert not inspect.iscoroutinefunction(Broker.publish)

    async def scenario() -> None:
        broker = Broker()
        stuck = [broker.subscribe(EventFilter(), 1) for _ in range(1000)]
        # Nothing ever reads: had publish waited for room, this would never return (the test would hang).
        for n in range(1, 1001):
            broker.publish(task_event(n))
        assert all(s.evicted for s in stuck)
        assert broker.subscribers == 0 and broker.evicted == 1000

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_unsubscribe_stops_delivery_closes_without_eviction_and_is_idempotent() -> None:
    async def scenario() -> None:
        broker = Broker()
        sub = broker.subscribe(EventFilter(), 10)
        broker.publish(task_event(1))
        broker.unsubscribe(sub)
        broker.unsubscribe(sub)
        broker.publish(task_event(2))
        assert drain(sub.queue) == [1]
        assert sub.closed.is_set() and not sub.evicted
        assert broker.subscribers == 0 and broker.evicted == 0

    asyncio.run(scenario())


def test_closing_the_broker_closes_every_subscription() -> None:
    async def scenario() -> None:
        broker = Broker()
        subs = [broker.subscribe(EventFilter(owner=o), 10) for o in ("alice", "bob", None)]
        broker.close()
        assert broker.subscribers == 0
        assert all(s.closed.is_set() and not s.evicted for s in subs)

    asyncio.run(scenario())


def test_a_subscription_needs_room_for_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Broker().subscribe(EventFilter(), 0)
