"""What a user does with a tiny task: submit, wait (polling every 20 ms, or `vqpu_client.Client.wait`), fetch the
result; and a burst of tasks submitted at once, each result fetched as its terminal event arrives."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import httpx

from benchmarks.small_tasks.workload import CIRCUIT, DEVICE, DIALECT, SHOTS
from vqpu_client import Client
from vqpu_client.calls import TERMINAL_EVENTS
from vqpu_client.errors import TransportError

POLL_S = 0.02
TASK_TIMEOUT_S = 300.0
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class User:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.client = Client(url, key)

    def close(self) -> None:
        self.http.close()
        self.client.close()

    def body(self, seed: int) -> dict[str, Any]:
        return {"device": DEVICE, "circuit": CIRCUIT, "dialect": DIALECT, "shots": SHOTS, "seed": seed}

    def submit(self, seed: int) -> str:
        r = self.http.post("/v1/tasks", json=self.body(seed))
        if r.status_code != 201:
            raise SystemExit(f"submit refused: {r.status_code} {r.text}")
        task_id: str = r.json()["id"]
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/tasks/{task_id}")
        r.raise_for_status()
        task: dict[str, Any] = r.json()
        return task

    def events(self, task_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/tasks/{task_id}/events")
        r.raise_for_status()
        events: list[dict[str, Any]] = r.json()["events"]
        return events

    def result(self, task_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/tasks/{task_id}/result")
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def last_event_id(self) -> int:
        r = self.http.get("/v1/health")
        r.raise_for_status()
        last: int = r.json()["last_event_id"]
        return last

    # --- one at a time ------------------------------------------------------------------------

    def by_polling(self, seed: int) -> dict[str, Any]:
        """POST, GET /v1/tasks/{id} every 20 ms until it ends, GET the result."""
        began, submit_wall = time.perf_counter(), time.time()
        task_id = self.submit(seed)
        deadline, polls = time.monotonic() + TASK_TIMEOUT_S, 1
        while (task := self.task(task_id))["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise SystemExit(f"task {task_id} still {task['state']} after {TASK_TIMEOUT_S} s")
            time.sleep(POLL_S)
            polls += 1
        _completed(task)
        result = self.result(task_id)
        return _record("poll", seed, task_id, began, submit_wall, result, polls=polls)

    def by_client_wait(self, seed: int) -> dict[str, Any]:
        """`Client.submit`, `Client.wait` (the task's event stream), `Client.result`."""
        began, submit_wall = time.perf_counter(), time.time()
        view = self.client.submit(DEVICE, CIRCUIT, shots=SHOTS, dialect=DIALECT, seed=seed)
        task = self.client.wait(view.id, timeout_s=TASK_TIMEOUT_S)
        if task.state != "COMPLETED":
            raise SystemExit(f"task {view.id} ended {task.state}: {task.error}")
        result = self.client.result(view.id).model_dump(mode="json")
        return _record("wait", seed, view.id, began, submit_wall, result)

    # --- a burst --------------------------------------------------------------------------------

    def burst(self, seeds: list[int]) -> dict[str, Any]:
        """Submit every task at once (one POST after another), then fetch each result as its terminal event
        arrives on the event stream; from the first submit to the last result in hand."""
        ended: queue.Queue[tuple[str, str]] = queue.Queue()
        stop = threading.Event()
        start_after = self.last_event_id()
        watcher = threading.Thread(target=self._watch, args=(start_after, ended, stop), daemon=True)
        watcher.start()
        began, first_wall = time.perf_counter(), time.time()
        submitted: dict[str, tuple[int, float]] = {}
        for seed in seeds:
            wall = time.time()
            submitted[self.submit(seed)] = (seed, wall)
        submit_s = time.perf_counter() - began
        records: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + TASK_TIMEOUT_S
        while len(records) < len(submitted):  # every POST has answered: an event of another task is not ours
            try:
                task_id, state = ended.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                stop.set()
                missing = len(submitted) - len(records)
                raise SystemExit(f"burst: {missing} tasks not done after {TASK_TIMEOUT_S} s") from None
            if task_id not in submitted or task_id in records:
                continue
            if state != "TASK_COMPLETED":
                raise SystemExit(f"burst: task {task_id} ended {state}")
            seed, wall = submitted[task_id]
            records[task_id] = _record("burst", seed, task_id, began, wall, self.result(task_id))
        wall = time.perf_counter() - began
        stop.set()
        for r in records.values():  # e2e from each task's own submit
            r["e2e_s"] = r["in_hand_wall"] - r["submit_wall"]
        tasks = sorted(records.values(), key=lambda r: int(r["seed"]))
        return {
            "tasks": tasks,
            "first_submit_wall": first_wall,
            "submit_s": submit_s,
            "wall_s": wall,
            "tasks_per_s": len(tasks) / wall,
        }

    def _watch(self, after: int, ended: queue.Queue[tuple[str, str]], stop: threading.Event) -> None:
        with Client(self.url, self.key) as client:
            try:
                for event in client.events(types=sorted(TERMINAL_EVENTS), last_event_id=after):
                    ended.put((event.subject.removeprefix("task:"), event.type))
                    if stop.is_set():
                        return
            except TransportError:
                if not stop.is_set():  # the burst still waits on it; once it is over, its stack may be stopped
                    raise


def _completed(task: dict[str, Any]) -> None:
    if task["state"] != "COMPLETED":
        raise SystemExit(f"task {task['id']} ended {task['state']}: {task.get('error')}")


def _record(
    how: str, seed: int, task_id: str, began: float, submit_wall: float, result: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "how": how,
        "seed": seed,
        "task_id": task_id,
        "e2e_s": time.perf_counter() - began,
        "submit_wall": submit_wall,
        "in_hand_wall": time.time(),
        "counts": result["counts"],
        "runner_total_s": result["timings"]["total_s"],
        **extra,
    }
