"""The agent protocol: long-poll CLAIM woken by new work, fenced reports, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio

from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import Forbidden
from vqpu_service.domain.model import Agent, Claimed, HeartbeatReply, Principal, Role, Task
from vqpu_service.ports import Store
from vqpu_service.services import commands, liveness
from vqpu_service.services.claims import Claimant, ClaimService


class WorkSignal:
    """Wakes waiting CLAIMs when work may have appeared. Used on the event loop thread only."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify_threadsafe(self) -> None:
        """From a worker thread (a submit that just committed): wake waiters on the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.notify)

    def notify(self) -> None:
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, since: int, timeout: float) -> None:
        if self.generation != since:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class AgentService:
    def __init__(
        self, store: Store, claims: ClaimService, work: WorkSignal, max_wait_s: float, recheck_s: float
    ) -> None:
        self._store = store
        self._claims = claims
        self._work = work
        self._max_wait = max_wait_s
        self._recheck = recheck_s
        """A waiting CLAIM re-reads the database at least this often, even if no wake-up arrived."""

    async def claim(
        self, who: Principal, claimant: Claimant, max_tasks: int, devices: Sequence[str] | None, wait_s: float
    ) -> list[Claimed]:
        """Claim now, else wait up to `wait_s` for work and claim it; nothing once the claimant is gone."""
        _agent_only(who)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_s, self._max_wait)
        while True:
            if claimant.gone is not None and claimant.gone():
                return []  # it hung up while it waited: nobody to hand work to
            since = self._work.generation
            claimed = await anyio.to_thread.run_sync(self._claim_now, claimant, max_tasks, devices)
            remaining = deadline - loop.time()
            if claimed or remaining <= 0:
                return claimed
            await self._work.wait(since, min(remaining, self._recheck))

    def _claim_now(self, claimant: Claimant, max_tasks: int, devices: Sequence[str] | None) -> list[Claimed]:
        return self._claims.claim_for(claimant, max_tasks, devices, datetime.now(UTC))

    def report(self, who: Principal, task_id: str, rep: Report) -> tuple[Task, Outcome]:
        _agent_only(who)
        return commands.report(self._store, task_id, rep, datetime.now(UTC))

    def heartbeat(self, who: Principal, agent_id: str, tasks: Sequence[tuple[str, str]]) -> HeartbeatReply:
        _agent_only(who)
        return liveness.heartbeat(self._store, agent_id, tasks, datetime.now(UTC))

    def agents(self, who: Principal) -> list[Agent]:
        if not who.is_admin:
            raise Forbidden("only admins list agents")
        return self._store.agents()


def _agent_only(who: Principal) -> None:
    if who.role is not Role.AGENT:
        raise Forbidden(f"only agents speak the agent protocol; this key is a {who.role}")
