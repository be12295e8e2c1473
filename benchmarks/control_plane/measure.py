"""The measurements, each over real HTTP to a running `vqpu-server` (and its in-process baselines).

Clients keep their connections alive (one `httpx.Client` per thread), as the Python client and the
agent do. Times are client-side `perf_counter` spans: what a user or an agent waits.
"""

from __future__ import annotations

import queue
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx

from benchmarks.control_plane.workload import FEZ, SMALL_DEVICE, fez, fez_circuit
from device_registry import catalog
from device_registry.admissibility import check
from harness.circuits import BELL, hostile_circuits
from harness.documents import result_document
from vqpu_service.api.views import claimed_view
from vqpu_service.bootstrap import build_claims
from vqpu_service.config import Settings
from vqpu_service.domain.decisions import Report
from vqpu_service.domain.lifecycle import Action
from vqpu_service.domain.model import NewTask
from vqpu_service.ports import Store
from vqpu_service.services import commands
from vqpu_service.services.devices import DeviceService

Summary = dict[str, float]


def summarize(values: list[float]) -> Summary:
    """n, mean, p50, p90, p99, max of a series (seconds)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": statistics.median(values),
        "p90": cuts[89],
        "p99": cuts[98],
        "max": max(values),
    }


@contextmanager
def client(base: str, key: str | None = None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as c:
        yield c


def _expect(r: httpx.Response, status: int) -> dict[str, Any]:
    if r.status_code != status:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} (expected {status}): {r.text}")
    body: dict[str, Any] = r.json() if r.content else {}
    return body


def _timed_series(call: Callable[[], object], n: int, warmup: int) -> list[float]:
    out: list[float] = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        call()
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


# --- floors and admission -------------------------------------------------------------------------


def http_floor(base: str, n: int, warmup: int) -> list[float]:
    """`GET /v1/health`: loopback + uvicorn + the app's middleware, no auth, no database."""
    with client(base) as c:
        return _timed_series(lambda: _expect(c.get("/v1/health"), 200), n, warmup)


def in_process_check(n: int, warmup: int) -> list[float]:
    """The admission check itself (`device_registry.admissibility.check`), in this process."""
    circuit, snap = fez_circuit(), fez()

    def one() -> None:
        if check(circuit, "qasm3", snap):
            raise RuntimeError("the benchmark circuit is not admissible on Fez")

    return _timed_series(one, n, warmup)


CHECK_SIZES = (16 * 1024, 128 * 1024, 1024 * 1024)


def check_scaling(reps: int) -> dict[str, dict[str, Any]]:
    """The admission check on each hostile shape (and a valid program) at 16 KB, 128 KB and 1 MiB:
    median seconds per size and microseconds per KB, which stay flat when the check is linear."""
    line = catalog.load(SMALL_DEVICE)
    out: dict[str, dict[str, Any]] = {}
    for size in CHECK_SIZES:
        for shape, circuit in hostile_circuits(size).items():
            median = statistics.median(_timed_series(lambda c=circuit: check(c, "qasm3", line), reps, 1))
            row = out.setdefault(shape, {"seconds": {}, "us_per_kb": {}})
            row["seconds"][str(size)] = median
            row["us_per_kb"][str(size)] = median * 1e6 / (size / 1024)
    return out


def viability(base: str, key: str, n: int, warmup: int) -> list[float]:
    """`POST /v1/devices/ibm-fez/viability`: the admission check over HTTP, nothing stored."""
    body = {"circuit": fez_circuit(), "dialect": "qasm3"}
    with client(base, key) as c:

        def one() -> None:
            if _expect(c.post(f"/v1/devices/{FEZ}/viability", json=body), 200)["violations"]:
                raise RuntimeError("viability reported violations for the benchmark circuit")

        return _timed_series(one, n, warmup)


def admission(base: str, key: str, n: int, warmup: int) -> list[float]:
    """`POST /v1/tasks` with the 1,000-gate Fez circuit: parse, admit, store, 201."""
    body = {"device": FEZ, "circuit": fez_circuit(), "dialect": "qasm3", "shots": 1000}
    with client(base, key) as c:
        return _timed_series(lambda: _expect(c.post("/v1/tasks", json=body), 201), n, warmup)


