"""Prefect is the operators' view, never a way around tenancy: the local stack as shipped, attacked as
another account on the same machine (harness.intruder) would attack it. Without the stack's Prefect
credential nothing is read and nothing is cancelled (401); what an operator reads holds no tenant's
results; an operator's cancel from Prefect is recorded as the operator's, not the owner's; and the
files that hold the stack's keys and data are private to its account. See docs/agent.md, "Prefect"."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling

from agent.artifacts import COUNTS_WITHHELD
from harness.circuits import BELL, busy
from harness.intruder import Intruder
from harness.prefect_server import PrefectServerProcess, prefect_api
from harness.stack import LocalStack
from tests.e2e.sites import Site
from tests.requirements import browser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

LONG = busy(10, 40)
"""10-20 s of simulation: RUNNING for as long as the attack takes."""

TENANT_TAG = "tenant-a-project-x"

# Run as the other account: every way in that needs no credential, and one with a wrong one (a tenant's
# vQPU key). Prints one JSON line: what each attempt got back.
ATTACK = r"""
import asyncio, base64, json, sys
import httpx

api, run_id, tenant_key = sys.argv[1:4]
basic = {"Authorization": "Basic " + base64.b64encode(f"operator:{tenant_key}".encode()).decode()}
cancel = {"state": {"type": "CANCELLING", "name": "Cancelling", "message": "not yours"}, "force": True}
out = {}
with httpx.Client(base_url=api, timeout=10) as http:
    out["health"] = http.get("/health").status_code
    out["flow_runs"] = http.post("/flow_runs/filter", json={}).status_code
    out["flow_run"] = http.get(f"/flow_runs/{run_id}").status_code
    out["artifacts"] = http.post("/artifacts/filter", json={}).status_code
    out["events"] = http.post("/events/filter", json={}).status_code
    out["set_state"] = http.post(f"/flow_runs/{run_id}/set_state", json=cancel).status_code
    out["set_state_with_a_tenant_key"] = http.post(
        f"/flow_runs/{run_id}/set_state", json=cancel, headers=basic
    ).status_code
    out["bearer_tenant_key"] = http.post(
        "/flow_runs/filter", json={}, headers={"Authorization": f"Bearer {tenant_key}"}
    ).status_code

async def prefect_client():
    from prefect.client.orchestration import PrefectClient
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        async with PrefectClient(api) as client:
            await client.read_flow_runs()
    except PrefectHTTPStatusError as exc:
        return exc.response.status_code
    return 200

out["prefect_client"] = asyncio.run(prefect_client())
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The stack as shipped, in a directory under a parent every account can enter (as a `--dir` under
    /tmp would be): only the stack's own modes keep the other account out."""
    parent = Path(tempfile.mkdtemp(prefix="vqpu-prefect-security-"))
    parent.chmod(0o755)
    stack = LocalStack(parent / "stack", slots=2).start()
    try:
        yield stack
    finally:
        statuses = stack.stop()
        shutil.rmtree(parent, ignore_errors=True)
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}


@pytest.fixture(scope="module")
def site(stack: LocalStack) -> Iterator[Site]:
    """Tenant A: the stack's user key, over REST."""
    assert stack.control_plane is not None and stack.prefect is not None
    site = Site(stack.workdir, stack.control_plane, stack.keys, stack.prefect.api_url)
    try:
        yield site
    finally:
        site.close()


@pytest.fixture(scope="module")
def operator(stack: LocalStack) -> Iterator[SyncPrefectClient]:
    """The site's operator: a Prefect client with the stack's credential."""
    assert stack.prefect is not None
    with prefect_api(stack.prefect), get_client(sync_client=True) as client:
        yield client


def flow_run_of(
    operator: SyncPrefectClient, task_id: str, state: StateType | None = None, timeout_s: float = 30
) -> FlowRun:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = operator.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"vqpu-{task_id}"])))
        if runs and (state is None or runs[0].state_type == state):
            return runs[0]
        if time.monotonic() > deadline:
            found = runs[0].state_type if runs else "no flow run"
            raise AssertionError(f"flow run of {task_id}: {found}, waiting for {state} for {timeout_s} s")
        time.sleep(0.1)


