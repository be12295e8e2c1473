"""An agent's first contact (issue 20): its first heartbeat and first claim arrive together, and a returning
agent's requests race each other. One agent row, no 500, and AGENT_SEEN once per arrival or return, over
SQLite and PostgreSQL, from threads that start their requests at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from vqpu_service.domain.events import EventType
from vqpu_service.ports import EventFilter, Store
from vqpu_service.services import liveness

RACERS = 8
SEEN = EventFilter(types=frozenset({EventType.AGENT_SEEN}))


def _together(store: Store, calls: list[Callable[[], object]]) -> list[BaseException | None]:
    """Run the calls in threads released at once; what each raised, or None."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> BaseException | None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # the test reports it
            return exc
        return None

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _seen(store: Store) -> int:
    return len(store.events_after(0, SEEN, 1000))


def test_racing_first_requests_make_one_agent_seen_once(store: Store) -> None:
    now = datetime.now(UTC)
    beats = [lambda: liveness.heartbeat(store, "a1", [], now) for _ in range(RACERS)]
    assert _together(store, beats) == [None] * RACERS  # PostgreSQL said UniqueViolation agent_pkey here
    assert [a.agent_id for a in store.agents()] == ["a1"]
    assert _seen(store) == 1


def test_a_returning_agent_is_seen_once_however_many_requests_it_sends_at_once(store: Store) -> None:
    now = datetime.now(UTC)
    liveness.heartbeat(store, "a1", [], now)
    later = now + timedelta(seconds=600)
    liveness.sweep(store, 60.0, later, auto_requeue=False, max_attempts=3)
    [agent] = store.agents()
    assert agent.lost
    back = later + timedelta(seconds=1)
    assert (
        _together(store, [lambda: liveness.heartbeat(store, "a1", [], back) for _ in range(RACERS)]) == [None] * RACERS
    )
    [agent] = store.agents()
    assert not agent.lost and agent.last_seen == back and agent.first_seen == now
    assert _seen(store) == 2  # its first contact, and its one return (it was 5-9 ms apart twice before)
