"""User-side hybrid flows against the local stack: VQE and QAOA run in this (the user's) process as
Prefect flows on the stack's Prefect server, submitting through the client to the control plane,
whose agent runs each circuit. Retries of Prefect tasks and of flow runs never duplicate a vQPU task."""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.runtime import flow_run

from flows import qaoa, tasks, vqe
from flows.examples import h2
from flows.tasks import Submission, connect, run_circuit, run_circuits, submit_circuit
from harness.circuits import BELL
from harness.stack import LocalStack
from vqpu_client import Client, errors

DEVICE = "ibm-fez-ideal"
README = Path(__file__).resolve().parents[2] / "README.md"
FLOW_EXAMPLE_MARKER = "<!-- hybrid-flow-example -->"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The main job's stack; this process is the user: VQPU_URL/VQPU_KEY and PREFECT_API_URL point at it."""
    stack = LocalStack(tmp_path_factory.mktemp("hybrid-stack")).start()
    try:
        with stack.as_flow_user():
            yield stack
    finally:
        statuses = stack.stop()
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}


@pytest.fixture
def client(stack: LocalStack) -> Iterator[Client]:
    with Client(stack.url, stack.keys["user"]) as c:
        yield c


def tasks_of(client: Client, flow_run_id: str) -> list[str]:
    """The vQPU tasks a flow run made (each carries its flow run's tag)."""
    return [t.id for t in client.iter_tasks() if tasks.RUN_TAG_PREFIX + flow_run_id in t.tags]


def artifacts_of(flow_run_id: str) -> dict[str, object]:
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]))
        )
    return {a.key: a for a in found if a.key is not None}