def submit(site: Site, circuit: str, dialect: str, shots: int) -> str:
    body = {"device": "ibm-fez", "circuit": circuit, "dialect": dialect, "shots": shots, "tags": [TENANT_TAG]}
    r = site.user.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_stacks_directory_keys_and_databases_are_private_to_its_account(
    stack: LocalStack, intruder: Intruder
) -> None:
    workdir = stack.workdir
    assert mode(workdir) == 0o700
    described = json.loads((workdir / "stack.json").read_text())
    assert described["prefect_auth_string"] == (workdir / "prefect-auth").read_text().strip()
    assert set(described["keys"]) == {"user", "admin", "agent"}
    for name in ("stack.json", "prefect-auth", "keys.json", "control-plane.db", "prefect.db"):
        assert mode(workdir / name) == 0o600, f"{name} is {mode(workdir / name):04o}"
    for database_file in [*workdir.glob("control-plane.db*"), *workdir.glob("prefect.db*")]:  # journals, WAL
        assert mode(database_file) & 0o077 == 0, f"{database_file.name} is {mode(database_file):04o}"
    for name in ("stack.json", "prefect-auth", "control-plane.db", "prefect.db"):
        read = intruder.run(["cat", str(workdir / name)])
        assert read.returncode != 0 and "Permission denied" in read.stderr, f"the other account read {name}"


def test_without_the_prefect_credential_another_account_reads_nothing_and_cancels_nothing(
    stack: LocalStack, site: Site, operator: SyncPrefectClient, intruder: Intruder
) -> None:
    assert stack.prefect is not None
    task_id = submit(site, LONG, "qasm2", 100)
    site.wait_running(task_id)
    run = flow_run_of(operator, task_id, StateType.RUNNING)

    attack = intruder.run([sys.executable, "-c", ATTACK, stack.prefect.api_url, str(run.id), stack.keys["user"]])
    assert attack.returncode == 0, attack.stderr[-3000:]
    answers = json.loads(attack.stdout.strip().splitlines()[-1])
    assert answers.pop("health") == 200  # the one route left open: it says nothing but "up"
    assert answers == {
        "flow_runs": 401,
        "flow_run": 401,
        "artifacts": 401,
        "events": 401,
        "set_state": 401,
        "set_state_with_a_tenant_key": 401,
        "bearer_tenant_key": 401,
        "prefect_client": 401,
    }

    time.sleep(1.5)  # three of the agent's Prefect-cancel polls: a cancel that got through would show by now
    task = site.task(task_id)
    assert task["state"] == "RUNNING" and not task["cancel_requested"], task
    assert operator.read_flow_run(run.id).state_type == StateType.RUNNING

    assert site.user.post(f"/v1/tasks/{task_id}/cancel").status_code == 200  # the owner may
    assert site.wait(task_id, timeout_s=15)["state"] == "CANCELLED"


def test_an_operator_sees_what_a_tenants_task_ran_on_and_where_but_not_its_counts(
    site: Site, operator: SyncPrefectClient
) -> None:
    task_id = submit(site, BELL, "qasm3", 1000)
    task = site.wait(task_id, timeout_s=120)
    assert task["state"] == "COMPLETED", task["error"]
    counts = site.result(task_id)["counts"]

    run = flow_run_of(operator, task_id, StateType.COMPLETED)  # it ends once its artifacts are attached
    artifacts = operator.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
    )
    assert [(a.key, a.type) for a in artifacts] == [(f"vqpu-{task_id}-snapshot", "markdown")]
    summary = str(artifacts[0].data)
    for shown in ("ibm-fez", task["bound_sha256"], "| shots | 1000 |", "| state | COMPLETED |", "| node |"):
        assert shown in summary
    assert COUNTS_WITHHELD in summary
    assert not any(f"| {bits} |" in summary or f"`{bits}`" in summary for bits in counts)

    # The run itself: the task's id, attempt, device and run directory; nothing the tenant wrote.
    assert set(run.parameters) == {"task_id", "attempt", "device", "run_dir"}
    assert set(run.tags) == {"vqpu", "device:ibm-fez", f"agent:{task['agent_id']}"}  # the site's agent, no tenant's tag
    shown_run = run.model_dump_json()
    assert TENANT_TAG not in shown_run and "measure" not in shown_run


