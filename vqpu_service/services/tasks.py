"""Submission (admission at the door), reads with tenancy, cancel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from device_registry.admissibility import Violation
from vqpu_protocol import pricing
from vqpu_protocol.api.devices import Viability
from vqpu_protocol.api.tasks import SubmitTask
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_COUNTS_CHARS
from vqpu_protocol.pricing import Price
from vqpu_protocol.pubs import EstimatorPubs, SamplerPubs, sampled_shots
from vqpu_protocol.pubs import resolved as resolve_pubs
from vqpu_protocol.rundir import DeviceChoice, ResultDocument, RunOptions
from vqpu_service.config import Settings, env_name
from vqpu_service.domain import admission
from vqpu_service.domain.errors import Conflict, Forbidden, InvalidRequest, NotAdmissible, NotFound, PayloadTooLarge
from vqpu_service.domain.events import Event
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import NewTask, Principal, Role, Task
from vqpu_service.ports import DeviceEpoch, EventFilter, Store
from vqpu_service.services import commands
from vqpu_service.services import pubs as task_pubs
from vqpu_service.services.devices import DeviceService, Reading
from vqpu_service.services.pubs import PubsReading


@dataclass(frozen=True)
class Verdict:
    record: DeviceEpoch
    violations: list[Violation]
    price: Price | None
    refusal: InvalidRequest | None


class TaskService:
    def __init__(self, store: Store, devices: DeviceService, settings: Settings, on_work: Callable[[], None]) -> None:
        self._store = store
        self._devices = devices
        self._settings = settings
        self._on_work = on_work
        """Called, from any thread, once a task has been queued (a submit, a requeue): wakes waiting claims."""

    def submit(self, who: Principal, body: SubmitTask, idempotency_key: str | None) -> tuple[Task, bool]:
        if who.role is Role.AGENT:
            raise Forbidden("agents cannot submit tasks")
        new = self.admit(who, body, idempotency_key)
        task, created = commands.submit(self._store, new, datetime.now(UTC), self._settings.max_queued_per_owner)
        if created:
            self._on_work()
        return task, created

    def admit(self, who: Principal, body: SubmitTask, idempotency_key: str | None) -> NewTask:
        """Everything about a submission that can be refused is refused here, before anything is stored."""
        if body.pubs is not None:
            return self._admit_pubs(who, body, body.pubs, idempotency_key)
        assert body.circuit is not None and body.shots is not None  # SubmitTask: a circuit task gives both
        if len(body.circuit.encode()) > self._settings.max_circuit_bytes:
            raise PayloadTooLarge(f"the circuit is over {self._settings.max_circuit_bytes} bytes")
        self._shots_within_limit(body.shots, "shots")
        record = self._record(body)
        reading = self._devices.admission(record, body.circuit, body.dialect)
        _require_admissible(record, reading.violations, "the circuit")
        limit_s = self.runtime_limit(who, body.options)
        price = self.price(record, body, reading, limit_s)
        return self._new_task(
            who,
            body,
            idempotency_key,
            record,
            limit_s,
            price,
            circuit=body.circuit,
            shots=body.shots,
            classical_layout=reading.classical,
        )

    def _admit_pubs(
        self, who: Principal, body: SubmitTask, given: SamplerPubs | EstimatorPubs, idempotency_key: str | None
    ) -> NewTask:
        """A PUB task: every PUB checked as a circuit would be, and the whole task priced as one run."""
        size = task_pubs.source_bytes(given)
        if size > self._settings.max_circuit_bytes:
            raise PayloadTooLarge(
                f"the PUBs' circuits hold {size} bytes in all; at most {self._settings.max_circuit_bytes}"
            )
        resolved = self._resolved(given, body.shots)
        record = self._record(body)
        reading = self._devices.pubs_admission(record, resolved, body.dialect)
        _require_admissible(record, reading.violations, f"the {resolved.kind} PUBs")
        limit_s = self.runtime_limit(who, body.options)
        price = self._check_price(
            record, body.options, limit_s, self._priced_pubs(record, body.options, resolved, reading)
        )
        return self._new_task(
            who,
            body,
            idempotency_key,
            record,
            limit_s,
            price,
            circuit="",
            shots=sampled_shots(resolved, None),
            pubs=resolved.model_dump(mode="json"),
            pub_layouts=reading.layouts,
        )

    def _resolved(self, given: SamplerPubs | EstimatorPubs, shots: int | None) -> SamplerPubs | EstimatorPubs:
        """The PUBs with every shots and precision given, each PUB's shots and the total within the limit."""
        try:
            resolved = resolve_pubs(given, shots)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"field": "shots"}, code=ErrorCode.INVALID_SHOTS) from exc
        if isinstance(resolved, SamplerPubs):
            for i, pub in enumerate(resolved.pubs):
                assert pub.shots is not None  # resolved
                self._shots_within_limit(pub.shots, f"pubs[{i}].shots")
            total = sampled_shots(resolved, None)
            if total > self._settings.max_shots:
                raise InvalidRequest(
                    f"the PUBs sample {total} shots in all (each PUB's shots times its bindings); "
                    f"a task samples at most {self._settings.max_shots}",
                    {"field": "pubs", "shots": total, "max_shots": self._settings.max_shots},
                    code=ErrorCode.INVALID_SHOTS,
                )
        return resolved

    def _shots_within_limit(self, shots: int, field: str) -> None:
        if shots > self._settings.max_shots:
            raise InvalidRequest(
                f"{field} must be between 1 and {self._settings.max_shots}",
                {"field": field} if field != "shots" else None,
                code=ErrorCode.INVALID_SHOTS,
            )

    def _record(self, body: SubmitTask) -> DeviceEpoch:
        if body.epoch is None:
            return self._devices.current(body.device)
        return self._devices.epoch(body.device, body.epoch)

    def _new_task(
        self,
        who: Principal,
        body: SubmitTask,
        idempotency_key: str | None,
        record: DeviceEpoch,
        limit_s: float,
        price: Price | None,
        *,
        circuit: str,
        shots: int,
        classical_layout: list[int] | None = None,
        pubs: dict[str, Any] | None = None,
        pub_layouts: list[list[int]] | None = None,
    ) -> NewTask:
        """The admitted task: a circuit task (`circuit`, its `classical_layout`) or a PUB task (`circuit`
        "", its resolved `pubs` and their `pub_layouts`); `shots` as stored."""
        wire = body.model_dump(mode="json")
        return NewTask(
            owner=who.name,
            device_id=record.device_id,
            dialect=body.dialect,
            seed=body.seed,
            pinned_epoch=body.epoch,
            admitted_epoch=record.epoch,
            admitted_sha256=record.sha256,
            tags=list(body.tags),
            options=wire["options"] | {"max_runtime_s": limit_s},  # the limit every site enforces
            idempotency_key=idempotency_key,
            body_sha256=submission_sha256(body),
            estimate=None if price is None else price.model_dump(mode="json"),
            circuit=circuit,
            shots=shots,
            classical_layout=classical_layout,
            pubs=pubs,
            pub_layouts=pub_layouts,
        )

    def runtime_limit(self, who: Principal, options: RunOptions) -> float:
        """The task's wall-time limit: what it asks, at most its key's ceiling; the ceiling when it asks none.
        Asking more than the ceiling is refused rather than quietly lowered."""
        ceiling, name = (
            (self._settings.admin_max_runtime_s, "admin_max_runtime_s")
            if who.role is Role.ADMIN
            else (self._settings.max_runtime_s, "max_runtime_s")
        )
        if options.max_runtime_s is None:
            return ceiling
        if options.max_runtime_s > ceiling:
            raise InvalidRequest(
                f"options.max_runtime_s: {options.max_runtime_s:g} s is over this key's ceiling of {ceiling:g} s "
                f"({env_name(name)})",
                {"field": "options.max_runtime_s", "asked_s": options.max_runtime_s, "ceiling_s": ceiling},
                code=ErrorCode.INVALID_OPTIONS,
            )
        return options.max_runtime_s

    def price(self, record: DeviceEpoch, body: SubmitTask, reading: Reading, limit_s: float) -> Price | None:
        """What the task will cost, refused (TOO_LARGE, TOO_LONG) when it exceeds a bound; None for a
        circuit the pass could not size (a dialect it does not read is refused before this)."""
        assert body.shots is not None  # a circuit task's
        return self._check_price(record, body.options, limit_s, self._priced(record, body.options, body.shots, reading))

    def _check_price(
        self, record: DeviceEpoch, options: RunOptions, limit_s: float, price: Price | None
    ) -> Price | None:
        if price is not None:
            try:
                admission.check(_cost(price), self._bounds(record.device_id, options, limit_s))
            except NotAdmissible as refused:  # the refusal shows the whole price, not only the number over
                refused.detail = {**(refused.detail or {}), "estimate": price.model_dump(mode="json")}
                raise
        return price

    def viability(self, who: Principal, device_id: str, body: Viability) -> Verdict:
        """A submission's checks without a task: the violations, else the price and the limit it exceeds."""
        record = self._devices.current(device_id) if body.epoch is None else self._devices.epoch(device_id, body.epoch)
        reading = self._devices.admission(record, body.circuit, body.dialect)
        if reading.violations:
            return Verdict(record, reading.violations, None, None)
        price = self._priced(record, body.options, body.shots, reading)
        try:
            limit_s = self.runtime_limit(who, body.options)
            if price is not None:
                admission.check(_cost(price), self._bounds(device_id, body.options, limit_s))
        except InvalidRequest as refused:  # TOO_LARGE, TOO_LONG, or a wall-time limit over the ceiling
            return Verdict(record, [], price, refused)
        return Verdict(record, [], price, None)

    def _priced(self, record: DeviceEpoch, options: RunOptions, shots: int, reading: Reading) -> Price | None:
        if reading.stats is None:
            return None
        return pricing.price(reading.stats, self._devices.snapshot(record), options, shots)

    def _priced_pubs(
        self, record: DeviceEpoch, options: RunOptions, resolved: SamplerPubs | EstimatorPubs, reading: PubsReading
    ) -> Price | None:
        if reading.stats is None:
            return None
        return pricing.price_pubs(reading.stats, self._devices.snapshot(record), options, resolved)

    def _bounds(self, device_id: str, options: RunOptions, limit_s: float) -> admission.Bounds:
        cpu_only = options.device is DeviceChoice.CPU
        slots = self._store.slot_capacities(device_id)
        declared = admission.largest_slot(slots, cpu_only=cpu_only)
        gpu = not cpu_only and any(s.gpu_memory_bytes for s in slots)
        kind = "GPU memory where they have it" if gpu else "host memory"
        return admission.Bounds(
            slot_memory_bytes=self._settings.default_slot_memory_bytes if declared is None else declared,
            slot_memory_source=(
                f"declared by the agents serving the device, {kind}"
                if declared is not None
                else f"{env_name('default_slot_memory_bytes')}: no agent serving the device has declared its slots"
            ),
            max_expanded_ops=self._settings.max_expanded_ops,
            max_counts_chars=MAX_COUNTS_CHARS,
            max_runtime_s=limit_s,
        )

    def get(self, who: Principal, task_id: str) -> Task:
        """A task its reader may see: a user's own, any for an admin. An agent reads none here: what it
        needs of a task comes with its claim, and a 404 does not tell a stolen agent key what exists."""
        if who.role is Role.AGENT:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
        task = self._store.get_task(task_id)
        if who.role is Role.USER and task.owner != who.name:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})  # do not reveal others' tasks
        return task

    def list_tasks(
        self, who: Principal, state: TaskState | None, device: str | None, limit: int, after: int | None
    ) -> list[Task]:
        owner = readable_owner(who)
        return self._store.list_tasks(owner=owner, state=state, device_id=device, limit=limit, after_seq=after)

    def result(self, who: Principal, task_id: str) -> ResultDocument:
        task = self.get(who, task_id)
        if task.state is not TaskState.COMPLETED or task.result is None:
            raise Conflict(
                f"task {task_id} is {task.state}; a result exists once it is COMPLETED",
                {"state": str(task.state), "error": task.error},
                code=ErrorCode.RESULT_NOT_READY if not task.state.terminal else ErrorCode.NO_RESULT,
            )
        return ResultDocument.model_validate(task.result)

    def cancel(self, who: Principal, task_id: str) -> Task:
        if who.role is Role.AGENT:
            raise Forbidden("agents report cancellation through /v1/agent/tasks/{id}/cancelled")
        self.get(who, task_id)
        return commands.cancel(self._store, task_id, who.name, datetime.now(UTC))

    def events(self, who: Principal, task_id: str) -> list[Event]:
        """A task's events, oldest first, to whoever may read the task."""
        self.get(who, task_id)  # tenancy
        return self._store.events_after(0, EventFilter(task_id=task_id), MAX_TASK_EVENTS)

    def requeue(self, who: Principal, task_id: str, reason: str) -> Task:
        """Explicit recovery: RUNNING -> QUEUED, fencing the owner's token (admins only)."""
        _admin_only(who)
        task = commands.requeue(self._store, task_id, who.name, reason, datetime.now(UTC))
        self._on_work()
        return task

    def force_fail(self, who: Principal, task_id: str, reason: str) -> Task:
        _admin_only(who)
        return commands.force_fail(self._store, task_id, who.name, reason, datetime.now(UTC))


