"""The Store contract, run over SQLite, PostgreSQL and the in-memory store alike (docs/lifecycle.md;
invariants D2-D5), each driven by the claim service as the server drives it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device_registry import catalog, parse_snapshot
from tests.integration.control_plane.claiming import ClaimingMemoryStore
from tests.integration.control_plane.conftest import register_devices, sql_store
from tests.integration.control_plane.tasks import LINE, completed, its_result, new_task
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.admission import largest_slot
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import (
    Conflict,
    Fenced,
    IdempotencyConflict,
    IllegalTransition,
    InvalidResult,
    NotFound,
)
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import Action, TaskState
from vqpu_service.domain.model import SlotCapacity, Task
from vqpu_service.ports import EventFilter, Store
from vqpu_service.services.claims import Claimant


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        memory = ClaimingMemoryStore()
        register_devices(memory)
        yield memory
        return
    url = f"sqlite:///{tmp_path / 'vqpu.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with sql_store(url) as s:
        yield s


GiB = 1024**3


def now(offset_s: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


def submit(store: SqlStore, owner: str = "alice", **kw: Any) -> tuple[Task, bool]:
    return store.submit(new_task(store, owner, **kw), now())


def offline(store: SqlStore, device: str, *qubits: int):  # type: ignore[no-untyped-def]
    data = store.current_epoch(device).snapshot().to_json_dict()
    for q in qubits:
        data["qubits"][q]["status"] = "OFFLINE"
    return store.new_epoch(device, parse_snapshot(data), now())


def types(store: SqlStore, task_id: str) -> list[EventType]:
    return [e.type for e in store.events_after(0, EventFilter(task_id=task_id), 1000)]


def test_a_submitted_task_is_queued_with_its_event(store: SqlStore) -> None:
    task, created = submit(store)
    assert created and task.state is TaskState.QUEUED and task.attempt == 0
    assert store.get_task(task.id) == task
    assert types(store, task.id) == [EventType.TASK_SUBMITTED]
    with pytest.raises(NotFound):
        store.get_task("t-missing")


def test_idempotency_key_returns_the_same_task_and_refuses_another_body(store: SqlStore) -> None:
    first, created = submit(store, key="k1", body="b1")
    again, created_again = submit(store, key="k1", body="b1")
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        submit(store, key="k1", body="b2")
    other, _ = submit(store, owner="bob", key="k1", body="b1")  # keys are per tenant
    assert other.id != first.id
    assert len(store.list_tasks(owner=None, state=None, device_id=None, limit=10, after_seq=None)) == 2


def test_sixteen_concurrent_claimers_over_500_tasks_claim_each_exactly_once(store: SqlStore) -> None:
    ids = {submit(store)[0].id for _ in range(500)}
    claims: Counter[str] = Counter()
    lock, errors = threading.Lock(), []

    def claimer(n: int) -> None:
        try:
            while True:
                got = store.claim(f"agent-{n}", 7, None, now())
                if not got:
                    return
                with lock:
                    claims.update(c.task.id for c in got)
        except Exception as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert set(claims) == ids and set(claims.values()) == {1}
    running = store.list_tasks(owner=None, state=TaskState.RUNNING, device_id=None, limit=1000, after_seq=None)
    assert len(running) == 500 and all(t.attempt == 1 for t in running)


def test_claim_takes_the_oldest_first_and_honours_the_device_filter(store: SqlStore) -> None:
    a = submit(store)[0]
    fez = submit(store, device="ibm-fez")[0]
    b = submit(store)[0]
    assert [c.task.id for c in store.claim("agent", 5, ["ibm-fez"], now())] == [fez.id]
    assert [c.task.id for c in store.claim("agent", 5, None, now())] == [a.id, b.id]
    assert store.claim("agent", 5, None, now()) == []


def test_a_mutation_before_claim_is_what_the_claim_binds_and_one_after_changes_nothing(store: SqlStore) -> None:
    tasks = [submit(store)[0] for _ in range(8)]
    epoch1 = offline(store, LINE, 15)  # the paper's scene: the device changes while 8 tasks wait
    claimed = store.claim("agent", 8, None, now())
    assert len(claimed) == 8 and {c.task.id for c in claimed} == {t.id for t in tasks}
    assert {(c.task.bound_epoch, c.task.bound_sha256) for c in claimed} == {(epoch1.epoch, epoch1.sha256)}
    assert all(parse_snapshot(c.snapshot_json).sha256() == epoch1.sha256 for c in claimed)
    offline(store, LINE, 14)  # after the claim
    for c in claimed:
        assert store.get_task(c.task.id).bound_sha256 == epoch1.sha256
    assert store.epoch(LINE, epoch1.epoch).sha256 == epoch1.sha256


def test_a_pinned_epoch_is_bound_even_after_the_device_moved_on(store: SqlStore) -> None:
    epoch0 = store.current_epoch(LINE)
    task = submit(store, pinned=epoch0.epoch)[0]
    offline(store, LINE, 9)
    [claimed] = store.claim("agent", 1, None, now())
    assert claimed.task.id == task.id and claimed.task.bound_epoch == epoch0.epoch
    assert parse_snapshot(claimed.snapshot_json).sha256() == epoch0.sha256


def test_a_task_the_new_epoch_no_longer_admits_fails_at_claim_instead_of_dispatching(store: SqlStore) -> None:
    task = submit(store)[0]  # uses qubits 0 and 1
    offline(store, LINE, 1)
    assert store.claim("agent", 1, None, now()) == []
    failed = store.get_task(task.id)
    assert failed.state is TaskState.FAILED and failed.error and failed.error["code"] == "NOT_ADMISSIBLE_AT_CLAIM"
    assert failed.error["detail"]["violations"][0]["code"] == "QUBIT_OFFLINE"


def test_a_fenced_token_cannot_complete_a_requeued_task(store: SqlStore) -> None:
    submit(store)
    [first] = store.claim("agent-1", 1, None, now())
    store.requeue(first.task.id, "admin", "node lost", now())
    [second] = store.claim("agent-2", 1, None, now())
    assert second.task.id == first.task.id and second.attempt == 2 and second.claim_token != first.claim_token
    with pytest.raises(Fenced):
        store.report(first.task.id, Report(Action.REPORT_COMPLETED, first.claim_token, result={"counts": {}}), now())
    done, outcome = store.report(second.task.id, completed(second, {"00": 100}), now())
    assert outcome is Outcome.APPLIED and done.state is TaskState.COMPLETED and done.result == its_result(second)
    rejected = store.events_after(
        0, EventFilter(task_id=done.id, types=frozenset({EventType.TASK_REPORT_REJECTED})), 10
    )
    assert len(rejected) == 1 and rejected[0].data["code"] == "FENCED"


def test_a_repeated_terminal_report_is_idempotent_and_a_conflicting_one_is_rejected(store: SqlStore) -> None:
    submit(store)
    [c] = store.claim("agent", 1, None, now())
    rep = completed(c, {"00": 100})
    store.report(c.task.id, rep, now())
    task, outcome = store.report(c.task.id, rep, now())
    assert outcome is Outcome.REPEATED and task.result == its_result(c)
    with pytest.raises(IllegalTransition):
        store.report(c.task.id, Report(Action.REPORT_FAILED, c.claim_token, error={"code": "X"}), now())
    assert types(store, c.task.id).count(EventType.TASK_COMPLETED) == 1


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_terminal_states_absorb_admin_operations_too(store: SqlStore, terminal: str) -> None:
    task = submit(store)[0]
    if terminal == "cancelled":
        store.cancel(task.id, "alice", now())
    else:
        [c] = store.claim("agent", 1, None, now())
        store.report(
            task.id,
            Report(
                Action(terminal),
                c.claim_token,
                result=its_result(c) if terminal == "completed" else None,
                error={"code": "E"} if terminal == "failed" else None,
            ),
            now(),
        )
    before = store.get_task(task.id)
    for op in (
        lambda: store.cancel(task.id, "admin", now()),
        lambda: store.requeue(task.id, "admin", "r", now()),
        lambda: store.force_fail(task.id, "admin", "r", now()),
    ):
        with pytest.raises(IllegalTransition):
            op()
    assert store.get_task(task.id) == before


def test_cancel_of_a_running_task_travels_in_the_heartbeat_reply(store: SqlStore) -> None:
    task = submit(store)[0]
    [c] = store.claim("agent", 1, None, now())
    store.cancel(task.id, "alice", now())
    reply = store.heartbeat("agent", [(task.id, c.claim_token), ("t-unknown", "x")], now())
    assert reply.cancel == [task.id] and reply.fenced == ["t-unknown"]
    done, _ = store.report(task.id, Report(Action.REPORT_CANCELLED, c.claim_token), now())
    assert done.state is TaskState.CANCELLED
    # Ended by this very attempt (its own report): `ended` with the state, not fenced (issue 20).
    after = store.heartbeat("agent", [(task.id, c.claim_token)], now())
    assert (after.fenced, after.ended) == ([], {task.id: "CANCELLED"})


def test_stale_is_flagged_once_and_agents_are_marked_lost(store: SqlStore) -> None:
    task = submit(store)[0]
    [c] = store.claim("agent", 1, None, now())
    store.heartbeat("agent", [(task.id, c.claim_token)], now())  # it got its claim, then fell silent
    assert store.sweep_liveness(60, now(30), auto_requeue=False, max_attempts=3) == []
    assert store.sweep_liveness(60, now(61), auto_requeue=False, max_attempts=3) == [task.id]
    assert store.sweep_liveness(60, now(62), auto_requeue=False, max_attempts=3) == []
    t = store.get_task(task.id)
    assert t.state is TaskState.RUNNING and t.stale(now(61), 60)
    assert types(store, task.id).count(EventType.TASK_STALE) == 1
    [agent] = store.agents()
    assert agent.lost
    store.heartbeat("agent", [], now(63))
    assert not store.agents()[0].lost


def test_auto_requeue_puts_stale_tasks_back_until_max_attempts(store: SqlStore) -> None:
    task = submit(store)[0]
    [c] = store.claim("agent", 1, None, now())
    store.heartbeat("agent", [(task.id, c.claim_token)], now())
    store.sweep_liveness(60, now(61), auto_requeue=True, max_attempts=2)
    assert store.get_task(task.id).state is TaskState.QUEUED
    [c] = store.claim("agent", 1, None, now(62))
    store.heartbeat("agent", [(task.id, c.claim_token)], now(62))
    store.sweep_liveness(60, now(200), auto_requeue=True, max_attempts=2)
    t = store.get_task(task.id)
    assert t.state is TaskState.RUNNING and t.attempt == 2  # at max_attempts: flagged, left for an admin


def test_device_epochs_are_versioned_and_old_ones_stay_readable(store: SqlStore) -> None:
    e0 = store.current_epoch(LINE)
    e1 = offline(store, LINE, 3)
    assert (e0.epoch, e1.epoch) == (0, 1) and store.current_epoch(LINE).sha256 == e1.sha256
    assert [e for e, _, _ in store.epochs(LINE)] == [0, 1]
    assert store.epoch(LINE, 0).snapshot().qubits[3].online
    with pytest.raises(NotFound):
        store.epoch(LINE, 7)
    with pytest.raises(NotFound):
        store.current_epoch("nowhere")
    with pytest.raises(Conflict):
        store.register_device(store.current_epoch(LINE).snapshot(), now())
    updated = store.events_after(0, EventFilter(device_id=LINE, types=frozenset({EventType.DEVICE_UPDATED})), 10)
    assert [e.data["epoch"] for e in updated] == [1]


def test_users_see_their_own_task_events_and_device_events_only(store: SqlStore) -> None:
    mine, theirs = submit(store, "alice")[0], submit(store, "bob")[0]
    visible = store.events_after(0, EventFilter(owner="alice"), 1000)
    assert {e.task_id for e in visible if e.task_id} == {mine.id}
    assert any(e.type is EventType.DEVICE_REGISTERED for e in visible)
    assert theirs.id in {e.task_id for e in store.events_after(0, EventFilter(), 1000)}
    ids = [e.id for e in store.events_after(0, EventFilter(), 1000)]
    assert ids == sorted(ids) and store.last_event_id() == ids[-1]


def test_concurrent_registrations_of_one_device_register_it_once_and_the_rest_conflict(store: SqlStore) -> None:
    """Server processes starting together on a fresh database all register the catalogue."""
    snapshot = catalog.load("ring-12")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def register() -> None:
        barrier.wait()
        try:
            store.register_device(snapshot, now())
            outcomes.append("registered")
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert Counter(outcomes) == {"registered": 1, "DEVICE_EXISTS": 7}
    registered = store.events_after(
        0, EventFilter(device_id="ring-12", types=frozenset({EventType.DEVICE_REGISTERED})), 10
    )
    assert len(registered) == 1 and [e for e, _, _ in store.epochs("ring-12")] == [0]


def test_a_device_offers_the_slots_its_live_agents_declared_gpu_memory_included(store: Store) -> None:
    store.claim("cpu", 1, None, now(), SlotCapacity(16 * GiB))
    store.claim("gpu", 1, [LINE], now(), SlotCapacity(12 * GiB, 80 * GiB))
    assert store.slot_capacities(LINE) == [SlotCapacity(16 * GiB), SlotCapacity(12 * GiB, 80 * GiB)]
    assert largest_slot(store.slot_capacities(LINE), cpu_only=False) == 80 * GiB
    assert largest_slot(store.slot_capacities("ibm-fez"), cpu_only=False) == 16 * GiB  # "gpu" serves LINE only
    store.sweep_liveness(60, now(61), auto_requeue=False, max_attempts=3)
    assert store.slot_capacities(LINE) == []


# --- claims their agent never acknowledged (issue 20, must-have 8) -------------------------------------------

BEATING = Claimant("agent", heartbeat_s=1.0)
"""An agent that heartbeats every second, as agents do by default: its claims must be acknowledged within the
server's claim_ack_window_s (10 s here, `claiming.ACK`)."""


