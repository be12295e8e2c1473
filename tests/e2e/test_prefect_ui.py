"""The Prefect UI of the local stack, as its operator uses it: `scripts/stack.sh`'s stack (its UI on) runs a task;
a real headless Chromium opens the UI at the URL the stack prints, is asked for the stack's Prefect credential,
has it typed and entered as a person would, and is then shown the flow run `vqpu-<task>`, completed, with its
summary artifact, in Prefect's default (V2) UI and in the classic one: the UI talks to this stack's own server
(PREFECT_UI_API_URL), never "Can't connect to Server API". The screenshots are kept with the test's files (the
test prints where).

How the UI takes the credential (Prefect 3.9.1, both UIs): `/ui-settings` says `auth: BASIC`; the login page
stores what is typed, base64-encoded, in the origin's localStorage under `prefect-password` and sends it as
`Authorization: Basic ...` on every API call; a 401 clears it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import FlowRun, StateType

from harness.circuits import BELL
from harness.prefect_server import prefect_api
from harness.stack import LocalStack
from tests.e2e.browser import Chromium
from tests.e2e.sites import Site
from tests.requirements import browser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

NO_SERVER = "Can't connect to Server API"
"""What the UI shows when it cannot reach the API it was told about (a wrong PREFECT_UI_API_URL, a refused
credential that was never asked for)."""


def completed_flow_run(operator: SyncPrefectClient, task_id: str, timeout_s: float = 60) -> FlowRun:
    """The task's flow run once Prefect has it COMPLETED (after its artifacts are attached)."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = operator.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"vqpu-{task_id}"])))
        if runs and runs[0].state_type == StateType.COMPLETED:
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"flow run vqpu-{task_id}: {runs[0].state_type if runs else 'none'} after {timeout_s} s"
            )
        time.sleep(0.2)


def test_the_operator_logs_in_to_the_stacks_prefect_ui_and_sees_a_tasks_flow_run_and_its_summary(
    tmp_path: Path,
) -> None:
    chromium = browser()  # before the stack starts: a skip (or, under VQPU_REQUIRE_BROWSER=1, a failure) is cheap
    # `python -m harness.stack` as scripts/stack.sh runs it: the Prefect UI on, SQLite, two slots.
    stack = LocalStack(tmp_path / "stack", ui=True).start()
    try:
        shots = operate(stack, chromium, tmp_path)
    finally:
        statuses = stack.stop()
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}
    print(f"screenshots in {shots}")


def operate(stack: LocalStack, chromium_executable: str, tmp_path: Path) -> Path:
    """The task, its flow run, and the operator's browser on them; where the screenshots are."""
    assert stack.prefect is not None and stack.control_plane is not None
    ui = stack.prefect.ui_url
    # What the UI is told: log in with basic auth, then call this server's API (PREFECT_UI_API_URL).
    ui_settings = httpx.get(f"{ui}/ui-settings", timeout=10).json()
    assert ui_settings["auth"] == "BASIC" and ui_settings["api_url"] == stack.prefect.api_url

    site = Site(stack.workdir, stack.control_plane, stack.keys, stack.prefect.api_url)
    try:
        task_id = site.submit(BELL, shots=1000)
        task = site.wait(task_id, timeout_s=120)
    finally:
        site.close()
    assert task["state"] == "COMPLETED", task["error"]
    run_name, artifact_key = f"vqpu-{task_id}", f"vqpu-{task_id}-snapshot"
    with prefect_api(stack.prefect), get_client(sync_client=True) as operator:
        run = completed_flow_run(operator, task_id)
        artifacts = operator.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert [a.key for a in artifacts] == [artifact_key]

    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen: list[str] = []  # every page's text, checked at the end for the UI's "no server" error
    started = time.monotonic()
    with Chromium(chromium_executable, tmp_path / "browser") as page:
        # Where the operator starts: the URL scripts/stack.sh prints. Prefect 3.9 sends a browser with no saved
        # preference to its V2 UI, which asks for the credential before it shows anything.
        page.navigate(ui)
        seen.append(page.wait_until("the login form", lambda t: "Login" in t and "/v2/login" in page.url()))
        assert run_name not in seen[-1]
        page.screenshot(shots / "1-login.png")

        # The whole credential, as scripts/stack.sh prints it, typed and entered; the UI keeps it for the origin.
        page.type_text("input[type=password]", stack.prefect.auth_string)
        page.press_enter()
        seen.append(page.wait_until("the UI behind the login", lambda t: "Logout" in t and "/login" not in page.url()))

        page.navigate(f"{ui}/v2/runs/flow-run/{run.id}?tab=Artifacts")
        seen.append(
            page.wait_until(
                f"{run_name}, completed, with its artifact",
                lambda t: run_name in t and "Completed" in t and artifact_key in t,
            )
        )
        page.settle()
        page.screenshot(shots / "2-flow-run-artifacts.png")

        # The summary itself: what ran where, for the task the control plane ran.
        page.navigate(f"{ui}/v2/artifacts/artifact/{artifacts[0].id}")
        summary = page.wait_until(
            "the summary artifact", lambda t: artifact_key in t and f"vQPU task {task_id}" in t and "ibm-fez" in t
        )
        seen.append(summary)
        assert f"vQPU task {task_id}" in summary and task["bound_sha256"] in summary and "COMPLETED" in summary
        page.settle()
        page.screenshot(shots / "3-artifact.png")

        # The classic UI, on the same stored credential: the run's own page and its Artifacts tab.
        page.navigate(f"{ui}/runs/flow-run/{run.id}")
        seen.append(page.wait_until(f"{run_name} in the V1 UI", lambda t: run_name in t and "Completed" in t))
        # The tabs move while the page still fills in (its header gains the task-run count): click once it is
        # still, and again if the click landed before the tab was ready, as a person would.
        page.settle()
        for tries_left in reversed(range(3)):
            page.click("Artifacts")
            try:
                seen.append(page.wait_until("the run's artifact in the V1 UI", lambda t: artifact_key in t, 10.0))
                break
            except AssertionError:
                if not tries_left:
                    raise
        page.settle()
        page.screenshot(shots / "4-v1-flow-run-artifacts.png")
    print(f"\nthe browser's part: {time.monotonic() - started:.1f} s")
    assert not [text for text in seen if NO_SERVER in text]
    assert not [text for text in seen[1:] if "Authentication failed" in text]
    for shot in sorted(shots.iterdir()):
        assert shot.stat().st_size > 10_000, f"{shot.name} is blank"
    return shots
