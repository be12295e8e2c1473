"""A site for the agent's end-to-end tests: a real control plane process, the session's real Prefect
server, and real agents started from a site file, with the REST calls the tests make."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from harness.agents import AgentProcess, site_file
from harness.servers import ServerProcess

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


class Site:
    def __init__(
        self,
        workdir: Path,
        control_plane: ServerProcess,
        keys: dict[str, str],
        prefect_api_url: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.control_plane = control_plane
        self.keys = keys
        self.prefect_api_url = prefect_api_url
        self.agents: list[AgentProcess] = []
        self.user = httpx.Client(base_url=control_plane.url, headers=self._auth("user"), timeout=30)
        self.admin = httpx.Client(base_url=control_plane.url, headers=self._auth("admin"), timeout=30)
        self.agent_http = httpx.Client(base_url=control_plane.url, headers=self._auth("agent"), timeout=30)

    def _auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def agent(
        self,
        base: str = "local",
        agent_id: str = "agent-1",
        env: dict[str, str] | None = None,
        key_in_environment: bool = False,
        **overrides: Any,
    ) -> AgentProcess:
        """A started agent for deployments/sites/BASE.yaml, its run_root in this site's workdir."""
        assert self.prefect_api_url is not None, "agents need a Prefect server: give the site its API URL"
        settings = {"run_root": str(self.workdir / "runs"), "grace_s": 30, **overrides}
        path = site_file(self.workdir, base, **settings)
        agent = AgentProcess(
            self.workdir,
            path,
            url=self.control_plane.url,
            key=self.keys["agent"],
            prefect_api_url=self.prefect_api_url,
            agent_id=agent_id,
            admin_key=self.keys["admin"],
            env=env,
            key_in_environment=key_in_environment,
        )
        self.agents.append(agent)
        return agent.start()

    def submit(self, circuit: str, *, dialect: str = "qasm3", shots: int = 1000, seed: int | None = 7) -> str:
        body: dict[str, Any] = {"device": "ibm-fez", "circuit": circuit, "dialect": dialect, "shots": shots}
        if seed is not None:
            body["seed"] = seed
        r = self.user.post("/v1/tasks", json=body)
        assert r.status_code == 201, r.text
        task_id: str = r.json()["id"]
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.user.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        task: dict[str, Any] = r.json()
        return task

    def wait(
        self, task_id: str, states: Iterable[str] = TERMINAL, timeout_s: float = 120, **flags: Any
    ) -> dict[str, Any]:
        """Poll every 20 ms until the task is in one of `states` (and its `flags` match, e.g. stale=True)."""
        wanted = set(states)
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.task(task_id)
            if task["state"] in wanted and all(task.get(k) == v for k, v in flags.items()):
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} is {task['state']} after {timeout_s} s, waiting for {wanted}")
            time.sleep(0.02)

    def wait_running(self, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
        """Until the agent has reported where the task runs (its runner step has started)."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.task(task_id)
            if task["state"] == "RUNNING" and (task["scheduler"] or {}).get("state") == "RUNNING":
                return task
            if task["state"] in TERMINAL or time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} never ran: {task['state']} {task['scheduler']} {task['error']}")
            time.sleep(0.02)

    def result(self, task_id: str) -> dict[str, Any]:
        r = self.user.get(f"/v1/tasks/{task_id}/result")
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def events(self, task_id: str) -> list[dict[str, Any]]:
        r = self.user.get(f"/v1/tasks/{task_id}/events")
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events

    def close(self) -> None:
        for agent in self.agents:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.stop()
        for client in (self.user, self.admin, self.agent_http):
            client.close()