def requeues(store: SqlStore, task_id: str) -> list[dict[str, Any]]:
    flt = EventFilter(task_id=task_id, types=frozenset({EventType.TASK_REQUEUED}))
    return [e.data for e in store.events_after(0, flt, 10)]


def test_a_claim_never_acknowledged_goes_back_to_queued_and_its_late_reports_are_fenced(store: SqlStore) -> None:
    task = submit(store)[0]
    [lost] = store.claim_for(BEATING, 1, None, now())  # answered into a dead connection
    store.sweep_liveness(60, now(9), auto_requeue=False, max_attempts=3)
    assert store.get_task(task.id).state is TaskState.RUNNING  # inside its window: its agent may still answer
    store.sweep_liveness(60, now(11), auto_requeue=False, max_attempts=3)
    back = store.get_task(task.id)
    assert (back.state, back.agent_id, back.claim_token) == (TaskState.QUEUED, None, None)
    [why] = requeues(store, task.id)
    assert (why["by"], why["reason"], why["previous_agent"]) == ("control-plane", "claim never acknowledged", "agent")
    with pytest.raises(Fenced):
        store.report(task.id, Report(Action.REPORT_RUNNING, lost.claim_token), now(12))
    assert store.heartbeat("agent", [(task.id, lost.claim_token)], now(12)).fenced == [task.id]
    [again] = store.claim_for(Claimant("agent-2", heartbeat_s=1.0), 1, None, now(13))
    assert again.task.id == task.id and again.attempt == 2
    done, _ = store.report(task.id, completed(again, {"00": 100}), now(14))
    assert done.state is TaskState.COMPLETED and done.agent_id == "agent-2"


