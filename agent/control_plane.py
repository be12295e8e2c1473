"""The agent's side of the agent protocol: CLAIM, HEARTBEAT and the four reports, over outbound HTTP.

Reports are retried with backoff on transport errors and 5xx answers: the fencing contract makes a
repeated report idempotent (the same terminal report from the same lineage answers 200 `repeated`).
A 409 is final: `Fenced` (the claim token is no longer current: stop, report nothing) or `Rejected`
(any other refusal, e.g. the task is already terminal). Exceptions:

    ControlPlaneError            the control plane cannot be used (bad key, bad request, gave up retrying)
      ├── Fenced                 409 FENCED
      └── Rejected               another 4xx answer to a report
"""

from __future__ import annotations

import logging
import random
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from vqpu_protocol.api.agent import (
    CancelledReport,
    ClaimedTask,
    ClaimRequest,
    ClaimResponse,
    CompletedReport,
    FailedReport,
    HeartbeatReply,
    HeartbeatRequest,
    HeartbeatTask,
    ReportAck,
    RunningReport,
    SlotCapacity,
)
from vqpu_protocol.codes import ErrorCode

log = logging.getLogger("agent.control_plane")

Report = RunningReport | CompletedReport | FailedReport | CancelledReport
_KIND: dict[type[BaseModel], str] = {
    RunningReport: "running",
    CompletedReport: "completed",
    FailedReport: "failed",
    CancelledReport: "cancelled",
}
M = TypeVar("M", bound=BaseModel)


class ControlPlaneError(Exception):
    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Fenced(ControlPlaneError):
    """The claim token is no longer current: the task is someone else's now."""


class Rejected(ControlPlaneError):
    """The control plane refused the report (the task is terminal, or the report is invalid)."""


class ControlPlane:
    """One agent's connection to the control plane. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        key: str,
        agent_id: str,
        *,
        retry_for_s: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        capacity: SlotCapacity | None = None,
        heartbeat_s: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.agent_id = agent_id
        self.capacity = capacity  # what one slot holds (the site file's): sent with every claim
        # How often this agent heartbeats: the control plane takes back a claim it does not acknowledge within a
        # few of these (a claim answered over a connection its agent had lost).
        self.heartbeat_s = heartbeat_s
        self.retry_for_s = retry_for_s
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "vqpu-agent"},
            timeout=httpx.Timeout(10.0, read=45.0),
            transport=transport,
        )

    async def __aenter__(self) -> ControlPlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def task_url(self, task_id: str) -> str:
        return f"{self.url}/v1/tasks/{task_id}"

    async def claim(self, max_tasks: int, wait_s: float, devices: list[str] | None = None) -> list[ClaimedTask]:
        """Long-poll for up to `max_tasks` tasks; [] when none came within `wait_s`."""
        body = ClaimRequest(
            agent_id=self.agent_id,
            max_tasks=max_tasks,
            wait_s=wait_s,
            devices=devices,
            capacity=self.capacity,
            heartbeat_s=self.heartbeat_s,
        )
        response = await self._send("POST", "/v1/agent/claim", body, timeout=wait_s + 15.0)
        if response.status_code == 204:
            return []
        return _parse(ClaimResponse, response).tasks

    async def heartbeat(self, tasks: dict[str, str]) -> HeartbeatReply:
        """`tasks`: task id → claim token of every task this agent owns."""
        body = HeartbeatRequest(
            agent_id=self.agent_id, tasks=[HeartbeatTask(id=t, claim_token=tok) for t, tok in tasks.items()]
        )
        return _parse(HeartbeatReply, await self._send("POST", "/v1/agent/heartbeat", body))

    async def report(self, task_id: str, report: Report) -> ReportAck:
        """Send one report, retrying transient failures for up to `retry_for_s`; raises Fenced / Rejected."""
        path = f"/v1/agent/tasks/{task_id}/{_KIND[type(report)]}"
        return _parse(ReportAck, await self._send("POST", path, report, retry=True))

    async def _send(
        self, method: str, path: str, body: BaseModel, *, retry: bool = False, timeout: float | None = None
    ) -> httpx.Response:
        content = body.model_dump_json(by_alias=True)
        deadline = anyio.current_time() + (self.retry_for_s if retry else 0.0)
        delay = 0.1
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    content=content,
                    headers={"Content-Type": "application/json"},
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                problem: str = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    _raise_for(response)
                    return response
                problem = f"HTTP {response.status_code}"
            if anyio.current_time() + delay > deadline:
                raise ControlPlaneError(f"{method} {path}: {problem}")
            log.warning("%s %s: %s; retrying in %.1f s", method, path, problem, delay)
            await anyio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 5.0)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    code, message = _error_of(response)
    text = f"{response.request.method} {response.request.url.path}: {response.status_code} {code}: {message}"
    if response.status_code == 409 and code == ErrorCode.FENCED:
        raise Fenced(text, response.status_code, code)
    if response.status_code in (409, 422) and "/v1/agent/tasks/" in response.request.url.path:
        raise Rejected(text, response.status_code, code)
    raise ControlPlaneError(text, response.status_code, code)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error: Any = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "UNKNOWN", response.text[:200]


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ControlPlaneError(f"{response.request.url.path}: unexpected answer: {exc}") from None
