"""The Python client against a real `vqpu-server` process: typed answers and errors, paging, and the
behaviour users rely on when the network or the server misbehaves — a retried submit that must not
make two tasks, a dropped event stream, a server restarted in the middle of a `wait()`, a proxy that
does not pass the event stream.

No agent runs here: the test plays the site agent itself over HTTP (claim, report), so it decides
when a task finishes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL
from harness.documents import result_document
from harness.servers import ServerProcess, free_port, make_keys
from vqpu_client import AsyncClient, Client, errors
from vqpu_protocol.api.tasks import EventView
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow
DEVICE = "line-16"
NOT_ADJACENT = "OPENQASM 3.0;\nbit[2] c;\ncz $0, $2;\nc[0] = measure $0;\n"


class Server:
    def __init__(self, process: ServerProcess, keys: dict[str, str]) -> None:
        self.process, self.keys = process, keys

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, who: str = "user", **kw: Any) -> Client:
        return Client(self.url, self.keys[who], **kw)

    def claim(self, task_id: str) -> dict[str, Any]:
        """Claim tasks as the site agent until `task_id` is among them (tests may leave others queued)."""
        for _ in range(50):
            r = httpx.post(
                f"{self.url}/v1/agent/claim",
                json={"agent_id": "test-agent", "devices": [DEVICE], "max_tasks": 64, "wait_s": 1},
                headers={"Authorization": f"Bearer {self.keys['agent']}"},
                timeout=10,
            )
            assert r.status_code in (200, 204), r.text
            for claimed in r.json()["tasks"] if r.status_code == 200 else []:
                if claimed["task"]["id"] == task_id:
                    return dict(claimed)
        raise AssertionError(f"{task_id} was never claimable")

    def complete(self, claimed: dict[str, Any], counts: dict[str, int] | None = None) -> None:
        task_id = claimed["task"]["id"]
        body = {"claim_token": claimed["claim_token"], "result": result_document(claimed, counts)}
        r = httpx.post(
            f"{self.url}/v1/agent/tasks/{task_id}/completed",
            json=body,
            headers={"Authorization": f"Bearer {self.keys['agent']}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("client-server")
    keys = make_keys(workdir / "keys.json", user=Role.USER, other=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    with ServerProcess(workdir, f"sqlite:///{workdir / 'cp.db'}", workdir / "keys.json") as process:
        yield Server(process, keys)


def _later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        threading.Event().wait(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- typed answers and errors -----------------------------------------------------------------


def test_devices_snapshots_and_viability_come_back_typed(server: Server) -> None:
    with server.client() as vqpu:
        devices = {d.device_id: d for d in vqpu.devices()}
        assert devices["ibm-fez"].num_qubits == 156
        snapshot = vqpu.snapshot("ibm-fez")
        assert snapshot.device_id == "ibm-fez" and snapshot.sha256() == devices["ibm-fez"].sha256
        epochs = vqpu.epochs("ibm-fez")
        assert vqpu.snapshot("ibm-fez", epoch=epochs[0].epoch).sha256() == epochs[0].sha256
        verdict = vqpu.viability("ibm-fez", NOT_ADJACENT)
        assert not verdict.admissible and verdict.violations[0].code == "NO_COUPLING"


def test_server_errors_become_typed_exceptions_with_the_servers_words(server: Server) -> None:
    with server.client() as vqpu:
        with pytest.raises(errors.NotFoundError) as missing:
            vqpu.snapshot("no-such-device")
        assert missing.value.status == 404 and missing.value.correlation_id
        with pytest.raises(errors.NotAdmissibleError) as refused:
            vqpu.submit("ibm-fez", NOT_ADJACENT, shots=10)
        assert refused.value.violations[0]["code"] == "NO_COUPLING"
        with pytest.raises(errors.InvalidRequestError) as bad:
            vqpu.submit(DEVICE, BELL, shots=0)
        assert bad.value.code == "INVALID_SHOTS"
        with pytest.raises(errors.PermissionDeniedError):
            vqpu.patch_device(DEVICE, {"qubits": [{"index": 0, "status": "OFFLINE"}]})
        with pytest.raises(errors.ResultNotReadyError):
            vqpu.result(vqpu.submit(DEVICE, BELL, shots=10).id)
    with Client(server.url, "not-a-key") as stranger, pytest.raises(errors.AuthenticationError):
        stranger.devices()


def test_another_users_task_is_not_found(server: Server) -> None:
    with server.client() as alice, server.client("other") as bob:
        task = alice.submit(DEVICE, BELL, shots=10)
        with pytest.raises(errors.NotFoundError):
            bob.task(task.id)


def test_iter_tasks_walks_every_page(server: Server) -> None:
    with server.client("other") as vqpu:
        made = {vqpu.submit(DEVICE, BELL, shots=10, tags=["paging"]).id for _ in range(7)}
        first = vqpu.tasks(device=DEVICE, limit=3)
        assert len(first.tasks) == 3 and first.next_cursor is not None
        seen = [t.id for t in vqpu.iter_tasks(device=DEVICE, page_size=3)]
        assert made <= set(seen) and len(seen) == len(set(seen))


def test_a_finished_task_gives_its_result_and_a_cancelled_one_raises(server: Server) -> None:
    with server.client() as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=100, seed=3)
        server.complete(server.claim(task.id), {"00": 60, "11": 40})
        final = vqpu.wait(task.id, timeout_s=30)
        assert final.state == "COMPLETED"
        assert vqpu.result_of(final).counts == {"00": 60, "11": 40}
        queued = vqpu.submit(DEVICE, BELL, shots=10)
        assert vqpu.cancel(queued.id).state == "CANCELLED"
        with pytest.raises(errors.TaskCancelledError):
            vqpu.result_of(vqpu.wait(queued.id, timeout_s=10))
        with pytest.raises(errors.IllegalTransitionError):
            vqpu.cancel(task.id)  # finished: nothing to cancel


# --- retries and reconnects -------------------------------------------------------------------


class LoseAnswers(httpx.HTTPTransport):
    """Sends each request to the real server, then loses the answer of the first `n` matching ones,
    as a connection reset after the server has acted would."""

    def __init__(self, method: str, path: str, n: int = 1) -> None:
        super().__init__()
        self.method, self.path, self.left = method, path, n
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == self.method and request.url.path == self.path:
            self.keys.append(request.headers.get("Idempotency-Key"))
            if self.left > 0:
                self.left -= 1
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the server answered")
        return response


def test_a_submit_whose_answer_was_lost_is_retried_without_making_a_second_task(server: Server) -> None:
    lossy = LoseAnswers("POST", "/v1/tasks", n=2)
    with server.client(transport=lossy) as vqpu, server.client("admin") as admin:
        before = sum(1 for _ in admin.iter_tasks(device=DEVICE))
        task = vqpu.submit(DEVICE, BELL, shots=10, tags=["lost-answer"])
        after = [t for t in admin.iter_tasks(device=DEVICE)]
        assert len(after) == before + 1
        assert after[-1].id == task.id and task.state == "QUEUED"
    assert len(lossy.keys) == 3 and len(set(lossy.keys)) == 1  # three attempts, one key


def test_the_same_key_with_another_body_is_a_conflict_not_a_new_task(server: Server) -> None:
    with server.client() as vqpu:
        first = vqpu.submit(DEVICE, BELL, shots=10, idempotency_key="flow-run-1:step-1")
        assert vqpu.submit(DEVICE, BELL, shots=10, idempotency_key="flow-run-1:step-1").id == first.id
        with pytest.raises(errors.IdempotencyConflictError):
            vqpu.submit(DEVICE, BELL, shots=11, idempotency_key="flow-run-1:step-1")


def test_a_retried_cancel_whose_first_attempt_took_effect_answers_the_cancelled_task(server: Server) -> None:
    with server.client() as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)
    lossy = LoseAnswers("POST", f"/v1/tasks/{task.id}/cancel")
    with server.client(transport=lossy) as vqpu:
        assert vqpu.cancel(task.id).state == "CANCELLED"
    assert len(lossy.keys) == 2


class CutEventStreams(httpx.HTTPTransport):
    """Passes requests to the real server; each of the first `n` event streams is cut (a reset
    connection) right after its first event. Records the Last-Event-ID of every stream opened."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path != "/v1/events":
            return response
        self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        if self.left <= 0:
            return response
        self.left -= 1
        return httpx.Response(
            response.status_code, headers=response.headers, stream=_CutAfterFirstEvent(response), request=request
        )