def settled_task_runs(flow_run_id: UUID | None, timeout_s: float = 30.0) -> list[Any]:
    """The flow run's task runs once each is in a final state. Prefect 3 records task runs from the
    events the engine sends, so the server learns of them a moment after the flow run has returned."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as prefect:
        while True:
            found = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if found and all(r.state is not None and r.state.is_final() for r in found):
                return list(found)
            assert time.monotonic() < deadline, f"task runs of {flow_run_id} not final after {timeout_s} s: {found}"
            time.sleep(0.2)


def embedded_png(markdown: str) -> bytes:
    encoded = markdown.split("(data:image/png;base64,", 1)[1].split(")", 1)[0]
    return base64.b64decode(encoded, validate=True)


@pytest.mark.slow
def test_vqe_on_the_ideal_twin_reaches_chemical_accuracy_and_the_noisy_device_does_not(
    stack: LocalStack, client: Client, tmp_path: Path
) -> None:
    result = vqe.vqe_h2(results_dir=str(tmp_path))
    assert result.flow_run_id is not None
    assert abs(result.energy - result.exact) < 1.6e-3, result.summary()
    assert result.chemical_accuracy
    # Precision 0 on a simulator is the exact expectation value (Aer's estimator): no shot noise at all,
    # so the energy is the ansatz's own at the optimum found, computed here independently.
    assert result.stderr == 0.0
    assert result.energy == pytest.approx(h2.ansatz_energy(result.theta), abs=1e-9)
    assert result.noisy_energy is not None and result.noisy_stderr == 0.0
    assert result.noisy_energy - result.exact > 1.6e-3, result.summary()

    # Every energy was measured by a real Estimator task: one per evaluation, then the optimum on Fez.
    assert len(result.task_ids) == result.evaluations + 1 == len(set(result.task_ids))
    assert sorted(tasks_of(client, result.flow_run_id)) == sorted(result.task_ids)
    views = [client.task(i) for i in result.task_ids]
    assert {v.state for v in views} == {"COMPLETED"} and {v.kind for v in views} == {"estimator"}
    assert [v.device for v in views[-2:]] == ["ibm-fez-ideal", "ibm-fez"]
    assert client.snapshot("ibm-fez").couplings()[result.qubits].available

    found = artifacts_of(result.flow_run_id)
    assert {vqe.TABLE_KEY, vqe.PLOT_KEY} <= set(found)
    rows = json.loads(found[vqe.TABLE_KEY].data)  # type: ignore[attr-defined]
    assert [r["evaluation"] for r in rows] == list(range(1, result.evaluations + 1))
    assert embedded_png(found[vqe.PLOT_KEY].data) == (tmp_path / "vqe-h2-convergence.png").read_bytes()  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "vqe-h2.json").read_text())["energy"] == result.energy


@pytest.mark.slow
def test_qaoa_beats_random_assignment_and_leaves_its_table_and_plot_in_prefect(
    stack: LocalStack, client: Client
) -> None:
    result = qaoa.qaoa_maxcut()
    assert result.flow_run_id is not None
    assert result.random_ratio == 0.5  # a tree: a random assignment cuts half the edges
    assert result.ideal.ratio > 0.5 + 5 * result.ideal.stderr, result.summary()
    assert result.ideal.best_sampled_cut == result.max_cut == len(result.edges)
    assert result.noisy is not None and 0.5 < result.noisy.ratio < 1.0
    assert {client.task(i).kind for i in result.task_ids} == {"sampler"}  # one Sampler PUB per evaluation
    fez = client.snapshot("ibm-fez")
    assert all(fez.couplings()[e].available for e in result.edges)  # the graph is made of Fez's couplers

    found = artifacts_of(result.flow_run_id)
    table, plot = found[qaoa.TABLE_KEY], found[qaoa.PLOT_KEY]
    assert table.type == "table" and plot.type == "markdown"  # type: ignore[attr-defined]
    rows = json.loads(table.data)  # type: ignore[attr-defined]
    assert [r["ratio"] for r in rows] == [round(e.ratio, 5) for e in result.history]
    assert [r["task"] for r in rows] == result.task_ids[:-2]
    assert embedded_png(plot.data).startswith(b"\x89PNG\r\n\x1a\n")  # type: ignore[attr-defined]


def test_a_prefect_task_that_fails_after_submitting_makes_one_vqpu_task_across_its_attempts(
    stack: LocalStack, client: Client
) -> None:
    submitted: list[str] = []

    @task(retries=2, retry_delay_seconds=0, cache_policy=NO_CACHE, persist_result=False)
    def submit_then_lose_the_answer() -> str:
        with connect() as vqpu:
            view = tasks.submit(vqpu, Submission(device=DEVICE, circuit=BELL, shots=64, seed=5))
        submitted.append(view.id)
        if len(submitted) == 1:
            raise ConnectionError("the answer was lost on the way back")
        return view.id

    @flow(persist_result=False)
    def one_circuit() -> tuple[str, str | None]:
        return submit_then_lose_the_answer(), flow_run.get_id()

    task_id, run_id = one_circuit()
    assert run_id is not None
    assert submitted == [task_id, task_id]  # two attempts, the same vQPU task
    assert tasks_of(client, run_id) == [task_id]
    assert client.wait(task_id, timeout_s=120).state == "COMPLETED"


def test_a_retried_flow_run_finds_its_batch_done_and_a_new_flow_run_submits_anew(
    stack: LocalStack, client: Client
) -> None:
    attempts: list[list[str]] = []
    batch = [Submission(device=DEVICE, circuit=BELL, shots=64, seed=s) for s in (1, 2, 3)]

    @flow(retries=1, retry_delay_seconds=0, persist_result=False)
    def batch_then_crash() -> tuple[list[str], str | None]:
        results = run_circuits(batch)
        attempts.append([r.provenance.task_id for r in results])
        if len(attempts) == 1:
            raise RuntimeError("the flow crashed after its batch")
        return attempts[-1], flow_run.get_id()

    ids, run_id = batch_then_crash()
    assert run_id is not None
    assert attempts == [ids, ids]
    assert sorted(tasks_of(client, run_id)) == sorted(ids)
    with get_client(sync_client=True) as prefect:
        [run] = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])))
    assert run.run_count == 2

    attempts.clear()
    again, other_run = batch_then_crash()
    assert other_run != run_id and set(again).isdisjoint(ids)  # the key is per flow run, not a global cache


def test_identical_submissions_in_one_flow_run_are_one_task_unless_labelled(stack: LocalStack, client: Client) -> None:
    @flow(persist_result=False)
    def three_submissions() -> list[str]:
        same = [submit_circuit(DEVICE, BELL, shots=64, seed=9).id for _ in range(2)]
        return [*same, submit_circuit(DEVICE, BELL, shots=64, seed=9, label="trial-2").id]

    first, repeat, labelled = three_submissions()
    assert first == repeat != labelled


def test_a_failed_vqpu_task_fails_the_prefect_task_without_retrying(stack: LocalStack, client: Client) -> None:
    no_measurement = "OPENQASM 3.0;\nsx $0;\n"

    @flow(persist_result=False)
    def doomed() -> None:
        run_circuit(DEVICE, no_measurement, shots=16, seed=1)

    state = doomed(return_state=True)
    assert state.is_failed()
    with pytest.raises(errors.TaskFailedError) as failed:
        state.result()
    assert failed.value.code == "NO_MEASUREMENTS"
    assert client.task(failed.value.task.id).attempt == 1
    [run] = settled_task_runs(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_failed()
    assert run.run_count == 1  # retried only for what a retry can fix


def test_the_readmes_hybrid_flow_runs_as_written_and_finds_the_angle_that_prepares_zero(
    stack: LocalStack, client: Client
) -> None:
    """The README's example flow, executed as a user who pasted it would (VQPU_URL, VQPU_KEY and
    PREFECT_API_URL set): eight circuits, each a real task, and the classical loop picks θ = π."""
    text = README.read_text(encoding="utf-8")
    assert text.count(FLOW_EXAMPLE_MARKER) == 1
    found = re.match(r"\s*```python\n(.*?)\n```", text.split(FLOW_EXAMPLE_MARKER, 1)[1], re.DOTALL)
    assert found is not None, f"no ```python block follows {FLOW_EXAMPLE_MARKER!r} in the README"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(README), "exec"), namespace)
    before = {t.id for t in client.iter_tasks()}
    # Called as a user calls a flow: its value. (Not `return_state=True` and `state.result()`: when
    # Prefect's SQLite server stalls, which CI saw it do for 60 s at a time, "database is locked", the
    # engine re-reads its final state from the server, and that copy carries no result data.)
    theta = namespace["scan"]()
    assert theta == pytest.approx(math.pi)
    made = [t for t in client.iter_tasks() if t.id not in before]
    runs = {tag for t in made for tag in t.tags if tag.startswith(tasks.RUN_TAG_PREFIX)}
    assert len(made) == 8 and len(runs) == 1  # eight tasks, all of the one flow run
