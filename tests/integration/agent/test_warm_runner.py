"""The runner on a Dask worker through `WarmRunnerPlugin`, in both modes: "fork" (children of a warm,
pre-imported zygote) and "process" (a fresh `python -m runner` per run).

Everything is real: a `LocalCluster` with one nanny-managed worker process and two threads, the
runner, Qiskit and Aer. Processes are checked by pid, the way an operator would with `ps`.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, Future, LocalCluster

from agent.warm import PLUGIN_NAME, Mode, WarmRunnerPlugin, kill_runner, run_on_worker
from device_registry import Snapshot
from harness.circuits import BELL, qasm2
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import ResultDocument, read_outcome

MODES: list[Mode] = ["fork", "process"]


def _busy(qubits: int, layers: int) -> str:
    """Native layers of SX on every qubit and CZ along Fez's first row: noisy, so density-matrix simulated."""
    layer = "".join(f"sx q[{i}];\n" for i in range(qubits))
    layer += "".join(f"cz q[{i}],q[{i + 1}];\n" for i in range(qubits - 1))
    return qasm2(layer * layers + "measure q -> c;", qubits=qubits)


LONG = _busy(10, 40)
"""About 10-20 s of simulation on two cores (measured: 10 qubits x 60 layers took 16-23 s)."""
MEDIUM = _busy(10, 5)
"""About 1 s of simulation."""


@contextmanager
def _cluster(plugin: WarmRunnerPlugin | None) -> Iterator[Client]:
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        if plugin is not None:
            client.register_plugin(plugin)
        yield client


@pytest.fixture(scope="module")
def fork_client() -> Iterator[Client]:
    with _cluster(WarmRunnerPlugin("fork")) as client:
        yield client


@pytest.fixture(scope="module")
def process_client() -> Iterator[Client]:
    with _cluster(WarmRunnerPlugin("process")) as client:
        yield client


def _client(request: pytest.FixtureRequest, mode: Mode) -> Client:
    client: Client = request.getfixturevalue(f"{mode}_client")
    return client


def _submit(client: Client, run_dir: Path) -> Future[dict[str, Any]]:
    return client.submit(run_on_worker, str(run_dir), pure=False)


def _run(client: Client, run_dir: Path) -> dict[str, Any]:
    outcome: dict[str, Any] = _submit(client, run_dir).result(timeout=300)
    return outcome


def _on_worker(client: Client, function: Callable[..., Any], *args: Any) -> Any:
    """What `function` returns on the cluster's only worker."""
    (answer,) = client.run(function, *args).values()
    return answer


def _zygote_pid(dask_worker: Any) -> int | None:
    pid: int | None = dask_worker.plugins[PLUGIN_NAME].zygote_pid
    return pid


def _running(dask_worker: Any) -> dict[str, int | None]:
    running: dict[str, int | None] = dask_worker.plugins[PLUGIN_NAME].running()
    return running