class _CutAfterFirstEvent(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        buffered = b""
        for chunk in self.response.iter_raw():
            buffered += chunk
            end = buffered.find(b"\n\n", buffered.find(b"id: "))
            if b"id: " in buffered and end >= 0:
                yield buffered[: end + 2]
                raise httpx.ReadError("connection reset mid-stream")
        yield buffered

    def close(self) -> None:
        self.response.close()


def test_wait_reconnects_a_dropped_stream_with_last_event_id_and_sees_each_event_once(server: Server) -> None:
    cutter = CutEventStreams(n=2)
    seen: list[EventView] = []
    with server.client(transport=cutter) as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)

        def finish() -> None:
            claimed = server.claim(task.id)
            threading.Event().wait(1.5)  # the client reconnects after the claim's event, before completion
            server.complete(claimed)

        _later(1.5, finish)
        final = vqpu.wait(task.id, timeout_s=30, on_event=seen.append)
    assert final.state == "COMPLETED"
    types = [e.type for e in seen]
    assert types[0] == "TASK_SUBMITTED" and types[-1] == "TASK_COMPLETED" and "TASK_CLAIMED" in types
    assert len({e.id for e in seen}) == len(seen), "an event was delivered twice across reconnects"
    # The first stream starts from the beginning; each reconnect resumes after the last event seen.
    assert cutter.last_event_ids[:3] == ["0", str(seen[0].id), str(seen[1].id)]