MAX_TASK_EVENTS = 10_000
"""The most events one task's event list returns: a task has a handful; a report-spamming agent's is bounded."""


def _admin_only(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden(f"this needs an admin key; {who.name} is a {who.role}")


def readable_owner(who: Principal) -> str | None:
    """Whose tasks a collection read (task list, event stream, queue check) shows: a user's own, every
    tenant's to an admin; an agent is refused (403): it reads only the tasks it claimed, through its claims."""
    if who.role is Role.AGENT:
        raise Forbidden("an agent key reads no task collection: its tasks come with its claims")
    return who.name if who.role is Role.USER else None


def submission_sha256(body: SubmitTask) -> str:
    """What an idempotency key's repeat must match: the body with every default left out, so that a
    field spelled out at its default is the same submission as one omitted, and a field a later
    release adds with a default does not turn a retry across the upgrade into a conflict."""
    canonical = body.model_dump(mode="json", exclude_defaults=True)
    if body.pubs is not None:  # the kind is its default in either document: named, so that the two never meet
        canonical["pubs"]["kind"] = body.pubs.kind
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _require_admissible(record: DeviceEpoch, violations: list[Violation], what: str) -> None:
    if violations:
        raise NotAdmissible(
            f"{what} cannot run on {record.device_id} epoch {record.epoch}: {violations[0].message}"
            + (f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""),
            {"device_id": record.device_id, "epoch": record.epoch, "violations": [v.to_dict() for v in violations]},
        )


def _cost(price: Price) -> admission.Cost:
    return admission.Cost(
        method=price.method,
        active_qubits=price.active_qubits,
        memory_bytes=price.memory_bytes,
        expanded_ops=price.expanded_ops,
        counts_chars=price.counts_chars,
        estimated_runtime_s=price.estimated_runtime_s,
    )
