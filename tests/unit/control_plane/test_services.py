"""The services against the in-memory store: admission, tenancy, recovery, CLAIM's policy and the usage
export, with no database and no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_registry import catalog, parse_snapshot
from harness.circuits import BELL
from vqpu_protocol.api.tasks import SubmitTask
from vqpu_service.adapters.memory import MemoryStore
from vqpu_service.bootstrap import build_claims
from vqpu_service.config import Settings
from vqpu_service.domain.decisions import Report
from vqpu_service.domain.errors import Forbidden, InvalidRequest, NotAdmissible, NotFound, QueueFull
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import Action, TaskState
from vqpu_service.domain.model import Principal, Role
from vqpu_service.domain.usage import Grouping
from vqpu_service.services import commands, epochs
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.tasks import TaskService
from vqpu_service.services.usage import UsageService

LINE = "line-16"
ALICE, BOB = Principal("alice", Role.USER), Principal("bob", Role.USER)
ROOT, AGENT = Principal("root", Role.ADMIN), Principal("agent", Role.AGENT)


class Plane:
    """The services over one in-memory store, wired as bootstrap wires them."""

    def __init__(self, max_running: int = 1000, max_queued: int = 1000) -> None:
        self.store = MemoryStore()
        epochs.register(self.store, catalog.load(LINE), datetime.now(UTC))
        settings = Settings(
            database_url="sqlite:///unused",
            keys_file=Path("unused.json"),
            max_running_per_owner=max_running,
            max_queued_per_owner=max_queued,
        )
        self.woken = 0
        self.devices = DeviceService(self.store, ttl_s=0)
        self.tasks = TaskService(self.store, self.devices, settings, on_work=self._wake)
        self.claims = build_claims(self.store, self.devices, settings)
        self.usage = UsageService(self.store)

    def _wake(self) -> None:
        self.woken += 1

    def submit(self, who: Principal = ALICE, circuit: str = BELL) -> str:
        body = SubmitTask.model_validate({"device": LINE, "circuit": circuit, "dialect": "qasm3", "shots": 10})
        task, created = self.tasks.submit(who, body, None)
        assert created
        return task.id


def test_a_submission_is_admitted_queued_and_wakes_claims_and_an_inadmissible_one_stores_nothing() -> None:
    plane = Plane()
    task_id = plane.submit()
    assert plane.tasks.get(ALICE, task_id).state is TaskState.QUEUED and plane.woken == 1
    with pytest.raises(NotAdmissible):
        plane.submit(circuit=BELL.replace("sx $0", "h $0"))
    assert len(plane.tasks.list_tasks(ROOT, None, None, 10, None)) == 1


def test_a_user_sees_only_their_own_tasks_and_an_agent_reads_none() -> None:
    plane = Plane()
    task_id = plane.submit(ALICE)
    for stranger in (BOB, AGENT):
        with pytest.raises(NotFound):
            plane.tasks.get(stranger, task_id)
        with pytest.raises(NotFound):
            plane.tasks.events(stranger, task_id)
    assert [e.type for e in plane.tasks.events(ALICE, task_id)] == [EventType.TASK_SUBMITTED]
    assert plane.tasks.list_tasks(BOB, None, None, 10, None) == []


def test_a_submit_past_the_queued_cap_from_the_settings_is_queue_full() -> None:
    plane = Plane(max_queued=2)
    plane.submit()
    plane.submit()
    with pytest.raises(QueueFull):
        plane.submit()
    plane.submit(BOB)  # per owner


def test_only_an_admin_requeues_or_force_fails_and_a_requeue_wakes_claims() -> None:
    plane = Plane()
    task_id = plane.submit()
    [claimed] = plane.claims.claim("a1", 1, None, datetime.now(UTC))
    for who in (ALICE, AGENT):
        with pytest.raises(Forbidden):
            plane.tasks.requeue(who, task_id, "x")
        with pytest.raises(Forbidden):
            plane.tasks.force_fail(who, task_id, "x")
    woken = plane.woken
    requeued = plane.tasks.requeue(ROOT, task_id, "agent died")
    assert requeued.state is TaskState.QUEUED and requeued.claim_token is None and plane.woken == woken + 1
    assert plane.tasks.force_fail(ROOT, task_id, "give up").state is TaskState.FAILED
    assert claimed.task.id == task_id


def test_a_claim_is_fair_across_owners_and_honours_the_running_cap() -> None:
    plane = Plane(max_running=2)
    alices = [plane.submit(ALICE) for _ in range(4)]
    bobs = [plane.submit(BOB) for _ in range(1)]
    taken = [c.task.id for c in plane.claims.claim("a1", 10, None, datetime.now(UTC))]
    assert taken == [alices[0], bobs[0], alices[1]]  # then alice is at the cap
    assert plane.claims.claim("a1", 10, None, datetime.now(UTC)) == []


def test_a_task_the_epoch_it_binds_no_longer_admits_fails_not_admissible_at_claim() -> None:
    plane = Plane()
    doomed = plane.submit()
    data = plane.store.current_epoch(LINE).snapshot().to_json_dict()
    data["qubits"][1]["status"] = "OFFLINE"
    moved = plane.devices.put(LINE, parse_snapshot(data))
    assert plane.claims.claim("a1", 1, None, datetime.now(UTC)) == []
    task = plane.tasks.get(ALICE, doomed)
    assert task.state is TaskState.FAILED and task.error is not None
    assert task.error["code"] == "NOT_ADMISSIBLE_AT_CLAIM" and task.error["detail"]["epoch"] == moved.epoch


def test_the_usage_export_is_for_admins_over_a_non_empty_period() -> None:
    plane = Plane()
    plane.submit()
    [claimed] = plane.claims.claim("a1", 1, None, datetime.now(UTC))
    error = {"code": "RUNNER_FAILED", "message": "x"}
    used = {"wall_s": 2.0, "cpu_s": 3.0, "gpu_s": None, "peak_rss_bytes": 5, "measured_by": "runner"}
    rep = Report(Action.REPORT_FAILED, claimed.claim_token, error=error, usage=used)
    commands.report(plane.store, claimed.task.id, rep, datetime.now(UTC))
    since = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(Forbidden):
        plane.usage.export(ALICE, since, None, Grouping.OWNER)
    with pytest.raises(InvalidRequest):
        plane.usage.export(ROOT, since, since, Grouping.OWNER)
    [alice] = plane.usage.export(ROOT, since, None, Grouping.OWNER).rows
    assert (alice.key, alice.failed, alice.wall_s, alice.cpu_s, alice.peak_rss_bytes) == ("alice", 1, 2.0, 3.0, 5)
