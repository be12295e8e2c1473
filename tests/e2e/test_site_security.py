"""The agent's execution plane, attacked as another account on the same login node (an unprivileged uid
made for the test, harness.intruder) would: every port the agent's Dask cluster listens on refuses it,
and no process that runs a task — Dask worker, nanny, warm runner, runner, batch job — holds the agent's
key in its environment. See docs/security.md for the threat model; the other attacks (run directories,
forged results, Prefect, the client) are in the test_site_security_*.py files beside this one."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import distributed
import psutil
import pytest

from agent.environment import confine_environment
from agent.scheduler.base import JobState, Resources
from agent.site import parse_site
from device_registry import Snapshot
from harness.agents import ROOT, AgentProcess, site_file
from harness.circuits import BELL, busy
from harness.documents import result_document
from harness.intruder import Intruder
from tests.e2e.sites import Site
from tests.requirements import require_slurm
from vqpu_protocol.rundir import RESULT_FILE, SNAPSHOT_FILE, TASK_FILE, TaskDocument, atomic_write

pytestmark = pytest.mark.timeout(300)

LONG = busy(10, 40)
"""10-20 s of simulation: the task's processes are alive while the test looks at them."""

ATTACK = r"""
import asyncio, json, ssl, sys, urllib.request
from distributed.comm.core import CommClosedError
from distributed.core import rpc
from distributed.security import Security

addresses = json.loads(sys.argv[1])
PATHS = ("/json/identity.json", "/info/main/workers.html", "/metrics", "/health")
stranger = Security.temporary()  # a certificate of its own: TLS, but not the agent's

async def dask_identity(address, **kwargs):
    try:
        async with rpc(address, timeout=3, **kwargs) as r:
            return {"answered": str(await asyncio.wait_for(r.identity(), 5))[:200]}
    except (OSError, CommClosedError, asyncio.TimeoutError, ssl.SSLError) as exc:
        return {"refused": type(exc).__name__}
    except BaseException as exc:  # neither answered nor refused: the test cannot tell, so it fails
        return {"error": repr(exc)[:300]}

def http(address, path):
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=3) as reply:
            return {"status": reply.status, "body": reply.read(200).decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}
    except BaseException as exc:
        return {"refused": type(exc).__name__}

async def main():
    out = {}
    for address in addresses:
        out[address] = {
            "tcp": await dask_identity(f"tcp://{address}"),
            "tls": await dask_identity(f"tls://{address}", connection_args=stranger.get_connection_args("client")),
            "http": {p: http(address, p) for p in PATHS},
        }
    print(json.dumps(out))

asyncio.run(main())
"""


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _listening_ports(processes: list[psutil.Process]) -> list[str]:
    """`host:port` of every TCP socket the processes listen on (a wildcard address as 127.0.0.1)."""
    found: set[str] = set()
    for proc in processes:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    host = conn.laddr.ip if conn.laddr.ip not in ("0.0.0.0", "::") else "127.0.0.1"
                    found.add(f"[{host}]:{conn.laddr.port}" if ":" in host else f"{host}:{conn.laddr.port}")
        except psutil.NoSuchProcess:
            continue
    return sorted(found)


