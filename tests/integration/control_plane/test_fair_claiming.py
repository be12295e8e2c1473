"""Fair claiming and per-owner caps, over SQLite and PostgreSQL alike (docs/lifecycle.md, "Fair claiming"):
one owner's backlog does not hold another owner's task back, nobody holds more than the RUNNING cap, and
a submit past the QUEUED cap is refused with a time to retry."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.claiming import ClaimingStore
from tests.integration.control_plane.conftest import served
from tests.integration.control_plane.tasks import completed, new_task
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.config import Settings
from vqpu_service.domain.errors import QueueFull
from vqpu_service.domain.lifecycle import TaskState


def now() -> datetime:
    return datetime.now(UTC)


def capped(store: SqlStore, *, running: int | None = None, queued: int | None = None) -> SqlStore:
    """The same database under per-owner caps (the fixture's store has none)."""
    return ClaimingStore(store.tx.engine, max_running_per_owner=running, max_queued_per_owner=queued)


def submit_many(store: SqlStore, owner: str, n: int) -> list[str]:
    return [store.submit(new_task(store, owner), now())[0].id for _ in range(n)]


def test_another_owners_task_is_claimed_as_soon_as_one_slot_frees_behind_a_long_backlog(store: SqlStore) -> None:
    alices = submit_many(store, "alice", 20)
    slots = [store.claim("agent", 1, None, now())[0] for _ in range(2)]  # a two-slot agent, both busy
    assert [c.task.id for c in slots] == alices[:2]
    bobs = store.submit(new_task(store, "bob"), now())[0]

    store.report(slots[0].task.id, completed(slots[0]), now())  # one slot frees
    [next_up] = store.claim("agent", 1, None, now())
    assert next_up.task.id == bobs.id
    assert store.get_task(alices[2]).state is TaskState.QUEUED  # alice's backlog waits its turn


def test_free_slots_are_shared_across_owners_before_anyone_gets_a_second(store: SqlStore) -> None:
    alices = submit_many(store, "alice", 5)
    bobs = submit_many(store, "bob", 5)
    carols = submit_many(store, "carol", 1)
    taken = [c.task.id for c in store.claim("agent", 4, None, now())]
    assert taken == [alices[0], bobs[0], carols[0], alices[1]]


def test_one_owner_alone_is_still_served_oldest_first(store: SqlStore) -> None:
    alices = submit_many(store, "alice", 6)
    assert [c.task.id for c in store.claim("agent", 4, None, now())] == alices[:4]
    assert [c.task.id for c in store.claim("agent", 4, None, now())] == alices[4:]


def test_no_owner_holds_more_running_tasks_than_the_cap(store: SqlStore) -> None:
    fair = capped(store, running=3)
    alices = submit_many(store, "alice", 6)
    bobs = submit_many(store, "bob", 1)
    taken = fair.claim("agent", 10, None, now())
    assert [c.task.id for c in taken] == [alices[0], bobs[0], alices[1], alices[2]]
    assert fair.claim("agent", 10, None, now()) == []  # alice is at 3, bob has nothing queued
    fair.report(taken[0].task.id, completed(taken[0]), now())
    assert [c.task.id for c in fair.claim("agent", 10, None, now())] == [alices[3]]


def test_concurrent_claimers_never_take_the_same_task_or_pass_the_running_cap(store: SqlStore) -> None:
    fair = capped(store, running=5)
    submit_many(store, "alice", 40)
    submit_many(store, "bob", 3)
    claims: Counter[str] = Counter()
    lock, errors = threading.Lock(), []
    start = threading.Barrier(8)

    def claimer(n: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                got = fair.claim(f"agent-{n}", 2, None, now())
                with lock:
                    claims.update(c.task.id for c in got)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert set(claims.values()) == {1}
    running = store.list_tasks(owner=None, state=TaskState.RUNNING, device_id=None, limit=1000, after_seq=None)
    assert Counter(t.owner for t in running) == {"alice": 5, "bob": 3}


def test_a_submit_past_the_queued_cap_is_refused_but_a_repeat_is_still_answered(store: SqlStore) -> None:
    full = capped(store, queued=3)
    first, _ = full.submit(new_task(store, key="k1", body="b1"), now())
    submit_many(full, "alice", 2)
    with pytest.raises(QueueFull) as refused:
        full.submit(new_task(store), now())
    assert refused.value.status == 429 and refused.value.detail == {"limit": 3}
    again, created = full.submit(new_task(store, key="k1", body="b1"), now())  # a retry of a stored submit
    assert (again.id, created) == (first.id, False)
    assert full.submit(new_task(store, "bob"), now())[1]  # the cap is per owner
    full.claim("agent", 1, None, now())  # one of alice's leaves the queue: room for one more
    assert full.submit(new_task(store), now())[1]
    with pytest.raises(QueueFull):
        full.submit(new_task(store), now())


def test_concurrent_submits_fill_the_queued_cap_exactly(store: SqlStore) -> None:
    full = capped(store, queued=5)
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def submit() -> None:
        start.wait()
        try:
            full.submit(new_task(store), now())
            outcomes.append("stored")
        except QueueFull:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(outcomes) == {"stored": 5, "refused": 7}


@pytest.fixture
def small_queues(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API with a QUEUED cap of 2 per owner."""
    settings = Settings(
        database_url=database_url,
        keys_file=tmp_path / "keys.json",
        max_queued_per_owner=2,
        queue_full_retry_after_s=17,
    )
    with served(settings) as api:
        yield api


def test_a_full_queue_answers_429_with_retry_after_over_http(small_queues: Api) -> None:
    api = small_queues
    kept = api.submit(headers={"Idempotency-Key": "once"})
    assert kept.status_code == 201 and api.submit().status_code == 201
    refused = api.submit()
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "17"
    body = error(refused)
    assert body["code"] == "QUEUE_FULL" and body["detail"] == {"limit": 2}
    repeat = api.submit(headers={"Idempotency-Key": "once"})
    assert repeat.status_code == 200 and repeat.json()["id"] == kept.json()["id"]
    assert api.submit("bob").status_code == 201


def test_claim_candidates_are_each_owners_oldest_queued_on_the_claimed_devices(store: SqlStore) -> None:
    # The loose index scan against what it must equal: every QUEUED row, grouped and cut in Python.
    owners = ["zoe", "alice", "bob", "al", "carol"]
    for i in range(60):  # interleaved owners and devices, some tasks taken off the queue
        task, _ = store.submit(new_task(store, owners[i * 7 % 5], device=["line-16", "ibm-fez"][i % 3 == 0]), now())
        if i % 11 == 0:
            store.cancel(task.id, "test", now())
    queued = [
        t for t in store.list_tasks(owner=None, state=TaskState.QUEUED, device_id=None, limit=1000, after_seq=None)
    ]

    def expected(devices: list[str] | None, per_owner: int, skip: list[str]) -> list[tuple[int, str, str]]:
        out: list[tuple[int, str, str]] = []
        for owner in sorted({t.owner for t in queued} - set(skip)):
            mine = sorted(t.seq for t in queued if t.owner == owner and (devices is None or t.device_id in devices))
            out += [(seq, next(t.id for t in queued if t.seq == seq), owner) for seq in mine[:per_owner]]
        return sorted(out)

    for devices, per_owner, skip in [
        (None, 1, []),
        (None, 3, ["bob"]),
        (["ibm-fez"], 2, []),
        (["line-16", "ibm-fez"], 4, ["al", "zoe"]),
        ([], 2, []),
        (["ring-12"], 5, []),
    ]:
        with store.claiming(devices, now()) as unit:  # nothing taken, nothing saved
            found = sorted((c.seq, c.task_id, c.owner) for c in unit.candidates(per_owner, skip))
        assert found == expected(devices, per_owner, skip), (devices, per_owner, skip)