def _alive(pid: int) -> bool:
    """Whether pid is a live process: a zombie has finished, whoever has yet to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _runner_started(run_dir: Path) -> bool:
    """The runner logs the task once it has read its inputs: it is running, imports done."""
    log = run_dir / "runner.log"
    return log.exists() and " task " in log.read_text()


def _result(run_dir: Path) -> ResultDocument:
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ResultDocument), (run_dir / "runner.log").read_text()
    return outcome


def test_a_bell_run_completes_in_either_mode_with_the_same_counts_for_the_same_seed(
    fork_client: Client, process_client: Client, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    counts = {}
    for mode, client in (("fork", fork_client), ("process", process_client)):
        run_dir = make_run_dir(BELL, fez, dialect="qasm3", shots=2000, seed=7)
        outcome = _run(client, run_dir)
        assert outcome["exit_code"] == 0 and outcome["signal"] is None and outcome["killed"] is False
        assert outcome["mode"] == mode
        assert outcome["worker"] in client.scheduler_info()["workers"]
        assert outcome["node"] == socket.gethostname()
        assert outcome["job_id"] is None  # no scheduler job around these workers
        assert isinstance(outcome["pid"], int) and not _alive(outcome["pid"])
        assert 0 < outcome["wall_s"] < 300 and abs(outcome["start_s"] - time.time()) < 300
        result = _result(run_dir)
        assert result.shots == 2000 and sum(result.counts.values()) == 2000
        counts[mode] = result.counts
    assert counts["fork"] == counts["process"]


@pytest.mark.parametrize("mode", MODES)
def test_an_invalid_payload_exits_2_and_leaves_an_error_document(
    mode: Mode, request: pytest.FixtureRequest, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(qasm2("not_a_gate q[0];\nmeasure q -> c;"), fez)
    outcome = _run(_client(request, mode), run_dir)
    assert outcome["exit_code"] == 2
    error = read_outcome(run_dir)
    assert isinstance(error, ErrorDocument) and error.code == ErrorCode.PARSE_ERROR
    assert "not_a_gate" in error.message


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_killing_long_runs_returns_them_at_once_and_frees_the_worker_for_the_next_task(
    mode: Mode, request: pytest.FixtureRequest, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    client = _client(request, mode)
    # Both of the worker's threads busy, so the next task can only run once a kill frees one.
    long_dirs = [make_run_dir(LONG, fez, shots=100) for _ in range(2)]
    futures = [_submit(client, d) for d in long_dirs]
    _wait_for(lambda: all(map(_runner_started, long_dirs)), 120, "both long runs to start")
    pids = _on_worker(client, _running)
    assert set(pids) == {str(d) for d in long_dirs} and all(pids.values())

    killed_at = time.monotonic()
    for run_dir in long_dirs:
        assert _on_worker(client, kill_runner, str(run_dir)) is True
    outcomes = [f.result(timeout=5) for f in futures]
    returned_after = time.monotonic() - killed_at
    assert returned_after < 1.0, f"the killed runs took {returned_after:.2f} s to return"

    for run_dir, outcome in zip(long_dirs, outcomes, strict=True):
        assert outcome["killed"] is True
        assert outcome["signal"] == signal.SIGKILL and outcome["exit_code"] is None
        assert outcome["pid"] == pids[str(run_dir)] and not _alive(outcome["pid"])
        assert read_outcome(run_dir) is None  # killed mid-simulation: no result, and no half-written one
    assert _on_worker(client, _running) == {}

    submitted = time.time()
    bell = make_run_dir(BELL, fez, dialect="qasm3")
    outcome = _run(client, bell)
    assert outcome["exit_code"] == 0 and _result(bell).shots == 1024
    assert outcome["start_s"] - submitted < 0.5, "the next task waited for a slot"
    # A run that is over, or that this worker never had, is not killed twice.
    assert _on_worker(client, kill_runner, str(long_dirs[0])) is False


@pytest.mark.slow
def test_a_run_killed_while_the_zygote_warms_up_returns_at_once_and_never_starts(
    tmp_path: Path, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    # A fresh worker's zygote takes its first request into its backlog and imports Qiskit and Aer before
    # it forks (seconds); here it starts 5 s late, so the kill surely comes while the run waits for its
    # child. The step used to wait it out (2-3 s of a cancel on a fresh agent).
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(f'#!/bin/sh\nsleep 5\nexec {sys.executable} "$@"\n')
    slow_python.chmod(0o755)
    with _cluster(WarmRunnerPlugin("fork", python=str(slow_python))) as client:
        run_dir = make_run_dir(BELL, fez, dialect="qasm3")
        future = _submit(client, run_dir)
        _wait_for(lambda: str(run_dir) in _on_worker(client, _running), 30, "the run to reach the worker")
        assert _on_worker(client, _running)[str(run_dir)] is None  # no runner yet: the zygote is warming
        killed_at = time.monotonic()
        assert _on_worker(client, kill_runner, str(run_dir)) is True
        outcome = future.result(timeout=10)
        returned_after = time.monotonic() - killed_at
        assert returned_after < 1.0, f"the killed run took {returned_after:.2f} s to return"
        assert outcome["killed"] is True and outcome["pid"] is None and read_outcome(run_dir) is None
        bell = make_run_dir(BELL, fez, dialect="qasm3")  # the zygote, once warm, serves the next run
        assert _run(client, bell)["exit_code"] == 0 and _result(bell).shots == 1024
        # The zygote forked the killed run's child from its backlog too: killed as its pid arrived.
        assert read_outcome(run_dir) is None and _on_worker(client, _running) == {}


@pytest.mark.slow
def test_a_killed_zygote_loses_neither_the_run_in_flight_nor_the_next_one(
    fork_client: Client, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    in_flight = make_run_dir(MEDIUM, fez, shots=200)
    _run(fork_client, make_run_dir(BELL, fez, dialect="qasm3"))  # the zygote is up and warm
    zygote = _on_worker(fork_client, _zygote_pid)
    assert zygote is not None and _alive(zygote)

    future = _submit(fork_client, in_flight)
    _wait_for(lambda: _runner_started(in_flight), 60, "the run to start")
    os.kill(zygote, signal.SIGKILL)
    _wait_for(lambda: not _alive(zygote), 10, "the zygote to die")
    outcome = future.result(timeout=120)
    assert outcome["exit_code"] == 0 and _result(in_flight).shots == 200

    bell = make_run_dir(BELL, fez, dialect="qasm3")
    assert _run(fork_client, bell)["exit_code"] == 0
    assert _result(bell).shots == 1024
    replacement = _on_worker(fork_client, _zygote_pid)
    assert replacement not in (None, zygote) and _alive(replacement)


@pytest.mark.parametrize("mode", MODES)
def test_two_runs_at_once_on_one_worker_both_complete(
    mode: Mode, request: pytest.FixtureRequest, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dirs = [make_run_dir(MEDIUM, fez, shots=300, seed=s) for s in (1, 2)]
    futures = [_submit(_client(request, mode), d) for d in run_dirs]
    outcomes = [f.result(timeout=300) for f in futures]
    assert [o["exit_code"] for o in outcomes] == [0, 0]
    assert [_result(d).shots for d in run_dirs] == [300, 300]
    first, second = sorted(outcomes, key=lambda o: o["start_s"])
    assert second["start_s"] < first["start_s"] + first["wall_s"], "the runs did not overlap"
    assert first["pid"] != second["pid"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_closing_the_cluster_leaves_no_zygote_or_runner_behind(
    mode: Mode, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(LONG, fez, shots=100)
    with _cluster(WarmRunnerPlugin(mode)) as client:
        _submit(client, run_dir)
        _wait_for(lambda: _runner_started(run_dir), 120, "the run to start")
        pids = [_on_worker(client, _running)[str(run_dir)], _on_worker(client, _zygote_pid)]
        assert (pids[1] is not None) == (mode == "fork")
        started = [pid for pid in pids if pid is not None]
        assert all(map(_alive, started))
    _wait_for(lambda: not any(map(_alive, started)), 10, f"processes {started} to end")
    assert read_outcome(run_dir) is None


@pytest.mark.slow
def test_a_worker_killed_outright_takes_its_zygote_and_run_along_and_dask_reruns_it_on_the_replacement(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(MEDIUM, fez, shots=200)
    with _cluster(WarmRunnerPlugin("fork")) as client:
        future = _submit(client, run_dir)
        _wait_for(lambda: _runner_started(run_dir), 60, "the run to start")
        worker, worker_pid = _on_worker(client, lambda dask_worker: (dask_worker.address, os.getpid()))
        zygote, runner = _on_worker(client, _zygote_pid), _on_worker(client, _running)[str(run_dir)]
        os.kill(worker_pid, signal.SIGKILL)
        # No teardown ran: the zygote learns from its stdin pipe that the worker is gone.
        _wait_for(lambda: not _alive(zygote) and not _alive(runner), 10, "the zygote and the run to end")

        outcome = future.result(timeout=120)
        assert outcome["exit_code"] == 0 and outcome["worker"] != worker
        assert _result(run_dir).shots == 200
        assert _on_worker(client, _zygote_pid) not in (None, zygote)


def test_a_run_on_a_worker_without_the_plugin_says_how_to_register_it(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    with _cluster(None) as client, pytest.raises(RuntimeError, match=r"client\.register_plugin\(WarmRunnerPlugin"):
        _run(client, make_run_dir(BELL, fez, dialect="qasm3"))


AUDITED_INTERPRETER = """
import os, runpy, sys
log = os.open(os.environ["VQPU_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
recording = False
def start_recording():
    global recording
    recording = True
def record(event, args):
    if recording and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        line = f"{os.getpid()} {os.path.abspath(os.fsdecode(args[0]))}\\n"
        os.write(log, line.encode(errors="surrogateescape"))
# Only the forked runs are audited, not the zygote's own warm-up.
os.register_at_fork(after_in_child=start_recording)
sys.addaudithook(record)
assert sys.argv[1] == "-m"
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_forked_run_opens_no_file_outside_its_run_directory_but_the_installed_code(
    make_run_dir: MakeRunDir, fez: Snapshot, tmp_path: Path
) -> None:
    # The zygote is started through an interpreter that records every file a forked child opens.
    interpreter = tmp_path / "interpreter"
    interpreter.mkdir()
    (interpreter / "audited.py").write_text(AUDITED_INTERPRETER)
    python = interpreter / "python"
    audit_log = tmp_path / "opened.log"
    # Told by the wrapper itself: the zygote's environment is an allow-list, which a test variable is not on.
    python.write_text(
        f'#!/bin/sh\nVQPU_AUDIT_LOG="{audit_log}" exec "{sys.executable}" "{interpreter / "audited.py"}" "$@"\n'
    )
    python.chmod(0o755)

    translated = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n'
    run_dirs = [make_run_dir(BELL, fez, dialect="qasm3"), make_run_dir(translated + "measure q -> c;\n", fez)]
    with _cluster(WarmRunnerPlugin("fork", python=str(python))) as client:
        pids = {}
        for run_dir in run_dirs:
            outcome = _run(client, run_dir)
            assert outcome["exit_code"] == 0, (run_dir / "runner.log").read_text()
            pids[outcome["pid"]] = run_dir
    assert _result(run_dirs[1]).provenance.transpile == "basis-translation"

    code = [Path(sys.prefix), Path(sys.base_prefix), ROOT, Path("/usr/lib"), Path("/usr/local/lib")]
    system = [Path("/etc/ld.so.cache"), Path("/proc"), Path("/sys"), Path("/dev")]
    opened: dict[int, list[Path]] = {pid: [] for pid in pids}
    for line in audit_log.read_text().splitlines():
        pid, path = line.split(" ", 1)
        opened.setdefault(int(pid), []).append(Path(path))
    for pid, run_dir in pids.items():
        assert any(p.is_relative_to(run_dir) for p in opened[pid]), "the audit saw nothing of this run"
        strays = [
            p
            for p in opened[pid]
            if not p.is_relative_to(run_dir)
            and "__path_hook__" not in str(p)  # an editable install's path hook: no file is opened
            and not any(p.is_relative_to(c) for c in code + system)
        ]
        assert strays == [], f"the forked runner opened files outside its run directory: {strays}"


@pytest.mark.slow
def test_bell_runs_in_a_row_all_succeed_in_both_modes_and_report_their_overhead(
    fork_client: Client,
    process_client: Client,
    make_run_dir: MakeRunDir,
    fez: Snapshot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = []
    for mode, client in (("fork", fork_client), ("process", process_client)):
        beyond_total, beyond_work = [], []
        for _ in range(10):
            run_dir = make_run_dir(BELL, fez, dialect="qasm3")
            outcome = _run(client, run_dir)
            assert outcome["exit_code"] == 0
            timings = _result(run_dir).timings
            work = timings.parse_s + timings.transpile_s + timings.noise_s + timings.simulate_s
            beyond_total.append(outcome["wall_s"] - timings.total_s)
            beyond_work.append(outcome["wall_s"] - work)
        report.append(
            f"{mode:>7}: run_on_worker wall minus timings.total_s {statistics.median(beyond_total):.3f} s, "
            f"minus parse+transpile+noise+simulate {statistics.median(beyond_work):.3f} s (median of 10)"
        )
    with capsys.disabled():
        print("\nper-run overhead of the runner step:\n" + "\n".join(report))


def test_the_warm_runner_gets_the_sites_cores_not_the_nannys_single_thread(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    # Dask's nanny starts workers with OMP_NUM_THREADS=1; Aer would then simulate on one core.
    with _cluster(WarmRunnerPlugin("fork", threads=3)) as client:
        assert (
            client.submit(run_on_worker, str(make_run_dir(BELL, fez, dialect="qasm3")), pure=False).result()[
                "exit_code"
            ]
            == 0
        )

        def zygote_environment(dask_worker: Any) -> dict[str, str]:
            pid = dask_worker.plugins[PLUGIN_NAME].zygote_pid
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

        (environment,) = client.run(zygote_environment).values()
        assert environment["OMP_NUM_THREADS"] == "3" and environment["OPENBLAS_NUM_THREADS"] == "3"
