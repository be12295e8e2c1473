"""User-side Prefect tasks: submit circuits to the vQPU service, wait for them, read their results.

    from flows.tasks import Submission, run_circuit, run_circuits, run_pubs

    @flow
    def my_flow() -> None:
        result = run_circuit("ibm-fez", qasm, shots=1000, seed=7)
        z, x = run_circuits([Submission(device="ibm-fez", circuit=c, shots=1000) for c in (cz, cx)])
        sweep = run_pubs("ibm-fez", SamplerPubs(pubs=[SamplerPub(circuit=template, parameter_values=rows)]),
                         shots=1000)  # one task; sweep.pubs.pubs[0].counts[i] is binding i's

**Retries never duplicate work.** Every submission carries an idempotency key derived from the run
it belongs to (the flow run's id; a task run's id outside a flow) and from everything it submits
(device, circuit, dialect, shots, seed, epoch, options, tags) plus a `label`. A retried Prefect task,
or a retried flow run, submits the same thing under the same key, and the control plane answers
with the task the first attempt created (HTTP 200) instead of creating another. The flip side:
identical submissions in one flow run *are* one task. To run the same circuit twice on purpose
(repeated trials without a seed), give each a different `label`; `run_circuits` refuses a batch
holding two identical, unlabelled submissions rather than silently merging them.

**The connection.** The URL comes from the `url` argument or `VQPU_URL`; the API key only from the
environment, `VQPU_KEY`, of the process that runs the flow. It is never a task or flow parameter:
Prefect stores a run's parameters and shows them in its UI to everyone who can see the run.

Each task opens its own client and closes it (no client lives in module state, so tasks stay
picklable for any task runner). The tasks retry only what a retry can fix (the service unreachable
or answering 5xx); a failed vQPU task, an inadmissible circuit or a bad key fail the Prefect task at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vqpu_client import Client, errors
from vqpu_client.keys import read_key_file
from vqpu_protocol.api.tasks import TaskView, check_task_kind
from vqpu_protocol.pubs import EstimatorPubs, Pubs, SamplerPubs
from vqpu_protocol.rundir import ResultDocument, RunOptions

URL_ENV = "VQPU_URL"
KEY_ENV = "VQPU_KEY"
RUN_TAG_PREFIX = "prefect-flow-run:"
"""Each task a flow run submits is tagged with it, so a task names the flow run that made it."""
RETRY_DELAYS_S = [2, 10]


class ConnectionSettingsError(errors.VQPUError):
    """No service URL (argument or VQPU_URL) or no API key (VQPU_KEY) in this process's environment."""


class DuplicateSubmissionError(errors.VQPUError, ValueError):
    """A batch holds two identical submissions without distinct labels: they would be one task."""