def test_an_operator_with_the_stacks_credential_cancels_a_running_task_and_the_record_names_the_operator(
    site: Site, operator: SyncPrefectClient
) -> None:
    task_id = submit(site, LONG, "qasm2", 100)
    site.wait_running(task_id)
    run = flow_run_of(operator, task_id, StateType.RUNNING)

    operator.set_flow_run_state(run.id, Cancelling(message="pressed in the UI"))
    task = site.wait(task_id, timeout_s=15)
    assert task["state"] == "CANCELLED", task
    flow_run_of(operator, task_id, StateType.CANCELLED, timeout_s=10)

    cancelled: list[dict[str, Any]] = [e for e in site.events(task_id) if e["type"] == "TASK_CANCELLED"]
    assert len(cancelled) == 1
    assert cancelled[0]["data"]["by"] == "operator" and cancelled[0]["data"]["via"] == "prefect", cancelled[0]
    assert cancelled[0]["data"]["actor"] == f'prefect:flow-run/{run.id} "pressed in the UI"'


def test_the_prefect_ui_asks_for_the_credential_and_talks_to_its_own_server(tmp_path: Path) -> None:
    """As scripts/stack.sh serves it: the UI's settings say basic auth (the UI then shows its login page and
    sends what is typed there as the credential) and name this server's API, not Prefect's default port."""
    with PrefectServerProcess(tmp_path / "prefect", ui=True) as server:
        settings = httpx.get(f"{server.url}/ui-settings", timeout=10).json()
        assert settings["auth"] == "BASIC" and settings["api_url"] == server.api_url
        assert httpx.get(server.url, timeout=10, follow_redirects=True).status_code == 200  # the page itself
        assert httpx.post(f"{server.api_url}/flow_runs/filter", json={}, timeout=10).status_code == 401


def test_a_browser_without_the_credential_sees_no_flow_run_and_is_offered_the_login_form(tmp_path: Path) -> None:
    """In a real headless Chromium, against the UI scripts/stack.sh serves, holding a tenant's flow run: the runs
    list and the run's own page never show it, and the login page asks for the credential. (Which of the two a
    first visit lands on is the UI's race between rendering and its first 401; what it shows is not.) The
    screenshot of the runs page is kept beside the test's files."""
    chromium = browser()

    @flow
    def tenant_work() -> None:
        pass

    with PrefectServerProcess(tmp_path / "prefect", ui=True) as server:
        with prefect_api(server), get_client(sync_client=True) as client:
            run = client.create_flow_run(tenant_work, name="alice-tenant-run")
        common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000"]

        def dom(page: str) -> str:
            shown = subprocess.run(
                [*common, "--dump-dom", f"{server.ui_url}/{page}"], capture_output=True, text=True, timeout=120
            )
            assert shown.returncode == 0, shown.stderr[-2000:]
            return shown.stdout

        runs, run_page, login = dom("runs"), dom(f"runs/flow-run/{run.id}"), dom("login")
        shot = tmp_path / "prefect-ui.png"
        subprocess.run(
            [*common, "--window-size=1280,800", f"--screenshot={shot}", f"{server.ui_url}/runs"],
            capture_output=True,
            timeout=120,
        )
    assert "alice-tenant-run" not in runs and "alice-tenant-run" not in run_page
    assert "<body" in runs and "<body" in run_page  # pages were rendered, not refused outright
    assert 'type="password"' in login and "Login" in login, login[-2000:]
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