def drain_evicted(sock: socket.socket, timeout_s: float) -> bool:
    """Read what the stalled subscriber was sent; True if the server evicted it (and said so)."""
    sock.settimeout(timeout_s)
    seen = b""
    try:
        while chunk := sock.recv(65536):
            seen = (seen + chunk)[-4096:]
            if b": evicted: slow consumer" in seen:
                return True
    except TimeoutError:
        pass
    finally:
        sock.close()
    return b": evicted: slow consumer" in seen


def _complete(c: httpx.Client, item: dict[str, Any]) -> str:
    """Report one claimed task COMPLETED with its claim token, as an agent would; returns its id."""
    task_id: str = item["task"]["id"]
    report = {"claim_token": item["claim_token"], "result": result_document(item)}
    if _expect(c.post(f"/v1/agent/tasks/{task_id}/completed", json=report), 200)["state"] != "COMPLETED":
        raise RuntimeError(f"{task_id} did not complete")
    return task_id


# --- dispatch: submit -> claim --------------------------------------------------------------------


def dispatch(base: str, user_key: str, agent_key: str, n: int, warmup: int, *, poll_s: float | None) -> dict[str, Any]:
    """One agent claiming for SMALL_DEVICE, one submitter; latency from the submit leaving the client to
    the claim reply arriving at the agent.

    `poll_s=None`: the agent long-polls (`wait_s` 30) and the server wakes it on submit. A number: the
    agent short-polls (`wait_s` 0) and sleeps `poll_s` after each empty reply, as a polling agent would.
    After each completion the submitter waits a random 50 ms + U(0, max(0.1 s, poll_s)), so a
    long-polling agent is parked when the next task arrives and a polling one is anywhere in its
    interval (its expected wait is then poll_s / 2 plus a request).
    """
    claimed: queue.Queue[tuple[str, float]] = queue.Queue()
    stop = threading.Event()
    claim_requests = [0]
    errors: list[BaseException] = []

    def agent() -> None:
        body = {"agent_id": "bench-dispatch", "devices": [SMALL_DEVICE], "wait_s": 30.0 if poll_s is None else 0.0}
        try:
            with client(base, agent_key) as c:
                while not stop.is_set():
                    r = c.post("/v1/agent/claim", json=body)
                    t = time.perf_counter()
                    claim_requests[0] += 1
                    if r.status_code == 204:
                        if poll_s is not None:
                            time.sleep(poll_s)
                        continue
                    for item in _expect(r, 200)["tasks"]:
                        claimed.put((_complete(c, item), t))
        except BaseException as exc:  # surfaced to the submitter below
            errors.append(exc)
            claimed.put(("", 0.0))

    thread = threading.Thread(target=agent, name="bench-agent", daemon=True)
    thread.start()
    latencies: list[float] = []
    submit_s: list[float] = []
    body = {"device": SMALL_DEVICE, "circuit": BELL, "dialect": "qasm3", "shots": 100}
    with client(base, user_key) as c:
        time.sleep(0.2)
        for i in range(warmup + n):
            if i == warmup:
                claim_requests[0] = 0
            time.sleep(random.uniform(0.05, 0.05 + max(0.1, poll_s or 0.0)))
            t0 = time.perf_counter()
            task = _expect(c.post("/v1/tasks", json=body), 201)
            t1 = time.perf_counter()
            task_id, t_claim = claimed.get(timeout=120)
            if errors:
                raise RuntimeError("the benchmark agent failed") from errors[0]
            if task_id != task["id"]:
                raise RuntimeError(f"the agent claimed {task_id}, not the task just submitted ({task['id']})")
            if i >= warmup:
                latencies.append(t_claim - t0)
                submit_s.append(t1 - t0)
        requests = claim_requests[0]
        stop.set()
        if poll_s is None:  # wake the parked long-poll so the agent sees the stop flag
            _expect(c.post("/v1/tasks", json=body), 201)
    thread.join(60)
    return {
        "latency_s": latencies,
        "submit_s": submit_s,
        "claim_requests_per_task": requests / n,
    }


# --- lifecycle throughput -------------------------------------------------------------------------


class _Tally:
    def __init__(self, target: int) -> None:
        self.target = target
        self.done: dict[str, float] = {}
        self.claim_requests = 0
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def complete(self, task_id: str) -> None:
        with self.lock:
            if task_id in self.done:
                raise RuntimeError(f"task {task_id} completed twice")
            self.done[task_id] = time.perf_counter()
            if len(self.done) >= self.target:
                self.finished.set()