class Submission(BaseModel):
    """One task to run, a circuit or PUBs (`run_pubs`), as the service's submit takes it, plus the `label`
    that tells deliberately repeated identical submissions apart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str
    circuit: str | None = None
    pubs: Pubs | None = Field(None, description="Sampler or Estimator PUBs run as one task, instead of a circuit")
    shots: int | None = Field(None, ge=1, description="a circuit's shots; a sampler task's default per PUB")
    seed: int | None = None
    epoch: int | None = None
    dialect: Literal["qasm2", "qasm3"] | None = None
    options: RunOptions = Field(default_factory=RunOptions)
    tags: tuple[str, ...] = ()
    label: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Submission:
        check_task_kind(self.circuit, self.pubs, self.shots, self.options)
        return self

    def fingerprint(self) -> str:
        """sha256 of the submission's canonical JSON (run options without their defaults, so a dict and
        the equivalent RunOptions agree)."""
        body = self.model_dump(mode="json", exclude={"options"})
        body["options"] = self.options.model_dump(mode="json", exclude_defaults=True)
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- plain functions (the tasks below are these, run as Prefect tasks) --------------------------


def connect(
    url: str | None = None, *, timeout_s: float = 30.0, key_env: str = KEY_ENV, key_kind: str = "API"
) -> Client:
    """A client for `url` (else VQPU_URL) with the key in the environment variable `key_env`, or in the
    private file that `key_env`_FILE names (refused if another account could read it: vqpu_client.keys)."""
    url = url or os.environ.get(URL_ENV)
    key_file = os.environ.get(f"{key_env}_FILE")
    if key_file and os.environ.get(key_env):
        raise ConnectionSettingsError(f"both {key_env} and {key_env}_FILE are set: unset one")
    key = read_key_file(key_file) if key_file else os.environ.get(key_env)
    if not url:
        raise ConnectionSettingsError(f"no vQPU service URL: pass url= or set {URL_ENV}")
    if not key:
        raise ConnectionSettingsError(
            f"no vQPU {key_kind} key: set {key_env}_FILE (a file only you can read) or {key_env} in the "
            "environment of the process that runs the flow"
        )
    return Client(url, key, timeout_s=timeout_s)


def run_scope() -> tuple[str, str] | None:
    """("flow-run", id) inside a flow run, ("task-run", id) in a task run outside any flow, else None."""
    from prefect.context import TaskRunContext
    from prefect.runtime import flow_run

    flow_run_id = flow_run.get_id()
    if flow_run_id:
        return "flow-run", flow_run_id
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return "task-run", str(task_ctx.task_run.id)
    return None


def idempotency_key(submission: Submission, scope: tuple[str, str] | None) -> str | None:
    """The key for this submission in this run; None outside any run (the client then makes a fresh
    one, which still covers its own HTTP retries)."""
    if scope is None:
        return None
    kind, run_id = scope
    return f"prefect-{kind}-{run_id}-{submission.fingerprint()[:40]}"


def submit(client: Client, submission: Submission) -> TaskView:
    """Submit under the run-derived key: the first call creates the task, every repeat returns it."""
    scope = run_scope()
    tags = list(submission.tags)
    if scope is not None and scope[0] == "flow-run":
        tags.append(RUN_TAG_PREFIX + scope[1])
    return client.submit(
        submission.device,
        submission.circuit,
        pubs=submission.pubs,
        shots=submission.shots,
        dialect=submission.dialect,
        seed=submission.seed,
        epoch=submission.epoch,
        tags=tags,
        options=submission.options,
        idempotency_key=idempotency_key(submission, scope),
    )


def results(client: Client, task_ids: Iterable[str], timeout_s: float | None = None) -> list[ResultDocument]:
    """Wait for each task (they run concurrently on the service; waiting in turn costs the slowest) and
    read its result; the first that failed or was cancelled raises its `TaskError`."""
    return [client.result_of(client.wait(task_id, timeout_s=timeout_s)) for task_id in task_ids]


def check_distinct(submissions: Sequence[Submission]) -> None:
    seen: dict[str, Submission] = {}
    for s in submissions:
        if s.fingerprint() in seen:
            raise DuplicateSubmissionError(
                f"a submission appears more than once in the batch ({s.device}, {s.shots or 0} shots, seed {s.seed}, "
                f"label {s.label!r}): it would be one task. Give each a distinct label to run them separately."
            )
        seen[s.fingerprint()] = s


def retry_if_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what another attempt can fix: the service unreachable, starting, or answering 5xx."""
    failure: Any = state.data
    if not isinstance(failure, BaseException):
        try:
            failure = state.result(raise_on_failure=False)
        except Exception as exc:  # the failure could not be read back: say no rather than loop
            failure = exc
    return isinstance(failure, errors.TransportError | errors.UnavailableError | errors.ServerError)


# --- the Prefect tasks --------------------------------------------------------------------------

