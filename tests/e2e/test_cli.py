"""The `vqpu` command line as users run it: the real program (`python -m vqpu_client.cli`, what the `vqpu`
console script runs) in its own process, against the local stack (control plane, Prefect server, an
agent on a Dask LocalCluster).

The stack's agent serves only SERVED: a task for any other device stays QUEUED, which is what the
epoch-diff and cancel tests need (a task an epoch would refuse, a wait that only a cancel ends).
"""

from __future__ import annotations

import json
import os
import pty
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_registry import catalog
from harness.circuits import BELL
from harness.servers import free_port
from harness.stack import LocalStack
from vqpu_client.cli.progress import ERASE_LINE

pytestmark = pytest.mark.slow

SERVED = ["line-16", "ibm-fez"]
IDLE = "ring-12"
"""Registered, but no agent claims its tasks."""
VQPU = [sys.executable, "-m", "vqpu_client.cli"]
ON_QUBIT_3 = "OPENQASM 3.0;\nbit[1] c;\nx $3;\nc[0] = measure $3;\n"
NOT_ADJACENT = "OPENQASM 3.0;\nbit[2] c;\ncz $0, $2;\nc[0] = measure $0;\n"


class Cli:
    def __init__(self, stack: LocalStack, workdir: Path) -> None:
        self.stack, self.workdir = stack, workdir

    def env(self, who: str) -> dict[str, str]:
        return {**os.environ, "VQPU_URL": self.stack.url, "VQPU_KEY": self.stack.keys[who], "DO_NOT_TRACK": "1"}

    def __call__(
        self, *args: str, who: str = "user", stdin: str | None = None, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*VQPU, *args], input=stdin, capture_output=True, text=True, env=self.env(who), timeout=timeout_s
        )

    def json(self, *args: str, **kw: Any) -> Any:
        done = self(*args, "--json", **kw)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def popen(self, *args: str, who: str = "user") -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*VQPU, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(who)
        )

    def file(self, name: str, text: str) -> str:
        path = self.workdir / name
        path.write_text(text)
        return str(path)

    def api(self, method: str, path: str, who: str = "user", **kw: Any) -> Any:
        r = httpx.request(
            method, f"{self.stack.url}{path}", headers={"Authorization": f"Bearer {self.stack.keys[who]}"}, **kw
        )
        assert r.status_code < 300, r.text
        return r.json()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    workdir = tmp_path_factory.mktemp("cli")
    with LocalStack(workdir / "stack", site_overrides={"devices": SERVED}) as stack:
        yield Cli(stack, workdir)