def test_wait_outlasts_a_server_restart(server: Server) -> None:
    with server.client(backoff=None) as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)
        claimed = server.claim(task.id)

        def restart_then_finish() -> None:
            server.process.restart(down_s=2.0)
            server.complete(claimed)

        worker = _later(1.0, restart_then_finish)
        final = vqpu.wait(task.id, timeout_s=90)
        worker.join(60)
    assert final.state == "COMPLETED"


class NoEventStream(httpx.HTTPTransport):
    """A proxy in front of the server that does not pass `GET /v1/events`."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events":
            return httpx.Response(404, text="not here", request=request)
        if request.url.path.startswith("/v1/tasks/"):
            self.polls += 1
        return super().handle_request(request)


def test_wait_polls_when_the_server_offers_no_event_stream(server: Server) -> None:
    proxy = NoEventStream()
    with server.client(transport=proxy) as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)
        _later(2.0, lambda: server.complete(server.claim(task.id)))
        final = vqpu.wait(task.id, timeout_s=30)
    assert final.state == "COMPLETED"
    assert proxy.polls >= 2


def test_wait_gives_up_at_its_timeout_with_the_last_state_seen(server: Server) -> None:
    with server.client() as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)
        with pytest.raises(errors.WaitTimeoutError) as timed_out:
            vqpu.wait(task.id, timeout_s=1.0)
    assert timed_out.value.task is not None and timed_out.value.task.state == "QUEUED"


def test_an_unreachable_server_is_a_transport_error_after_the_retries(tmp_path: Path) -> None:
    with Client(f"http://127.0.0.1:{free_port()}", "k", retries=2) as vqpu, pytest.raises(errors.TransportError):
        vqpu.devices()


# --- the async client -------------------------------------------------------------------------


def test_the_async_client_submits_waits_and_reads_the_result(server: Server) -> None:
    async def scenario() -> tuple[str, dict[str, int], list[str]]:
        seen: list[str] = []
        async with AsyncClient(server.url, server.keys["user"]) as vqpu:
            task = await vqpu.submit(DEVICE, BELL, shots=100, seed=9)
            assert (await vqpu.task(task.id)).state == "QUEUED"
            finisher = asyncio.get_running_loop().run_in_executor(
                None, lambda: server.complete(server.claim(task.id), {"01": 100})
            )
            final = await vqpu.wait(task.id, timeout_s=30, on_event=lambda e: seen.append(e.type))
            await finisher
            result = await vqpu.result_of(final)
            return final.state, result.counts, seen

    state, counts, seen = asyncio.run(scenario())
    assert state == "COMPLETED" and counts == {"01": 100}
    assert seen[0] == "TASK_SUBMITTED" and seen[-1] == "TASK_COMPLETED"


def test_the_async_client_raises_the_same_typed_errors(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.keys["user"]) as vqpu:
            with pytest.raises(errors.NotAdmissibleError):
                await vqpu.submit("ibm-fez", NOT_ADJACENT, shots=10)
            with pytest.raises(errors.NotFoundError):
                await vqpu.task("no-such-task")
            pages = [t async for t in vqpu.iter_tasks(page_size=2)]
            assert pages

    asyncio.run(scenario())


# --- wait() holds its deadline; the stream reader holds its bound -------------------------------

KEEPALIVE_S = 0.5
WAIT_S = 2.0
SLACK_S = 2.0


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose idle event streams send a keep-alive comment every half second."""
    workdir = tmp_path_factory.mktemp("chatty-server")
    keys = make_keys(workdir / "keys.json", user=Role.USER)
    env = {"VQPU_SSE_KEEPALIVE_S": str(KEEPALIVE_S)}
    with ServerProcess(workdir, f"sqlite:///{workdir / 'cp.db'}", workdir / "keys.json", env=env) as process:
        yield Server(process, keys)