def _environ(proc: psutil.Process) -> bytes:
    try:
        return Path(f"/proc/{proc.pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _attack(intruder: Intruder, ports: list[str]) -> dict[str, dict[str, dict[str, object]]]:
    done = intruder.run([_python(), "-c", ATTACK, json.dumps(ports)], timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, dict[str, object]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _python() -> str:
    return sys.executable


def _assert_nothing_answers(found: dict[str, dict[str, dict[str, object]]]) -> None:
    for port, tried in found.items():
        tcp, tls = tried["tcp"], tried["tls"]
        assert "answered" not in tcp, f"port {port} spoke Dask to another account over plain TCP: {tcp}"
        assert "answered" not in tls, f"port {port} accepted another account's certificate: {tls}"
        assert "refused" in tcp and "refused" in tls, f"port {port}: the attack itself failed: {tried}"
        for path, reply in tried["http"].items():  # type: ignore[union-attr]
            assert reply.get("status") != 200, f"port {port} served {path} to another account: {reply}"  # type: ignore[union-attr]


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def test_no_other_account_can_reach_the_agents_local_dask_cluster(
    site: Site, intruder: Intruder, prefect_env: str
) -> None:
    agent = site.agent("local", slots=2)
    task_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(task_id)

    processes = _tree(agent.pid)
    ports = _listening_ports(processes)
    # The scheduler and, per worker, a worker and a nanny: all in the agent's process tree.
    assert len(ports) >= 3, f"expected the scheduler's, workers' and nannies' ports, found {ports}"
    _assert_nothing_answers(_attack(intruder, ports))

    # The agent's own client still works: the task it was running completes.
    assert site.wait(task_id)["state"] == "COMPLETED"


def test_no_runner_worker_or_zygote_of_a_local_agent_holds_the_agent_key(site: Site, prefect_env: str) -> None:
    secret = "site-secret-" + os.urandom(8).hex()
    # The key in the agent's environment (a file is better, but both must hold), beside a credential the
    # operator's login shell happened to carry: a LocalCluster's workers start from the agent's environment.
    agent = site.agent("local", slots=1, key_in_environment=True, env={"AWS_SECRET_ACCESS_KEY": secret})
    task_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(task_id)

    key = site.keys["agent"].encode()
    children = _tree(agent.pid)[1:]
    runners = [p for p in children if "-m runner" in _cmdline(p) or "agent.warm.zygote" in _cmdline(p)]
    workers = [p for p in children if p not in runners]
    assert runners, f"no zygote or runner among the agent's children: {[_cmdline(p) for p in children]}"
    assert workers, "no Dask worker or nanny among the agent's children"
    for proc in children:
        environ = _environ(proc)
        assert environ, f"could not read the environment of {_cmdline(proc)}"
        assert key not in environ, f"the agent key is in the environment of {_cmdline(proc)}"
        assert secret.encode() not in environ, f"the login shell's credential reached {_cmdline(proc)}"
        assert b"VQPU_AGENT_KEY" not in environ, f"{_cmdline(proc)} was told where the agent key is"
    for proc in runners:  # the runner is told nothing about Prefect or Dask either: an allow-list, not a copy
        names = {entry.split(b"=", 1)[0] for entry in _environ(proc).split(b"\0") if entry}
        assert not {n for n in names if n.startswith((b"PREFECT_", b"DASK_", b"VQPU_"))}, (_cmdline(proc), names)
    assert site.wait(task_id)["state"] == "COMPLETED"


def _worker_sees() -> dict[str, Any]:
    """Run on a Dask worker: its environment now, the names it was started with, and the Prefect it imported.
    (`client.run(os.environ.copy)` would not do: it pickles the client's own os.environ and returns that.)"""
    with open("/proc/self/environ", "rb") as fh:
        started_with = [entry.split(b"=", 1)[0].decode() for entry in fh.read().split(b"\0") if entry]
    prefect = sorted(name for name in sys.modules if name.partition(".")[0] in ("prefect", "prefect_dask"))
    return {"environ": dict(os.environ), "started_with": started_with, "prefect": prefect}


def test_a_local_clusters_workers_get_no_prefect_credential_from_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_run_dir: Callable[..., Path], fez: Snapshot
) -> None:
    # Imported here: this module is what a worker imports to run _worker_sees, and this one imports Prefect.
    from agent.scheduler.dask import DaskAdapter

    secret = "operator:" + os.urandom(8).hex()
    monkeypatch.setenv("PREFECT_API_URL", "http://login-1:4200/api")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", secret)  # the agent's, as its operator starts it
    # What the agent does to its environment before it starts its cluster (agent.bootstrap.running_engine),
    # through monkeypatch so that this process gets it all back.
    for name in confine_environment(dict(os.environ)):
        monkeypatch.delenv(name)
    run_root = tmp_path / "runs"
    run_root.mkdir(mode=0o700)
    site = parse_site({"site": "env", "slots": 1, "run_root": str(run_root), "scheduler": {"kind": "local"}})
    adapter = DaskAdapter(site, cwd=ROOT)
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", shots=100)

    async def run_a_step_then_look() -> tuple[JobState, list[dict[str, Any]]]:
        await adapter.start()
        try:
            handle = await adapter.submit(run_dir, Resources())
            with anyio.fail_after(60):
                while (evidence := await adapter.query_terminal(handle)) is None:
                    await anyio.sleep(0.05)

            def look() -> list[dict[str, Any]]:
                with distributed.Client(adapter.address, security=adapter.security) as client:
                    return list(client.run(_worker_sees).values())

            return evidence.state, await anyio.to_thread.run_sync(look)
        finally:
            await adapter.close()

    state, workers = anyio.run(run_a_step_then_look)
    assert state is JobState.COMPLETED
    assert workers
    for seen in workers:
        assert "PREFECT_API_AUTH_STRING" not in seen["environ"], "a LocalCluster worker holds Prefect's credential"
        assert secret not in seen["environ"].values()
        assert "PREFECT_API_AUTH_STRING" not in seen["started_with"], "a worker was started with Prefect's credential"
        assert seen["prefect"] == [], f"a worker imported Prefect to run the step: {seen['prefect']}"


def _batch_workers(scheduler: list[str]) -> list[psutil.Process]:
    """The processes of the agent's batch jobs (started by slurmd, not by the agent): each job's Dask
    worker names the scheduler's address on its command line; its nanny's children come with it."""
    ports = "|".join(address.rsplit(":", 1)[1] for address in scheduler)
    address = re.compile(r"\b(?:tcp|tls)://\S+:(?:" + ports + r")\b")
    found = [p for p in psutil.process_iter() if "dask_worker" in _cmdline(p) and address.search(_cmdline(p))]
    return [child for p in found for child in _tree(p.pid)]


def test_no_other_account_can_reach_a_slurm_clusters_scheduler_or_workers(
    site: Site, intruder: Intruder, prefect_env: str
) -> None:
    require_slurm()
    agent = site.agent("slurm-local", key_in_environment=True)  # the key in its environment: it must not travel
    task_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(task_id, timeout_s=120)

    deadline = time.monotonic() + 30
    while not (workers := _batch_workers(_listening_ports(_tree(agent.pid)))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers, "no Dask worker of the agent's Slurm jobs was found"
    # The workers were given the paths of the credentials, never their contents.
    assert all("BEGIN" not in _cmdline(p) for p in workers)
    ports = _listening_ports(_tree(agent.pid) + workers)
    assert len(ports) >= 3, f"expected the scheduler's and the job's worker and nanny ports, found {ports}"
    _assert_nothing_answers(_attack(intruder, ports))

    key = site.keys["agent"].encode()
    for proc in workers:
        assert key not in _environ(proc), f"the agent key reached the batch job: {_cmdline(proc)}"
    # Nor may another account read the credentials the workers load (named on their command lines).
    named = {m for p in workers for m in re.findall(r"--tls-(?:key|cert|ca-file) (\S+)", _cmdline(p))}
    assert len(named) == 3, f"the workers present no credentials of their own: {[_cmdline(p) for p in workers]}"
    for path in named:
        peek = intruder.run(["cat", path])
        assert peek.returncode != 0 and "BEGIN" not in peek.stdout, f"another account read {path}"
    assert site.wait(task_id, timeout_s=120)["state"] == "COMPLETED"


def test_an_sbatch_jobs_runner_gets_an_allow_listed_environment(site: Site, prefect_env: str) -> None:
    require_slurm()
    secret = "site-secret-" + os.urandom(8).hex()
    # A credential the agent's login shell happened to carry: an sbatch job inherits everything by default.
    agent = site.agent("sbatch-local", key_in_environment=True, env={"AWS_SECRET_ACCESS_KEY": secret})
    task_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(task_id, timeout_s=120)

    key = site.keys["agent"].encode()
    deadline = time.monotonic() + 60
    runners: list[psutil.Process] = []
    while not runners and time.monotonic() < deadline:
        runners = [p for p in psutil.process_iter() if re.search(r"-m runner \S*" + re.escape(task_id), _cmdline(p))]
        time.sleep(0.1)
    assert runners, "the sbatch job's runner was not found"
    for proc in runners:
        environ = _environ(proc)
        assert b"SLURM_JOB_ID=" in environ  # it is the batch job's runner
        assert key not in environ and secret.encode() not in environ, "a secret reached the sbatch job"
    assert agent.proc is not None
    assert site.wait(task_id, timeout_s=120)["state"] == "COMPLETED"


def test_an_agent_refuses_a_key_file_other_accounts_can_read(tmp_path: Path, site: Site) -> None:
    key_file = tmp_path / "agent.key"
    key_file.write_text(site.keys["agent"])
    key_file.chmod(0o644)
    assert site.prefect_api_url is not None
    path = site_file(tmp_path, "local", run_root=str(tmp_path / "runs"))
    agent = AgentProcess(
        tmp_path,
        path,
        url=site.control_plane.url,
        key=site.keys["agent"],
        prefect_api_url=site.prefect_api_url,
        agent_id="agent-key-file",
    )
    agent.env["VQPU_AGENT_KEY_FILE"] = str(key_file)
    with pytest.raises(RuntimeError, match=r"mode 0644 lets other accounts read it"):
        agent.start(timeout_s=60)


def test_a_forged_result_left_in_a_run_directory_ends_the_task_failed_not_completed(
    site: Site, prefect_env: str
) -> None:
    """A runner that was subverted (or a run directory tampered with) leaves a valid-looking result that is not
    its task's: the control plane refuses it, and the agent reports the task FAILED at once rather than
    leaving it RUNNING until it goes stale."""
    agent = site.agent("local", scheduler={"kind": "memory"}, runner={"mode": "process"})
    task_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(task_id)
    runner = next(p for p in _tree(agent.pid) if re.search(r"-m runner \S*" + re.escape(task_id), _cmdline(p)))
    run_dir = Path(runner.cmdline()[-1])
    task = TaskDocument.model_validate_json((run_dir / TASK_FILE).read_bytes())
    snapshot = json.loads((run_dir / SNAPSHOT_FILE).read_bytes())
    claimed = {
        "attempt": task.attempt,
        "task": {
            "id": task.task_id,
            "device": snapshot["device_id"],
            "epoch": snapshot["epoch"],
            "snapshot_sha256": task.snapshot_sha256,
            "seed": task.seed,
            "options": task.options.model_dump(mode="json"),
            "dialect": task.dialect,
        },
    }
    forged = result_document(claimed, {"1": 7})  # 7 shots of a 1-bit outcome for a 100-shot, 10-bit task
    atomic_write(run_dir / RESULT_FILE, json.dumps(forged).encode())
    runner.kill()

    ended = site.wait(task_id, timeout_s=60)
    assert ended["state"] == "FAILED", ended
    assert ended["error"]["code"] == "INVALID_RESULT"
    rejected = [e for e in site.events(task_id) if e["type"] == "TASK_REPORT_REJECTED"]
    assert rejected and rejected[0]["data"]["field"] == "shots", rejected
    assert site.user.get(f"/v1/tasks/{task_id}/result").status_code != 200  # nothing of the forgery was stored