def _error(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON error body a failed --json command wrote as its last line on stderr."""
    body = json.loads(done.stderr.strip().splitlines()[-1])
    assert set(body) == {"error"}
    info: dict[str, Any] = body["error"]
    assert {"code", "message", "detail", "correlation_id", "timestamp"} <= set(info)
    return info


# --- devices ----------------------------------------------------------------------------------


def test_devices_list_show_and_epochs_agree_with_the_server_in_text_and_json(cli: Cli) -> None:
    served = {d["device_id"]: d for d in cli.api("GET", "/v1/devices")["devices"]}
    listed = cli.json("devices", "list")
    assert {d["device_id"]: d["sha256"] for d in listed["devices"]} == {k: d["sha256"] for k, d in served.items()}
    table = cli("devices", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["device", "epoch", "qubits"]
    fez_row = next(r.split() for r in table if r.startswith("ibm-fez "))
    assert fez_row[:5] == ["ibm-fez", str(served["ibm-fez"]["epoch"]), "156", "0", "7"]

    fez = catalog.load("ibm-fez")
    shown = cli.json("devices", "show", "ibm-fez")
    assert (shown["num_qubits"], shown["offline_qubits"], shown["sha256"]) == (156, [], served["ibm-fez"]["sha256"])
    broken = sorted([e.source, e.target] for e in fez.edges if not e.available)
    assert sorted(shown["unavailable_couplers"]) == broken and len(broken) == 7
    assert shown["medians"]["t1"] == statistics.median(q.t1 for q in fez.qubits if q.t1 is not None)
    assert shown["medians"]["error_2q"] == statistics.median(e.error for e in fez.edges if e.error is not None)
    text = cli("devices", "show", "ibm-fez").stdout
    assert "native gates  cz id rz sx x" in text and "unavailable: 7 (" in text and "offline: none" in text

    epochs = cli.json("devices", "epochs", "ibm-fez")
    assert epochs == cli.api("GET", "/v1/devices/ibm-fez/epochs")


def test_devices_diff_shows_the_offline_qubit_and_the_queued_task_it_would_no_longer_admit(cli: Cli) -> None:
    doomed = cli.json("submit", "-", "--device", IDLE, "--shots", "10", stdin=ON_QUBIT_3)
    spared = cli.json("submit", "-", "--device", IDLE, "--shots", "10", stdin=BELL)
    assert (doomed["state"], spared["state"]) == ("QUEUED", "QUEUED")
    a = doomed["admitted_epoch"]
    b = cli.api("PATCH", f"/v1/devices/{IDLE}", "admin", json={"qubits": [{"index": 3, "status": "OFFLINE"}]})["epoch"]

    diff = cli.json("devices", "diff", IDLE, str(a), str(b))
    assert (diff["a"]["epoch"], diff["b"]["epoch"]) == (a, b)
    assert diff["changes"] == [{"where": "qubit", "key": "3", "field": "status", "a": "ONLINE", "b": "OFFLINE"}]
    assert [t["task_id"] for t in diff["no_longer_admitted"]] == [doomed["id"]]
    assert {v["code"] for v in diff["no_longer_admitted"][0]["violations"]} == {"QUBIT_OFFLINE"}
    assert diff["queued_checked"] >= 2 and diff["queued_truncated"] is False

    text = cli("devices", "diff", IDLE, str(a), str(b)).stdout.splitlines()
    assert "  qubit 3  status: ONLINE -> OFFLINE" in text
    refused = [line for line in text if doomed["id"] in line]
    assert len(refused) == 1 and "QUBIT_OFFLINE line 3" in refused[0] and spared["id"] not in "\n".join(text)
    same = cli("devices", "diff", IDLE, str(b), str(b)).stdout
    assert "no changes" in same and same.rstrip().endswith("none")  # what b refuses, a=b refused already

    for task in (doomed, spared):  # leave nothing queued for the other tests
        assert cli("cancel", task["id"]).returncode == 0


# --- running tasks ----------------------------------------------------------------------------


def test_submit_wait_prints_the_result_and_replay_reproduces_it_exactly(cli: Cli) -> None:
    bell = cli.file("bell.qasm", BELL)
    done = cli(
        "submit", bell, "--device", "ibm-fez", "--shots", "300", "--noise-scale", "gate_2q=3", "--memory",
        "--tag", "cli-test", "--wait", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --json: nothing but the JSON error body would go there
    out = json.loads(done.stdout)
    task, result = out["task"], out["result"]
    assert task["state"] == "COMPLETED" and task["tags"] == ["cli-test"]
    assert sum(result["counts"].values()) == 300 and len(result["memory"]) == 300
    assert set(result["memory"]) == set(result["counts"]) and len(result["counts"]) > 2  # noisy: not only 00 / 11
    assert result["provenance"]["seed_source"] == "runner"  # no --seed: replay must take the one the runner drew
    assert result["provenance"]["noise"]["scale"] == {"gate_2q": 3.0}
    assert cli.json("result", task["id"]) == cli.api("GET", f"/v1/tasks/{task['id']}/result")

    text = cli("result", task["id"]).stdout.splitlines()
    counts = sorted(result["counts"].items(), key=lambda kv: (-kv[1], kv[0]))
    rows = [line.split()[:2] for line in text[3 : 3 + len(counts)]]
    assert rows == [[outcome, str(n)] for outcome, n in counts]
    assert f"seed       {result['provenance']['seed']} (from the runner)" in text
    assert (
        f"epoch      {task['bound_epoch']}" in text and "memory     300 shots (vqpu result --json shows them)" in text
    )
    status = cli("status", task["id"]).stdout
    assert "state      COMPLETED" in status and "gate_2q" in status
    price = task["estimate"]  # admission's price, stored with the task and shown by `vqpu status`
    assert price["method"] == result["provenance"]["method"] and price["active_qubits"] == 2 and price["noisy"]
    estimate = next(line for line in status.splitlines() if line.startswith("estimate"))
    assert f"{price['method']} (double) on 2 qubits" in estimate and ", noisy" in estimate

    replayed = cli("replay", task["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert "identical: the same counts" in replayed.stdout
    progress = replayed.stderr.splitlines()  # not a terminal: one plain line per event
    assert any("TASK_CLAIMED" in line for line in progress) and "TASK_COMPLETED" in progress[-1]

    again = cli.json("replay", task["id"])
    assert again["identical"] and again["same_snapshot"] and again["differences"] == []
    assert again["seed"] == result["provenance"]["seed"] and again["memory_identical"] is True
    replay = again["replay"]
    assert (replay["epoch"], replay["shots"], replay["options"]) == (task["bound_epoch"], 300, task["options"])
    assert replay["tags"] == [f"replay-of:{task['id']}"] and replay["id"] != task["id"]


def test_on_a_terminal_the_wait_is_one_status_line_rewritten_in_place_beside_the_json(cli: Cli) -> None:
    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other side closed
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [*VQPU, "submit", cli.file("tty.qasm", BELL), "--device", "line-16", "--shots", "20", "--wait", "--json"],
            stdout=subprocess.PIPE, stderr=follower, text=True, env=cli.env("user"), timeout=120,
        )  # fmt: skip
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    assert done.returncode == 0
    task = json.loads(done.stdout)["task"]  # stdout holds only the JSON document
    terminal = b"".join(shown).decode()
    assert terminal.count(ERASE_LINE) >= 2 and terminal.count("\n") == 1
    last = terminal.split(ERASE_LINE)[-1]
    assert last.startswith(f"{task['id']}  COMPLETED  ") and "completed (attempt 1)" in last


def test_watch_shows_a_tasks_events_as_lines_or_json_and_ends_with_the_task(cli: Cli) -> None:
    task = cli.json("submit", cli.file("watched.qasm", BELL), "--device", "line-16", "--shots", "50")
    done = cli("watch", task["id"], timeout_s=60)
    assert done.returncode == 0, done.stderr
    types = [line.split()[2] for line in done.stdout.splitlines()]
    assert types[0] == "TASK_SUBMITTED" and "TASK_CLAIMED" in types and types[-1] == "TASK_COMPLETED"
    claimed = next(line for line in done.stdout.splitlines() if "TASK_CLAIMED" in line)
    assert f"task:{task['id']}" in claimed and "claimed by local-agent (attempt 1" in claimed
    lines = cli("watch", task["id"], "--json").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == types
    finished = cli("cancel", task["id"], "--json")
    assert (finished.returncode, _error(finished)["code"]) == (2, "ILLEGAL_TRANSITION")


def test_watch_of_the_live_stream_runs_until_ctrl_c_and_then_exits_130_cleanly(cli: Cli) -> None:
    seen: list[str] = []
    with cli.popen("watch", "--device", "line-16") as proc:
        reader = threading.Thread(target=lambda: seen.extend(proc.stdout or []), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 60
            while not seen and time.monotonic() < deadline:  # it streams from "now": submit until it shows one
                body = {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 10}
                cli.api("POST", "/v1/tasks", json=body)
                time.sleep(2)
            assert seen, "the live stream showed no event"
            assert proc.poll() is None  # a stream without a task never ends by itself
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
            reader.join(timeout=5)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert all(" TASK_" in line and "task:t-" in line for line in seen)


def test_cancelling_a_task_ends_its_wait_with_exit_1(cli: Cli) -> None:
    with cli.popen("submit", cli.file("idle.qasm", BELL), "--device", IDLE, "--shots", "10", "--wait") as waiting:
        assert waiting.stderr is not None
        first = waiting.stderr.readline()  # the progress line of TASK_SUBMITTED names the task
        task_id = first.split()[0]
        assert task_id.startswith("t-") and "TASK_SUBMITTED" in first
        cancelled = cli("cancel", task_id)
        assert (cancelled.returncode, cancelled.stdout.strip()) == (0, f"{task_id}  CANCELLED")
        assert waiting.wait(timeout=30) == 1
        rest = waiting.stderr.read()
    assert "TASK_CANCELLED" in rest and f"vqpu: error: TASK_CANCELLED: task {task_id} was cancelled" in rest
    again = cli.json("cancel", task_id)  # cancelling is idempotent: a cancelled task stays cancelled
    assert again["state"] == "CANCELLED"
    replay = cli("replay", task_id, "--json")
    assert replay.returncode == 2 and "only a COMPLETED task can be replayed" in _error(replay)["message"]


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_exits_2_with_the_servers_typed_error_and_nothing_on_stdout(cli: Cli) -> None:
    refused = cli("submit", cli.file("far.qasm", NOT_ADJACENT), "--device", "line-16", "--shots", "10", "--json")
    assert (refused.returncode, refused.stdout) == (2, "")
    error = _error(refused)
    assert error["code"] == "NOT_ADMISSIBLE" and error["status"] == 422 and error["correlation_id"]
    assert [v["code"] for v in error["detail"]["violations"]] == ["NO_COUPLING"]

    unknown = cli("devices", "show", "no-such-device", "--json")
    assert (unknown.returncode, _error(unknown)["code"]) == (2, "NOT_FOUND")
    headless = cli("submit", cli.file("headless.qasm", "qreg q[1];\n"), "--device", "line-16", "--shots", "1", "--json")
    assert (headless.returncode, _error(headless)["code"]) == (2, "USAGE")
    text = cli("submit", cli.file("far2.qasm", NOT_ADJACENT), "--device", "line-16", "--shots", "10")
    assert text.returncode == 2 and text.stderr.startswith("vqpu: error: NOT_ADMISSIBLE: ")

    stranger = subprocess.run(
        [*VQPU, "devices", "list", "--json", "--key", "not-a-key"],
        capture_output=True, text=True, env=cli.env("user"), timeout=60,
    )  # fmt: skip
    assert (stranger.returncode, _error(stranger)["code"]) == (2, "UNAUTHENTICATED")
    warned = json.loads(stranger.stderr.splitlines()[0])  # --key wins over VQPU_KEY, and is warned about
    assert warned["warning"]["code"] == "KEY_ON_COMMAND_LINE" and "every account" in warned["warning"]["message"]
    nobody = f"http://127.0.0.1:{free_port()}"
    gone = subprocess.run(
        [*VQPU, "--url", nobody, "status", "t-1", "--json"],
        capture_output=True, text=True, env=cli.env("user"), timeout=60,
    )  # fmt: skip
    assert (gone.returncode, _error(gone)["code"]) == (3, "UNREACHABLE")
