"""An agent back from a crash (issue 20): the claims it never noted as ended are asked about, and each is
mirrored into Prefect as the control plane holds it: a task its own attempt ended keeps that state
(COMPLETED, not "handed to another attempt"), a fenced one is Cancelled, and neither is run or reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx

from agent.claims import Claim, open_claims
from agent.control_plane import ControlPlane
from agent.engine import Engine, EngineSettings
from agent.scheduler.base import Resources
from agent.scheduler.memory import MemoryScheduler
from agent.view import PrefectView


class RecordingView(PrefectView):
    """What the engine tells the operators' view, recorded; nothing else may be told."""

    def __init__(self) -> None:
        self.mirrored: list[tuple[str, str, int, str | None]] = []

    def ended_meanwhile(self, note: Any, run_dir: Path, state: str | None, fenced: bool) -> None:
        self.mirrored.append(("fenced" if fenced else "ended", note.task_id, note.attempt, state))

    def claimed(self, execution: Any) -> None:
        raise AssertionError("a claim that is over must not be run again")


def test_a_restarted_agent_mirrors_its_own_ended_task_as_ended_and_a_fenced_one_as_fenced(tmp_path: Path) -> None:
    for task_id in ("t-done", "t-moved"):
        run_dir = tmp_path / f"{task_id}.1"
        run_dir.mkdir(mode=0o700)
        Claim(task_id, 1, f"tok-{task_id}", "line-16", "agent-1").save(run_dir)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        assert request.url.path == "/v1/agent/heartbeat", request.url.path
        named = {t["id"]: t["claim_token"] for t in json.loads(request.content)["tasks"]}
        assert named == {"t-done": "tok-t-done", "t-moved": "tok-t-moved"}
        return httpx.Response(200, json={"cancel": [], "fenced": ["t-moved"], "ended": {"t-done": "COMPLETED"}})

    prefect = RecordingView()

    async def main() -> None:
        control_plane = ControlPlane("http://cp", "key", "agent-1", transport=httpx.MockTransport(answer))
        settings = EngineSettings(
            slots=2, run_root=tmp_path, claim_wait_s=0, heartbeat_s=1, grace_s=0, resources=Resources(cpus=1)
        )
        engine = Engine(settings, control_plane, MemoryScheduler(), prefect)
        async with control_plane, anyio.create_task_group() as runs:
            await engine._reconcile(runs)
        assert engine.inflight == {}

    anyio.run(main)
    assert sorted(prefect.mirrored) == [("ended", "t-done", 1, "COMPLETED"), ("fenced", "t-moved", 1, None)]
    assert open_claims(tmp_path, "agent-1") == []  # both noted as over: a second restart asks nothing
    assert [r.url.path for r in sent] == ["/v1/agent/heartbeat"]  # nothing reported, nothing run