@pytest.mark.parametrize("acknowledgement", ["heartbeat", "running report", "refused result"])
def test_a_claim_its_agent_acknowledged_is_never_taken_back_even_when_the_ack_came_late(
    store: SqlStore, acknowledgement: str
) -> None:
    task = submit(store)[0]
    [c] = store.claim_for(BEATING, 1, None, now())
    late = now(10.5)  # past its deadline, but before any sweep came to take it back
    if acknowledgement == "heartbeat":
        assert store.heartbeat("agent", [(task.id, c.claim_token)], late).fenced == []
    elif acknowledgement == "running report":
        store.report(task.id, Report(Action.REPORT_RUNNING, c.claim_token), late)
    else:  # the owner answered, with a wrong result: it still showed it holds the claim
        with pytest.raises(InvalidResult):
            store.report(task.id, completed(c, provenance={"attempt": 9}), late)
    store.sweep_liveness(60, now(30), auto_requeue=False, max_attempts=3)
    kept = store.get_task(task.id)
    assert (kept.state, kept.claim_token, kept.attempt) == (TaskState.RUNNING, c.claim_token, 1)
    assert requeues(store, task.id) == []


@pytest.mark.parametrize(
    ("heartbeat_s", "window_s"),
    [(1.0, 10), (30.0, 90), (None, 60)],  # the server's 10 s; three of a slow agent's beats; the liveness window
)
def test_the_window_is_at_least_three_heartbeats_and_the_liveness_window_for_an_agent_that_declares_none(
    store: SqlStore, heartbeat_s: float | None, window_s: float
) -> None:
    task = submit(store)[0]
    store.claim_for(Claimant("agent", heartbeat_s=heartbeat_s), 1, None, now())
    store.sweep_liveness(60, now(window_s - 1), auto_requeue=False, max_attempts=3)
    assert store.get_task(task.id).state is TaskState.RUNNING
    store.sweep_liveness(60, now(window_s + 1), auto_requeue=False, max_attempts=3)
    assert store.get_task(task.id).state is TaskState.QUEUED
    assert [d["reason"] for d in requeues(store, task.id)] == ["claim never acknowledged"]


