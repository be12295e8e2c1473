"""`VQPUJob`: the tasks of one `backend.run()` seen as one Qiskit job: one circuit task, one PUB task holding
every circuit (one parameterless sampler PUB each), or several such where one would be too large.

Its `job_id()` is the task ids joined by commas. `status()` reads the tasks; `result()` waits for them
all and builds a Qiskit `Result` (a task that failed or was cancelled raises the client's
`TaskFailedError` / `TaskCancelledError` instead: never a partial result). `provenance()` says what
each circuit actually ran under: its task, epoch, snapshot sha256 and seed, enough to replay it.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, NamedTuple

from qiskit import QuantumCircuit
from qiskit.providers import JobError, JobStatus, JobV1
from qiskit.result import Result

from vqpu_client.calls import TERMINAL_STATES
from vqpu_client.errors import IllegalTransitionError, TaskFailedError, WaitTimeoutError
from vqpu_client.qiskit.results import Experiment, build_result, pub_document
from vqpu_protocol.api.tasks import TaskView
from vqpu_protocol.rundir import ResultDocument

if TYPE_CHECKING:
    from vqpu_client.qiskit.backend import VQPUBackend


_PUB_NAMED = re.compile(r"\Apubs\[([0-9]+)\]")


class TaskProvenance(NamedTuple):
    """What one circuit ran under, from its task's result: replay it by pinning `epoch` with `seed`."""

    task_id: str
    epoch: int
    snapshot_sha256: str
    seed: int


def job_status(states: list[str]) -> JobStatus:
    """One status for several tasks: final only once every task is; then ERROR if any failed, CANCELLED
    if any was cancelled, else DONE. Before that RUNNING once any task has started or ended, else QUEUED."""
    if all(state in TERMINAL_STATES for state in states):
        if "FAILED" in states:
            return JobStatus.ERROR
        return JobStatus.CANCELLED if "CANCELLED" in states else JobStatus.DONE
    return JobStatus.QUEUED if all(state == "QUEUED" for state in states) else JobStatus.RUNNING


class VQPUJob(JobV1):  # type: ignore[misc]
    """Made by `VQPUBackend.run()` with its tasks already submitted."""

    def __init__(
        self,
        backend: VQPUBackend,
        tasks: list[TaskView],
        circuits: list[QuantumCircuit],
        *,
        memory: bool,
        slots: list[tuple[str, int | None]] | None = None,
    ) -> None:
        """`slots`: for each circuit, its task and its PUB there (None: a circuit task); default one circuit
        task per circuit, in order."""
        super().__init__(backend, ",".join(task.id for task in tasks))
        self._client = backend.client
        self._views = {task.id: task for task in tasks}
        self._ids = [task.id for task in tasks]
        self._circuits = list(circuits)
        self._slots = list(slots) if slots is not None else [(task.id, None) for task in tasks]
        if len(self._slots) != len(self._circuits):
            raise ValueError(f"{len(self._slots)} slots for {len(self._circuits)} circuits")
        self._memory = memory
        self._documents: dict[str, ResultDocument] = {}
        self._result: Result | None = None

    def submit(self) -> None:
        raise JobError(f"job {self.job_id()} was submitted by backend.run(); it cannot be submitted again")

    def task_ids(self) -> list[str]:
        """The run's tasks in the order of their circuits: one per circuit, or one PUB task for several."""
        return list(self._ids)

    def tasks(self) -> list[TaskView]:
        """The tasks' records, re-read from the service unless already final."""
        for task_id, view in self._views.items():
            if view.state not in TERMINAL_STATES:
                self._views[task_id] = self._client.task(task_id)
        return [self._views[task_id] for task_id in self._ids]

    def status(self) -> JobStatus:
        return job_status([task.state for task in self.tasks()])

    def cancel(self) -> None:
        """Cancel every task not yet finished: a queued one at once, a running one once its agent stops it."""
        for task in self.tasks():
            if task.state in TERMINAL_STATES or task.cancel_requested:
                continue
            try:
                self._views[task.id] = self._client.cancel(task.id)
            except IllegalTransitionError:  # it finished in between
                self._views[task.id] = self._client.task(task.id)

    def result(self, timeout: float | None = None) -> Result:
        """Wait (at most `timeout` seconds in all) for every task and return their results as one `Result`.

        Raises the client's `TaskFailedError` or `TaskCancelledError` for the first task, in circuit
        order, that did not complete, and `WaitTimeoutError` when `timeout` runs out.
        """
        if self._result is None:
            documents = dict(zip(self._ids, self._finished_documents(timeout), strict=True))
            experiments = [
                Experiment(circuit, pub_document(documents[task_id], pub, task_id), task_id)
                for circuit, (task_id, pub) in zip(self._circuits, self._slots, strict=True)
            ]
            backend = self.backend()
            self._result = build_result(
                experiments,
                backend_name=backend.name,
                backend_version=backend.backend_version,
                job_id=self.job_id(),
                memory=self._memory,
            )
        return self._result

    def provenance(self, timeout: float | None = None) -> list[TaskProvenance]:
        """What each circuit ran under (waiting for the tasks as `result()` does), in circuit order: its task,
        epoch, snapshot and seed (a PUB's seed for a circuit of a multi-circuit run). A circuit task of that
        circuit alone, pinned to that epoch with that seed, gives the same counts."""
        documents = dict(zip(self._ids, self._finished_documents(timeout), strict=True))
        ran = [pub_document(documents[task_id], pub, task_id).provenance for task_id, pub in self._slots]
        return [TaskProvenance(p.task_id, p.epoch, p.snapshot_sha256, p.seed) for p in ran]

    def _finished_documents(self, timeout: float | None) -> list[ResultDocument]:
        deadline = None if timeout is None else time.monotonic() + timeout
        for task_id in self._ids:
            if task_id in self._documents:
                continue
            view = self._views[task_id]
            if view.state not in TERMINAL_STATES:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeoutError(task_id, timeout or 0.0, view)
                view = self._views[task_id] = self._client.wait(task_id, timeout_s=remaining)
            try:
                self._documents[task_id] = self._client.result_of(view)
            except TaskFailedError as exc:
                self._name_the_circuit(task_id, exc)
                raise
        return [self._documents[task_id] for task_id in self._ids]

    def _name_the_circuit(self, task_id: str, exc: TaskFailedError) -> None:
        """A PUB task's error names its PUB (`pubs[1]: ...`): say which circuit of the run that is."""
        error = exc.task.error
        named = _PUB_NAMED.match(error.message) if error is not None else None
        if named is None:
            return
        for index, (circuit, slot) in enumerate(zip(self._circuits, self._slots, strict=True)):
            if slot == (task_id, int(named.group(1))):
                exc.add_note(f"pubs[{slot[1]}] of task {task_id} is circuit {index} ({circuit.name!r}) of this run")
