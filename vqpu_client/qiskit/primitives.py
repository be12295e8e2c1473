"""`VQPUSamplerV2` and `VQPUEstimatorV2`: Qiskit's V2 primitives on a `VQPUBackend`, every `run()` ONE task.

    sampler = VQPUSamplerV2(backend)
    job = sampler.run([(isa_circuit, parameter_values)], shots=1000)   # one task, however many PUBs
    counts = job.result()[0].data.c.get_counts()

    estimator = VQPUEstimatorV2(backend)
    evs = estimator.run([(isa_circuit, isa_observables, parameter_values)]).result()[0].data.evs

All the PUBs of one `run()` travel as one PUB task (`vqpu_protocol.pubs`): one claim, one flow run and one
runner execution, with Aer's own primitives on the device's noise. The circuits go through the backend's
circuit path (circuits.py: the same checks and lowering `backend.run` applies), their free parameters as
OpenQASM 3 `input`s; the task carries the backend's run options (`vqpu_noise_model`, `noise`, `method`,
`device`, `job_tags`, its pinned epoch) and the seed. The job's id is the task's id.

Sampler results are rebuilt from counts: each register's `BitArray` holds the right number of each outcome,
but its shots are grouped by outcome, not in the order they were taken (a PUB task keeps no per-shot memory;
use `backend.run(..., memory=True)` for that). Estimator results are Aer's `EstimatorV2`'s: exact
expectation values (`precision=0`, the default) or drawn around them with that standard deviation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from qiskit.primitives import (
    BaseEstimatorV2,
    BasePrimitiveJob,
    BaseSamplerV2,
    PrimitiveResult,
    PubResult,
    SamplerPubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import JobStatus

from vqpu_client.calls import TERMINAL_STATES
from vqpu_client.errors import IllegalTransitionError, NotAdmissibleError, WaitTimeoutError
from vqpu_client.qiskit import pubs as convert
from vqpu_client.qiskit.errors import ResultShapeError, RunOptionsError
from vqpu_client.qiskit.job import TaskProvenance, job_status
from vqpu_protocol import pubs as wire
from vqpu_protocol.api.tasks import TaskView
from vqpu_protocol.rundir import ResultDocument

if TYPE_CHECKING:
    from vqpu_client.qiskit.backend import Submission, VQPUBackend

R = TypeVar("R", bound=PubResult)


@dataclass
class SamplerOptions:
    """`default_shots`: shots per PUB when neither `run(shots=)` nor the PUB gives them (None: the backend's
    `shots` option). `seed_simulator`: the task's seed (None: the backend's option; None there too: the runner
    draws one and records it). `run_options`: backend run options for this sampler's tasks
    (`vqpu_noise_model`, `noise`, `method`, `device`, `job_tags`, ...), checked as `backend.run` checks them."""

    default_shots: int | None = None
    seed_simulator: int | None = None
    run_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EstimatorOptions:
    """`default_precision`: the standard error asked of each expectation value when neither `run(precision=)`
    nor the PUB gives one (0: exact values). `seed_simulator` and `run_options` as `SamplerOptions`'."""

    default_precision: float = 0.0
    seed_simulator: int | None = None
    run_options: dict[str, Any] = field(default_factory=dict)


OptionsT = TypeVar("OptionsT", SamplerOptions, EstimatorOptions)