def test_a_claim_taken_back_unacknowledged_spends_none_of_the_auto_requeue_attempts(store: SqlStore) -> None:
    task = submit(store)[0]
    store.claim_for(BEATING, 1, None, now())
    store.sweep_liveness(60, now(11), auto_requeue=True, max_attempts=2)  # never reached an agent
    [c] = store.claim_for(BEATING, 1, None, now(12))
    store.heartbeat("agent", [(task.id, c.claim_token)], now(12))
    store.sweep_liveness(60, now(80), auto_requeue=True, max_attempts=2)  # its owner went silent: 1 of 2 run
    assert store.get_task(task.id).state is TaskState.QUEUED
    [c] = store.claim_for(BEATING, 1, None, now(81))
    store.heartbeat("agent", [(task.id, c.claim_token)], now(81))
    store.sweep_liveness(60, now(150), auto_requeue=True, max_attempts=2)  # 2 of 2 run: left for an admin
    t = store.get_task(task.id)
    assert (t.state, t.attempt, t.stale(now(150), 60)) == (TaskState.RUNNING, 3, True)


def test_a_claimant_gone_before_its_claim_commits_takes_nothing(store: SqlStore) -> None:
    task = submit(store)[0]
    dead = Claimant("agent", heartbeat_s=1.0, gone=lambda: True)
    assert store.claim_for(dead, 1, None, now()) == []
    t = store.get_task(task.id)
    assert (t.state, t.attempt, t.agent_id) == (TaskState.QUEUED, 0, None)
    assert types(store, task.id) == [EventType.TASK_SUBMITTED]
    [c] = store.claim("agent-2", 1, None, now())
    assert c.task.id == task.id and c.attempt == 1