def _run_lifecycle(
    tasks: int,
    agents: int,
    submitters: int,
    submit: Callable[[int], tuple[str, float]],
    agent: Callable[[int, _Tally], None],
) -> dict[str, Any]:
    tally = _Tally(tasks)
    submitted: dict[str, float] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
                tally.finished.set()

        return run

    def submitter(k: int) -> None:
        for _ in range(k, tasks, submitters):
            task_id, t0 = submit(k)
            with lock:
                submitted[task_id] = t0

    threads = [threading.Thread(target=guard(partial(agent, a, tally)), daemon=True) for a in range(agents)]
    threads += [threading.Thread(target=guard(partial(submitter, k)), daemon=True) for k in range(submitters)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    tally.finished.wait(600)
    for t in threads:
        t.join(60)
    if errors:
        raise RuntimeError("a lifecycle worker failed") from errors[0]
    if set(tally.done) != set(submitted):
        raise RuntimeError(f"{len(submitted)} submitted but {len(tally.done)} completed, or different tasks")
    wall = max(tally.done.values()) - start
    return {
        "tasks": tasks,
        "agents": agents,
        "submitters": submitters,
        "wall_s": wall,
        "tasks_per_s": tasks / wall,
        "claim_requests_per_task": tally.claim_requests / tasks,
        "submit_to_complete_s": summarize([tally.done[t] - t0 for t, t0 in submitted.items()]),
    }


def lifecycle_http(
    base: str, user_key: str, agent_key: str, tasks: int, agents: int, submitters: int
) -> dict[str, Any]:
    """Submitters POST Bell tasks while `agents` threads long-poll CLAIM and report COMPLETED."""
    body = {"device": SMALL_DEVICE, "circuit": BELL, "dialect": "qasm3", "shots": 100}
    headers = {"Authorization": f"Bearer {user_key}"}
    submitter_clients = [httpx.Client(base_url=base, headers=headers, timeout=60) for _ in range(submitters)]

    def submit(k: int) -> tuple[str, float]:
        t0 = time.perf_counter()
        return _expect(submitter_clients[k].post("/v1/tasks", json=body), 201)["id"], t0

    def agent(a: int, tally: _Tally) -> None:
        claim = {"agent_id": f"bench-agent-{a}", "devices": [SMALL_DEVICE], "wait_s": 1.0}
        with client(base, agent_key) as c:
            while not tally.finished.is_set():
                r = c.post("/v1/agent/claim", json=claim)
                with tally.lock:
                    tally.claim_requests += 1
                if r.status_code == 204:
                    continue
                for item in _expect(r, 200)["tasks"]:
                    tally.complete(_complete(c, item))

    try:
        return _run_lifecycle(tasks, agents, submitters, submit, agent)
    finally:
        for c in submitter_clients:
            c.close()


def lifecycle_store(store: Store, tasks: int, agents: int, submitters: int) -> dict[str, Any]:
    """The same lifecycle straight on the services over the Store in this process: no HTTP, no auth, no
    admission (the claim's fairness and caps included, as the server's default settings have them).

    There is no long-poll without the server, so an agent that finds nothing sleeps 1 ms and retries.
    """
    current = store.current_epoch(SMALL_DEVICE)
    claims = build_claims(store, DeviceService(store, ttl_s=0), Settings())

    def submit(_: int) -> tuple[str, float]:
        t0 = time.perf_counter()
        new = NewTask(
            owner="bench",
            device_id=SMALL_DEVICE,
            circuit=BELL,
            dialect="qasm3",
            shots=100,
            seed=None,
            pinned_epoch=None,
            admitted_epoch=current.epoch,
            admitted_sha256=current.sha256,
            idempotency_key=None,
            body_sha256=None,
        )
        task, _created = commands.submit(store, new, datetime.now(UTC), None)
        return task.id, t0

    def agent(a: int, tally: _Tally) -> None:
        while not tally.finished.is_set():
            claimed = claims.claim(f"bench-agent-{a}", 1, [SMALL_DEVICE], datetime.now(UTC))
            with tally.lock:
                tally.claim_requests += 1
            if not claimed:
                time.sleep(0.001)
                continue
            for c in claimed:
                result = result_document(claimed_view(c).model_dump(mode="json"))
                task, _ = commands.report(
                    store, c.task.id, Report(Action.REPORT_COMPLETED, c.claim_token, result=result), datetime.now(UTC)
                )
                tally.complete(task.id)

    return _run_lifecycle(tasks, agents, submitters, submit, agent)