def _options(kind: type[OptionsT], options: OptionsT | Mapping[str, Any] | None) -> OptionsT:
    if options is None:
        return kind()
    if isinstance(options, kind):
        return dataclasses.replace(options, run_options=dict(options.run_options))
    if not isinstance(options, Mapping):
        raise RunOptionsError(f"options must be a {kind.__name__} or a dict, not {type(options).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RunOptionsError(f"no option {', '.join(map(repr, unknown))}; the options are {', '.join(sorted(known))}")
    made = kind(**options)
    made.run_options = dict(made.run_options or {})
    return made


class VQPUPrimitiveJob(BasePrimitiveJob[PrimitiveResult[R], JobStatus], Generic[R]):  # type: ignore[misc]
    """The one task of a primitive's `run()`: `job_id()` is the task's id; `result()` waits for it."""

    def __init__(
        self,
        backend: VQPUBackend,
        task: TaskView,
        build: Callable[[ResultDocument], PrimitiveResult[R]],
    ) -> None:
        super().__init__(task.id)
        self._backend = backend
        self._client = backend.client
        self._view = task
        self._build = build
        self._document: ResultDocument | None = None
        self._result: PrimitiveResult[R] | None = None

    def backend(self) -> VQPUBackend:
        return self._backend

    def task(self) -> TaskView:
        """The task's record, re-read from the service unless already final."""
        if self._view.state not in TERMINAL_STATES:
            self._view = self._client.task(self._view.id)
        return self._view

    def status(self) -> JobStatus:
        return job_status([self.task().state])

    def done(self) -> bool:
        return bool(self.status() == JobStatus.DONE)

    def running(self) -> bool:
        return bool(self.status() == JobStatus.RUNNING)

    def cancelled(self) -> bool:
        return bool(self.status() == JobStatus.CANCELLED)

    def in_final_state(self) -> bool:
        return self.task().state in TERMINAL_STATES

    def cancel(self) -> None:
        """A queued task is cancelled at once, a running one as soon as its agent has stopped the runner."""
        task = self.task()
        if task.state in TERMINAL_STATES or task.cancel_requested:
            return
        try:
            self._view = self._client.cancel(task.id)
        except IllegalTransitionError:  # it finished in between
            self._view = self._client.task(task.id)

    def result(self, timeout: float | None = None) -> PrimitiveResult[R]:
        """Wait (at most `timeout` seconds) for the task and return its `PrimitiveResult`; a task that failed
        raises the client's `TaskFailedError`, a cancelled one `TaskCancelledError`, a timeout
        `WaitTimeoutError`."""
        if self._result is None:
            self._result = self._build(self._finished(timeout))
        return self._result

    def provenance(self, timeout: float | None = None) -> TaskProvenance:
        """What the task ran under: replay it by pinning `epoch` with `seed`."""
        p = self._finished(timeout).provenance
        return TaskProvenance(p.task_id, p.epoch, p.snapshot_sha256, p.seed)

    def _finished(self, timeout: float | None) -> ResultDocument:
        if self._document is None:
            if self._view.state not in TERMINAL_STATES:
                if timeout is not None and timeout <= 0:
                    raise WaitTimeoutError(self._view.id, timeout, self._view)
                self._view = self._client.wait(self._view.id, timeout_s=timeout)
            self._document = self._client.result_of(self._view)
        return self._document


def _submit(
    backend: VQPUBackend, document: wire.SamplerPubs | wire.EstimatorPubs, plan: Submission, shots: int | None
) -> TaskView:
    try:
        return backend.client.submit(
            backend.name,
            pubs=document,
            shots=shots,
            dialect="qasm3",
            seed=plan.seed,
            epoch=backend.pinned_epoch,
            tags=plan.tags,
            options=plan.options,
        )
    except NotAdmissibleError as exc:
        exc.add_note(
            "transpile(circuit, backend) maps a PUB's circuit onto the device's qubits, couplers and native gates "
            "(and observable.apply_layout(isa.layout) its observables)"
        )
        raise


def _plan(backend: VQPUBackend, seed: int | None, run_options: Mapping[str, Any], **more: Any) -> Submission:
    overrides = {**run_options, **more}
    if overrides.get("memory"):
        raise RunOptionsError(
            "memory=True cannot be honoured by a primitive: a PUB task returns counts per binding, not every "
            "shot in order; use backend.run(circuits, memory=True) for per-shot memory"
        )
    overrides["memory"] = False  # the backend's default does not apply to PUB tasks
    if seed is not None:
        overrides["seed_simulator"] = seed
    return backend._submission(overrides)


def _checked(doc: ResultDocument, task_id: str, kind: str, count: int) -> list[Any]:
    if doc.provenance.task_id != task_id:
        raise ResultShapeError(f"the result read for task {task_id} is task {doc.provenance.task_id}'s")
    if doc.pubs is None or doc.pubs.kind != kind or len(doc.pubs.pubs) != count:
        found = "no PUB results" if doc.pubs is None else f"{len(doc.pubs.pubs)} {doc.pubs.kind} PUB results"
        raise ResultShapeError(f"task {task_id} ran {count} {kind} PUBs and returned {found}")
    return list(doc.pubs.pubs)


def _run_metadata(doc: ResultDocument) -> dict[str, Any]:
    return {
        "version": 2,
        "task_id": doc.provenance.task_id,
        "provenance": doc.provenance.model_dump(mode="json"),
        "timings": doc.timings.model_dump(mode="json"),
    }


class VQPUSamplerV2(BaseSamplerV2):  # type: ignore[misc]
    """Qiskit's `SamplerV2` on a `VQPUBackend`: each `run(pubs, shots=)` is one task of all its PUBs.

    Circuits must be transpiled for the backend (ISA circuits), as for any hardware backend. Each register's
    `BitArray` is rebuilt from the task's counts: the shots come grouped by outcome, not in the order they
    were taken. `options`: a `SamplerOptions` or a dict of its fields.
    """

    def __init__(self, backend: VQPUBackend, *, options: SamplerOptions | Mapping[str, Any] | None = None) -> None:
        self._backend = backend
        self._options = _options(SamplerOptions, options)
        self._plan(None)  # bad options fail here, not at the first run

    @property
    def backend(self) -> VQPUBackend:
        return self._backend

    @property
    def options(self) -> SamplerOptions:
        return self._options

    def _plan(self, shots: int | None) -> Submission:
        o = self._options
        chosen = shots if shots is not None else o.default_shots
        extra = {} if chosen is None else {"shots": chosen}
        return _plan(self._backend, o.seed_simulator, o.run_options, **extra)

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> VQPUPrimitiveJob[SamplerPubResult]:
        plan = self._plan(shots)  # shots checked (1 .. 10^7) with the other options
        coerced = [SamplerPub.coerce(pub, plan.shots) for pub in pubs]
        if not coerced:
            raise RunOptionsError("the sampler was given no PUBs")
        gates = self._backend.snapshot.native_gates
        document = wire.SamplerPubs(pubs=[convert.sampler_pub(pub, gates) for pub in coerced])
        task = _submit(self._backend, document, plan, plan.shots)
        circuits = [pub.circuit for pub in coerced]

        def build(doc: ResultDocument) -> PrimitiveResult[SamplerPubResult]:
            found = _checked(doc, task.id, "sampler", len(circuits))
            results = [
                SamplerPubResult(
                    convert.bit_arrays(circuit, r),
                    metadata={"shots": r.shots, "circuit_metadata": dict(circuit.metadata or {}), "task_id": task.id},
                )
                for circuit, r in zip(circuits, found, strict=True)
            ]
            return PrimitiveResult(results, metadata=_run_metadata(doc))

        return VQPUPrimitiveJob(self._backend, task, build)


class VQPUEstimatorV2(BaseEstimatorV2):  # type: ignore[misc]
    """Qiskit's `EstimatorV2` on a `VQPUBackend`: each `run(pubs, precision=)` is one task of all its PUBs.

    Observables are on the circuit's qubits: for a transpiled circuit, `observable.apply_layout(isa.layout)`.
    Expectation values are Aer's `EstimatorV2`'s under the device's noise (a density matrix where the task's
    method is one): exact at `precision=0` (the default), else drawn from a normal distribution of that width.
    `options`: an `EstimatorOptions` or a dict of its fields.
    """

    def __init__(self, backend: VQPUBackend, *, options: EstimatorOptions | Mapping[str, Any] | None = None) -> None:
        self._backend = backend
        self._options = _options(EstimatorOptions, options)
        self._plan()

    @property
    def backend(self) -> VQPUBackend:
        return self._backend

    @property
    def options(self) -> EstimatorOptions:
        return self._options

    def _plan(self) -> Submission:
        return _plan(self._backend, self._options.seed_simulator, self._options.run_options)

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> VQPUPrimitiveJob[PubResult]:
        plan = self._plan()
        default = self._options.default_precision if precision is None else precision
        coerced = [EstimatorPub.coerce(pub, default) for pub in pubs]
        if not coerced:
            raise RunOptionsError("the estimator was given no PUBs")
        gates = self._backend.snapshot.native_gates
        document = wire.EstimatorPubs(pubs=[convert.estimator_pub(pub, gates) for pub in coerced])
        task = _submit(self._backend, document, plan, None)
        circuits = [pub.circuit for pub in coerced]

        def build(doc: ResultDocument) -> PrimitiveResult[PubResult]:
            found = _checked(doc, task.id, "estimator", len(circuits))
            provenance = doc.provenance.model_dump(mode="json")
            results = [
                PubResult(
                    convert.estimator_data(r),
                    metadata={
                        "target_precision": r.precision,
                        "circuit_metadata": dict(circuit.metadata or {}),
                        "task_id": task.id,
                        "provenance": provenance,
                    },
                )
                for circuit, r in zip(circuits, found, strict=True)
            ]
            return PrimitiveResult(results, metadata=_run_metadata(doc))

        return VQPUPrimitiveJob(self._backend, task, build)