_TASK_OPTIONS: dict[str, Any] = {
    "retries": len(RETRY_DELAYS_S),
    "retry_delay_seconds": RETRY_DELAYS_S,
    "retry_condition_fn": retry_if_transient,
    # Idempotency keys already make a repeat free; caching would hash whole circuits for nothing.
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


def _submission(
    device: str,
    circuit: str | None,
    shots: int | None,
    seed: int | None,
    epoch: int | None,
    dialect: Literal["qasm2", "qasm3"] | None,
    options: RunOptions | Mapping[str, Any] | None,
    tags: Iterable[str],
    label: str,
    pubs: SamplerPubs | EstimatorPubs | None = None,
) -> Submission:
    return Submission(
        device=device,
        circuit=circuit,
        pubs=pubs,
        shots=shots,
        seed=seed,
        epoch=epoch,
        dialect=dialect,
        options=RunOptions() if options is None else RunOptions.model_validate(options, strict=False),
        tags=tuple(tags),
        label=label,
    )


@task(name="vqpu-submit", task_run_name="submit to {device}", **_TASK_OPTIONS)
def submit_circuit(
    device: str,
    circuit: str,
    *,
    shots: int,
    seed: int | None = None,
    epoch: int | None = None,
    dialect: Literal["qasm2", "qasm3"] | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    label: str = "",
    url: str | None = None,
) -> TaskView:
    """Submit one circuit; the vQPU task's record (QUEUED, or further along on a repeat)."""
    with connect(url) as client:
        return submit(client, _submission(device, circuit, shots, seed, epoch, dialect, options, tags, label))


@task(name="vqpu-await", task_run_name="await {task_id}", **_TASK_OPTIONS)
def await_task(task_id: str, *, timeout_s: float | None = None, url: str | None = None) -> TaskView:
    """Wait until the vQPU task is COMPLETED, FAILED or CANCELLED; its final record."""
    with connect(url) as client:
        return client.wait(task_id, timeout_s=timeout_s)


@task(name="vqpu-run", task_run_name="run on {device}", **_TASK_OPTIONS)
def run_circuit(
    device: str,
    circuit: str,
    *,
    shots: int,
    seed: int | None = None,
    epoch: int | None = None,
    dialect: Literal["qasm2", "qasm3"] | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    label: str = "",
    timeout_s: float | None = None,
    url: str | None = None,
) -> ResultDocument:
    """Submit, wait, return the result (`.counts`); a failed or cancelled vQPU task raises its TaskError."""
    with connect(url) as client:
        view = submit(client, _submission(device, circuit, shots, seed, epoch, dialect, options, tags, label))
        return results(client, [view.id], timeout_s)[0]


@task(name="vqpu-run-batch", **_TASK_OPTIONS)
def run_circuits(
    submissions: Sequence[Submission], *, timeout_s: float | None = None, url: str | None = None
) -> list[ResultDocument]:
    """Submit every circuit first (the service runs them side by side), then wait for all; the results
    in the order given."""
    check_distinct(submissions)
    with connect(url) as client:
        views = [submit(client, s) for s in submissions]
        return results(client, [v.id for v in views], timeout_s)


@task(name="vqpu-run-pubs", task_run_name="run {label} on {device}", **_TASK_OPTIONS)
def run_pubs(
    device: str,
    pubs: SamplerPubs | EstimatorPubs,
    *,
    shots: int | None = None,
    seed: int | None = None,
    epoch: int | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    label: str = "",
    timeout_s: float | None = None,
    url: str | None = None,
) -> ResultDocument:
    """Run Sampler or Estimator PUBs as ONE vQPU task (one claim, one runner execution: docs/api.md) and
    return its result (`.pubs`: per PUB, counts per binding or expectation values with standard errors).
    Retried as `run_circuit` is: under the run-derived idempotency key a repeat is the same task."""
    submission = _submission(device, None, shots, seed, epoch, "qasm3", options, tags, label, pubs=pubs)
    with connect(url) as client:
        view = submit(client, submission)
        return results(client, [view.id], timeout_s)[0]