def _waited(wait: Any, limit_s: float) -> tuple[float, BaseException | None]:
    """Run `wait()` in a thread: how long it took (inf if still waiting after `limit_s`) and what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            wait()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    return (time.monotonic() - started if outcome else float("inf")), (outcome[0] if outcome else None)


def test_keep_alives_do_not_extend_a_waits_timeout(chatty: Server) -> None:
    with chatty.client() as vqpu:
        task = vqpu.submit(DEVICE, BELL, shots=10)  # no agent here: it stays QUEUED, its stream only keeps alive
        with httpx.stream(
            "GET", f"{chatty.url}/v1/events", params={"task": task.id},
            headers={"Authorization": f"Bearer {chatty.keys['user']}", "Accept": "text/event-stream"},
        ) as stream:  # fmt: skip
            lines = stream.iter_lines()
            seen = [next(lines) for _ in range(8)]
        assert seen.count(": keep-alive") >= 2, seen  # the scenario: a live stream that never finishes the task
        took, raised = _waited(lambda: vqpu.wait(task.id, timeout_s=WAIT_S), WAIT_S + 10 * SLACK_S)
    assert took < WAIT_S + SLACK_S, f"wait(timeout_s={WAIT_S}) returned after {took:.1f} s"
    assert isinstance(raised, errors.WaitTimeoutError) and raised.task is not None and raised.task.state == "QUEUED"


def test_keep_alives_do_not_extend_an_async_waits_timeout(chatty: Server) -> None:
    async def scenario() -> tuple[float, BaseException | None]:
        async with AsyncClient(chatty.url, chatty.keys["user"]) as vqpu:
            task = await vqpu.submit(DEVICE, BELL, shots=10)
            started = time.monotonic()
            try:
                await asyncio.wait_for(vqpu.wait(task.id, timeout_s=WAIT_S), WAIT_S + 10 * SLACK_S)
            except BaseException as exc:
                return time.monotonic() - started, exc
            return time.monotonic() - started, None

    took, raised = asyncio.run(scenario())
    assert type(raised) is errors.WaitTimeoutError, f"{raised!r} after {took:.1f} s"  # not wait_for's own timeout
    assert took < WAIT_S + SLACK_S, f"wait(timeout_s={WAIT_S}) returned after {took:.1f} s"


def test_a_server_that_accepts_but_never_answers_does_not_extend_a_waits_timeout() -> None:
    """The wait's reconnects and re-reads hold the deadline too: none waits out the client's 30 s timeout."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, "k") as vqpu:
            took, raised = _waited(lambda: vqpu.wait("t-1", timeout_s=WAIT_S), WAIT_S + 10 * SLACK_S)
    assert took < WAIT_S + SLACK_S, f"wait(timeout_s={WAIT_S}) returned after {took:.1f} s"
    assert isinstance(raised, errors.WaitTimeoutError)


class EndlessLine:
    """A hostile event-stream server: answers every request with an event stream whose first line never ends
    (`total` bytes of it, then the connection closes). Counts the bytes it managed to send."""

    CHUNK = b"data: " + b"x" * (64 * 1024 - 6)

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
                    for _ in range(self.total // len(self.CHUNK)):
                        conn.sendall(self.CHUNK)
                        self.sent += len(self.CHUNK)
                except OSError:  # the client hung up: what the test wants
                    continue

    def close(self) -> None:
        self.listener.close()


def test_a_hostile_endless_event_stream_line_is_refused_without_holding_it() -> None:
    hostile = EndlessLine(total=64 * 1024 * 1024)
    try:
        with Client(hostile.url, "k", max_outage_s=0) as vqpu:
            tracemalloc.start()
            try:
                with pytest.raises(errors.TransportError, match="an event-stream line of"):
                    next(vqpu.events(task="t-1"))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    finally:
        hostile.close()
    assert peak < 4 * 1024 * 1024, f"reading the stream held {peak / 2**20:.0f} MiB"
