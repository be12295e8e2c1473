"""What admission prices against, stored over SQLite and PostgreSQL alike: a task's estimate travels
with it, and the slot memory agents declare when they claim is what a device can offer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from tests.integration.control_plane.api_client import Api
from tests.integration.control_plane.tasks import LINE, new_task
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.admission import largest_slot
from vqpu_service.domain.model import SlotCapacity

GIB = 1024**3
PRICE = {"memory_bytes": 4096, "expanded_ops": 3, "runtime_s": 1.5}


def now(offset_s: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


def slot_memory(store: SqlStore, device_id: str) -> int | None:
    """The largest host slot a live agent serving the device declared."""
    return largest_slot(store.slot_capacities(device_id), cpu_only=True)


def test_a_tasks_estimate_is_stored_with_it_and_an_unpriced_task_reads_none(store: SqlStore) -> None:
    priced, _ = store.submit(replace(new_task(store), estimate=PRICE), now())
    unpriced, _ = store.submit(new_task(store), now())
    assert store.get_task(priced.id).estimate == PRICE
    assert store.get_task(unpriced.id).estimate is None
    [claimed, _] = store.claim("agent", 2, None, now())
    assert claimed.task.estimate == PRICE


def test_no_device_has_a_slot_size_until_an_agent_serving_it_declares_one(store: SqlStore) -> None:
    assert slot_memory(store, LINE) is None
    store.claim("old-agent", 1, None, now())  # an agent from before capacities: declares nothing
    assert slot_memory(store, LINE) is None
    store.claim("fez-only", 1, ["ibm-fez"], now(), SlotCapacity(64 * GIB))
    assert slot_memory(store, LINE) is None and slot_memory(store, "ibm-fez") == 64 * GIB


def test_the_largest_slot_of_the_agents_serving_a_device_counts_and_a_lost_agent_stops_counting(
    store: SqlStore,
) -> None:
    store.claim("small", 1, None, now(), SlotCapacity(8 * GIB, None, 600.0))
    store.claim("big", 1, [LINE, "ibm-fez"], now(), SlotCapacity(32 * GIB, 80 * GIB, 3600.0))
    store.claim("elsewhere", 1, ["ibm-fez"], now(), SlotCapacity(128 * GIB))
    assert slot_memory(store, LINE) == 32 * GIB
    assert slot_memory(store, "ibm-fez") == 128 * GIB
    assert slot_memory(store, "ring-12") == 8 * GIB  # "small" claims for any device
    big = {a.agent_id: a for a in store.agents()}["big"]
    assert big.capacity == SlotCapacity(32 * GIB, 80 * GIB, 3600.0) and big.devices == ("ibm-fez", LINE)

    store.sweep_liveness(60, now(61), auto_requeue=False, max_attempts=3)  # every agent silent: lost
    assert slot_memory(store, LINE) is None
    store.claim("small", 1, None, now(62), SlotCapacity(8 * GIB))  # back, and says so
    assert slot_memory(store, LINE) == 8 * GIB


def test_a_claim_over_http_declares_the_agents_slot(api: Api) -> None:
    body = {"agent_id": "a", "wait_s": 0, "devices": [LINE], "capacity": {"memory_bytes": 2 * GIB, "max_runtime_s": 60}}
    assert api.call("POST", "/v1/agent/claim", "agent", json=body).status_code == 204
    store = api.client.app.state.container.store  # type: ignore[attr-defined]
    assert slot_memory(store, LINE) == 2 * GIB and slot_memory(store, "ibm-fez") is None
    [agent] = store.agents()
    assert agent.capacity == SlotCapacity(2 * GIB, None, 60.0)


def test_a_capacity_no_database_can_hold_is_a_400_not_a_crash(api: Api) -> None:
    body = {"agent_id": "a", "capacity": {"memory_bytes": 2**64}}
    r = api.call("POST", "/v1/agent/claim", "agent", json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_REQUEST")


def test_an_agents_latest_claim_replaces_what_it_declared_before(store: SqlStore) -> None:
    store.claim("agent", 1, [LINE], now(), SlotCapacity(32 * GIB))
    store.claim("agent", 1, ["ibm-fez"], now(), SlotCapacity(16 * GIB))
    assert slot_memory(store, LINE) is None and slot_memory(store, "ibm-fez") == 16 * GIB
    store.claim("agent", 1, None, now())  # restarted as an older release
    assert slot_memory(store, "ibm-fez") is None


def test_a_database_from_before_estimates_capacities_and_fair_claims_gains_their_columns_and_index(
    store: SqlStore,
) -> None:
    old, _ = store.submit(new_task(store), now())
    store.claim("agent", 1, ["ibm-fez"], now())
    with store.tx.engine.begin() as conn:  # the tables an older release made
        conn.execute(text("ALTER TABLE task DROP COLUMN estimate"))
        for column in ("memory_bytes", "gpu_memory_bytes", "max_runtime_s", "devices"):
            conn.execute(text(f"ALTER TABLE agent DROP COLUMN {column}"))
        conn.execute(text("DROP INDEX ix_task_state_owner_seq"))
    assert "estimate" not in {c["name"] for c in inspect(store.tx.engine).get_columns("task")}
    store.create_schema()  # what every start does
    store.create_schema()  # and again: adding is done once
    assert "ix_task_state_owner_seq" in {i["name"] for i in inspect(store.tx.engine).get_indexes("task")}
    assert store.get_task(old.id).estimate is None
    assert slot_memory(store, "ibm-fez") is None
    store.claim("agent", 1, None, now(), SlotCapacity(GIB))
    assert slot_memory(store, "ibm-fez") == GIB
    priced, _ = store.submit(replace(new_task(store), estimate=PRICE), now())
    assert store.get_task(priced.id).estimate == PRICE
