"""The one composition root: settings in, a wired Container and its background work out.

Nothing is created at import time. `build` picks SQLite or PostgreSQL from the database URL;
`lifespan` starts the event pump (and, on PostgreSQL, the LISTEN thread), the liveness sweep and
the first-start catalogue registration, and stops them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
from fastapi import FastAPI

from device_registry import catalog
from vqpu_service.adapters.auth import KeyRing, check_keys_file
from vqpu_service.adapters.broker import Broker
from vqpu_service.adapters.pg_listen import PostgresListener
from vqpu_service.adapters.pump import EventPump
from vqpu_service.adapters.sql.engine import make_engine
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.api.app import create_app
from vqpu_service.config import Settings
from vqpu_service.container import Container
from vqpu_service.domain.errors import Conflict
from vqpu_service.domain.events import DEVICE_EVENTS, WORK_AVAILABLE, Event
from vqpu_service.domain.liveness import AckWindow
from vqpu_service.ports import Store
from vqpu_service.services import epochs, liveness
from vqpu_service.services.agents import AgentService, WorkSignal
from vqpu_service.services.claims import ClaimService
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.events import EventService
from vqpu_service.services.queue_check import QueueInspector
from vqpu_service.services.tasks import TaskService
from vqpu_service.services.usage import UsageService
from vqpu_service.services.verdicts import REMEMBERED, Verdicts

log = logging.getLogger("vqpu_service")


def build_store(settings: Settings) -> SqlStore:
    store = SqlStore(make_engine(settings.database_url))
    store.create_schema()
    return store


def build(settings: Settings) -> Container:
    check_keys_file(settings.keys_file)
    work = WorkSignal()
    store = build_store(settings)
    devices = DeviceService(store, settings.device_cache_ttl_s)
    claims = build_claims(store, devices, settings)
    verdicts = claims.verdicts
    return Container(
        settings=settings,
        store=store,
        keys=KeyRing(settings.keys_file),
        devices=devices,
        tasks=TaskService(store, devices, settings, on_work=work.notify_threadsafe),
        agents=AgentService(store, claims, work, settings.max_claim_wait_s, settings.claim_recheck_s),
        work=work,
        broker=Broker(),
        verdicts=verdicts,
        usage=UsageService(store),
        events=EventService(store),
        queue=QueueInspector(store, devices, verdicts),
    )


def build_claims(store: Store, devices: DeviceService, settings: Settings) -> ClaimService:
    """CLAIM's policy over the store, with the verdicts its re-check remembers; the queued-violations
    inspection shares them (`ClaimService.verdicts`), so neither pays twice for one (task, epoch)."""
    ack = AckWindow(least_s=settings.claim_ack_window_s, undeclared_s=settings.liveness_window_s)
    return ClaimService(store, Verdicts(devices, REMEMBERED), settings.max_running_per_owner, ack)


def register_catalog(store: SqlStore) -> list[str]:
    """On a fresh database, register every bundled device; returns the ids this call registered.

    Server processes starting together on one fresh PostgreSQL database may race here: a device
    another process registered first is skipped, so every process starts.
    """
    if store.devices():
        return []
    now = datetime.now(UTC)
    registered = []
    for name in catalog.names():
        try:
            epochs.register(store, catalog.load(name), now)
        except Conflict:
            continue
        registered.append(name)
    return registered


def app_for(settings: Settings, pid_file: Path | None = None) -> FastAPI:
    container = build(settings)
    return create_app(container, lifespan=lambda app: lifespan(container, pid_file))


@contextlib.asynccontextmanager
async def lifespan(c: Container, pid_file: Path | None = None) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    c.work.bind(loop)
    store = c.store
    assert isinstance(store, SqlStore)
    if c.settings.register_catalog:
        registered = await anyio.to_thread.run_sync(register_catalog, store)
        if registered:
            log.info("fresh database: registered %d catalogue devices", len(registered))

    def on_event(event: Event) -> None:
        if event.type in WORK_AVAILABLE:
            c.work.notify()
        elif event.type in DEVICE_EVENTS:
            c.devices.invalidate(event.device_id)

    pump = EventPump(store, c.broker, on_event, c.settings.event_poll_s)
    store.tx.after_commit.append(pump.poke)
    listener = None if store.tx.sqlite else PostgresListener(c.settings.database_url, pump.poke)
    pumping = asyncio.create_task(pump.run(), name="event-pump")
    sweeping = asyncio.create_task(_sweep(c), name="liveness")
    if listener is not None:
        listener.start()
    c.ready = True
    try:
        yield
    finally:
        c.ready = False
        # The pump is asked to stop, not cancelled: on Python 3.11 asyncio.wait_for can swallow a
        # cancel that races its wake-up (a commit's poke), and the pump then ran on forever, so
        # shutdown hung (seen as a test whose TestClient never closed).
        await pump.stop()
        sweeping.cancel()
        await asyncio.gather(pumping, sweeping, return_exceptions=True)
        c.broker.close()  # open SSE streams end now rather than at their next keep-alive
        if listener is not None:
            await anyio.to_thread.run_sync(listener.stop)
        store.tx.after_commit.remove(pump.poke)
        store.close()
        if pid_file is not None:  # here, not after uvicorn.run: uvicorn re-raises SIGTERM once shut down
            pid_file.unlink(missing_ok=True)


async def _sweep(c: Container) -> None:
    s = c.settings
    while True:
        await asyncio.sleep(s.sweep_interval_s)
        try:
            await anyio.to_thread.run_sync(
                lambda: liveness.sweep(
                    c.store,
                    s.liveness_window_s,
                    datetime.now(UTC),
                    auto_requeue=s.auto_requeue,
                    max_attempts=s.max_attempts,
                )
            )
        except Exception:  # the sweep must outlive a transient database error; it runs again shortly
            log.exception("liveness sweep failed")
