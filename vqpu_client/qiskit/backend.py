"""`VQPUBackend`: one device of the service as a Qiskit backend that runs circuits there.

Its Target is `device_registry.qiskit_target.target_from_snapshot` of the device's snapshot, the same
pure function the runner fits circuits with, so `transpile(circuit, backend)` lands on the real
coupling map and native gates. `run()` submits one circuit as one task and several as one PUB task
(several when one task could not hold them all) and returns a `VQPUJob`.

A backend from `get_backend(name)` describes the epoch current when it was made, and its tasks bind
at claim to the epoch current then (a newer calibration, if an operator published one meanwhile). A
backend pinned to an epoch (`get_backend(name, epoch=3)`) describes that epoch and pins every task to
it: a replay against that calibration.

Run options: the service's own (`shots`, `seed_simulator`, `memory`, `vqpu_noise_model`, `noise`, `method`,
`device`) and the standard IBM/Aer names tools pass to every backend (`run_options.py`), accepted where
harmless and refused where not. A copy (`copy.deepcopy`) shares its provider's connection; a pickle
carries the provider's recipe and re-opens it lazily where it is loaded (provider.py).
"""

from __future__ import annotations

import copy
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.providers import Options

from device_registry.qiskit_backend import SnapshotBackend
from device_registry.snapshot import Snapshot
from vqpu_client.errors import IllegalTransitionError, NotAdmissibleError, VQPUError
from vqpu_client.qiskit import run_options
from vqpu_client.qiskit.circuits import to_openqasm
from vqpu_client.qiskit.configuration import BackendConfiguration, configuration_of
from vqpu_client.qiskit.errors import RunOptionsError
from vqpu_client.qiskit.job import VQPUJob
from vqpu_protocol.api.tasks import TaskView
from vqpu_protocol.limits import MAX_MEMORY_CHARS, MAX_MEMORY_SHOTS, MAX_SEED, MAX_SHOTS
from vqpu_protocol.pubs import MAX_PUBS, SamplerPub, SamplerPubs
from vqpu_protocol.rundir import RunOptions, memory_problem

if TYPE_CHECKING:
    from vqpu_client.client import Client
    from vqpu_client.qiskit.provider import VQPUProvider

SERVICE_OPTIONS = {
    "memory": "memory",
    "vqpu_noise_model": "noise_model",
    "noise": "noise",
    "method": "method",
    "device": "device",
}
"""Backend options that are fields of the service's RunOptions (validated by it: one definition), and their
field names there. `noise_model` is Aer's and IBM's name for a NoiseModel object, so the service's choice of
model travels as `vqpu_noise_model` here and as the REST field `noise_model`."""
_OPTION_OF_FIELD = {field: option for option, field in SERVICE_OPTIONS.items()}
PUB_TASK_BYTES = 3 * 1024 * 1024
"""Most OpenQASM source one task of a multi-circuit run carries: the service takes request bodies of 4 MiB
by default, and a run whose circuits are larger in all becomes several PUB tasks."""


@dataclass(frozen=True)
class Submission:
    """What every task of one `run()` is submitted with; task i gets seed `seed + i` (as Aer varies its
    per-circuit seeds), so equal circuits in one run are not sampled identically."""

    shots: int
    seed: int | None
    options: RunOptions
    tags: tuple[str, ...] = ()

    def seed_of(self, index: int) -> int | None:
        return None if self.seed is None else (self.seed + index) % (MAX_SEED + 1)


class VQPUBackend(SnapshotBackend):
    """The device of `snapshot` on the service `provider` talks to; `pinned`: every task pins its epoch."""

    def __init__(self, provider: VQPUProvider, snapshot: Snapshot, *, pinned: bool = False) -> None:
        super().__init__(snapshot, warn_defects=False)  # the provider warns, once, at its caller's line
        self._provider = provider
        self._pinned_epoch = snapshot.epoch if pinned else None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=1024,
            seed_simulator=None,
            memory=False,
            vqpu_noise_model="paper",
            noise=None,
            method="auto",
            device="auto",
            **run_options.DEFAULTS,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> VQPUBackend:
        """A backend with its own options on the same provider: a copy shares the connection, as copies of
        IBM's backends share their service (qiskit-experiments copies the backend of every run)."""
        return _restored(
            self._provider,
            self.snapshot,
            self._pinned_epoch is not None,
            copy.deepcopy(dict(self.options.items()), memo),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its provider (a recipe that re-opens the connection where it is loaded: provider.py),
        snapshot, pin and options; the Target is rebuilt from the snapshot."""
        return (_restored, (self._provider, self.snapshot, self._pinned_epoch is not None, dict(self.options.items())))

    def configuration(self) -> BackendConfiguration:
        """The BackendV1-style description that tools such as mthree read (n_qubits, basis_gates, coupling_map,
        max_shots, dt, ...), derived from the Target."""
        return configuration_of(self.snapshot, self.target, self.backend_version)

    @property
    def client(self) -> Client:
        return self._provider.client

    @property
    def epoch(self) -> int:
        """The epoch this backend's Target describes."""
        return int(self.snapshot.epoch)

    @property
    def pinned_epoch(self) -> int | None:
        """The epoch every task of this backend is pinned to, or None (tasks bind at claim)."""
        return self._pinned_epoch

    def set_options(self, **fields: Any) -> None:
        """Change the defaults of later `run()` calls; refused, as `run()` would refuse them, when invalid."""
        self._submission(fields)
        super().set_options(**fields)

    def _submission(self, overrides: Mapping[str, Any]) -> Submission:
        """The backend's options with `overrides`, checked: unknown names and bad values raise `RunOptionsError`."""
        unknown = sorted(set(overrides) - set(self.options))
        if unknown:
            raise RunOptionsError(
                f"{self.name} has no run option {', '.join(map(repr, unknown))}; its options are "
                f"{', '.join(sorted(self.options))}"
            )
        merged = {**dict(self.options.items()), **overrides}
        shots = _integer(merged["shots"], 1, MAX_SHOTS, "shots")
        seed = (
            None
            if merged["seed_simulator"] is None
            else _integer(merged["seed_simulator"], 0, MAX_SEED, "seed_simulator")
        )
        tags = run_options.check(merged, self.name)
        # noise=None is "the calibrated model unchanged"; any other None is a value RunOptions refuses.
        fields = {
            field: merged[option]
            for option, field in SERVICE_OPTIONS.items()
            if not (option == "noise" and merged[option] is None)
        }
        try:
            options = RunOptions.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(f"{_option_path(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
            raise RunOptionsError(f"invalid run options for {self.name}: {problems}") from None
        problem = memory_problem(options, shots)
        if problem is not None:
            raise RunOptionsError(problem)
        return Submission(shots=shots, seed=seed, options=options, tags=tags)

    def run(self, run_input: QuantumCircuit | list[QuantumCircuit], **options: Any) -> VQPUJob:
        """Submit the circuits (all checked first, none sent if one is refused here) and return the job.

        One circuit is one circuit task. Several circuits are ONE task: a sampler PUB task with one
        parameterless PUB per circuit and the run's `shots` (split into several such tasks only when their
        sources pass `PUB_TASK_BYTES`, or `MAX_PUBS` circuits); the `Result` has one experiment per circuit,
        laid out as a circuit task's. With `memory=True` the PUB task returns every shot of every circuit
        in order (more tasks when a run's shots pass what one task's memory holds: MAX_MEMORY_SHOTS shots,
        MAX_MEMORY_CHARS characters). Circuit i of a run gets seed `seed_simulator + i` either way (a PUB task's
        seed is its first circuit's, and the runner seeds PUB k with it + k), so a run gives the same counts
        as one task per circuit would.

        A circuit the service refuses at submit raises `NotAdmissibleError` (or another `APIError`);
        the tasks this call had already submitted are cancelled first, so nothing runs unseen.
        """
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        if not circuits:
            raise RunOptionsError("backend.run was given no circuits")
        plan = self._submission(options)
        sources = [to_openqasm(circuit, self.snapshot.native_gates) for circuit in circuits]
        tasks: list[TaskView] = []
        slots: list[tuple[str, int | None]] = []
        widths = [c.num_clbits + max(len(c.cregs) - 1, 0) for c in circuits] if plan.options.memory else None
        for batch in batches(sources, shots=plan.shots, memory_widths=widths):
            first = batch[0]
            try:
                if len(batch) == 1:
                    task = self.client.submit(
                        self.name,
                        sources[first],
                        shots=plan.shots,
                        dialect="qasm3",
                        seed=plan.seed_of(first),
                        epoch=self._pinned_epoch,
                        tags=plan.tags,
                        options=plan.options,
                    )
                else:
                    task = self.client.submit(
                        self.name,
                        pubs=SamplerPubs(pubs=[SamplerPub(circuit=sources[i]) for i in batch]),
                        shots=plan.shots,
                        dialect="qasm3",
                        seed=plan.seed_of(first),
                        epoch=self._pinned_epoch,
                        tags=plan.tags,
                        options=plan.options,
                    )
            except VQPUError as exc:
                self._withdraw(tasks, exc)
                if not isinstance(exc, NotAdmissibleError):
                    raise
                raise _explained(exc, [(i, circuits[i]) for i in batch]) from exc
            tasks.append(task)
            slots += [(task.id, None)] if len(batch) == 1 else [(task.id, k) for k in range(len(batch))]
        return VQPUJob(self, tasks, circuits, memory=plan.options.memory, slots=slots)

    def _withdraw(self, tasks: list[TaskView], exc: VQPUError) -> None:
        """Cancel the tasks a failing run had submitted, and say so on the error being raised."""
        missed = []
        for task in tasks:
            try:
                self.client.cancel(task.id)
            except IllegalTransitionError:  # it finished already
                pass
            except VQPUError:  # the error being raised matters more; it names what is left running
                missed.append(task.id)
        if missed:
            exc.add_note(f"tasks {', '.join(missed)} of this run were submitted and could not be cancelled")
        elif tasks:
            exc.add_note(f"the task(s) this run had already submitted were cancelled: {', '.join(t.id for t in tasks)}")


def _restored(provider: VQPUProvider, snapshot: Snapshot, pinned: bool, options: dict[str, Any]) -> VQPUBackend:
    backend = VQPUBackend(provider, snapshot, pinned=pinned)
    backend.options.update_options(**options)
    return backend


def _option_path(loc: tuple[int | str, ...]) -> str:
    """Where a RunOptions error is, named as the backend option (`vqpu_noise_model`, not `noise_model`)."""
    if not loc:
        return "run options"
    head, *rest = loc
    return ".".join([_OPTION_OF_FIELD.get(str(head), str(head)), *map(str, rest)])


def _integer(value: Any, low: int, high: int, name: str) -> int:
    """An integer option (numpy's integers included, as primitives pass them), within bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
        raise RunOptionsError(f"{name} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


def batches(sources: list[str], *, shots: int = 1, memory_widths: list[int] | None = None) -> list[list[int]]:
    """The circuits of one run, by index, grouped into tasks: one circuit alone; else as few PUB tasks as
    `PUB_TASK_BYTES` and `MAX_PUBS` allow, in order, and with per-shot memory (`memory_widths`: each
    circuit's outcome width) as few as hold at most MAX_MEMORY_SHOTS shots and MAX_MEMORY_CHARS characters
    of memory each."""
    if len(sources) == 1:
        return [[0]]
    found: list[list[int]] = []
    current: list[int] = []
    size = chars = 0
    for i, source in enumerate(sources):
        n = len(source.encode())
        width = 0 if memory_widths is None else shots * memory_widths[i]
        full = size + n > PUB_TASK_BYTES or len(current) >= MAX_PUBS
        if memory_widths is not None:
            full = full or (len(current) + 1) * shots > MAX_MEMORY_SHOTS or chars + width > MAX_MEMORY_CHARS
        if current and full:
            found.append(current)
            current, size, chars = [], 0, 0
        current.append(i)
        size += n
        chars += width
    found.append(current)
    return found


def _explained(exc: NotAdmissibleError, circuits: list[tuple[int, QuantumCircuit]]) -> NotAdmissibleError:
    """The same error, saying which circuit(s) of the run (a PUB task's violations name their PUB:
    `pubs[3]: ...`) and what to do about it."""
    named = [circuits[k] for k in _refused_pubs(exc.detail) if k < len(circuits)] if len(circuits) > 1 else circuits
    if named:
        which = ", ".join(f"circuit {index} ({circuit.name!r})" for index, circuit in named)
    else:
        which = f"one of circuits {circuits[0][0]}..{circuits[-1][0]} (sent as one task of {len(circuits)} PUBs)"
    message = (
        f"{which}: {exc.message}. transpile(circuit, backend) maps a circuit "
        "onto the device's qubits, couplers and native gates"
    )
    explained = NotAdmissibleError(
        exc.code, message, status=exc.status, detail=exc.detail, correlation_id=exc.correlation_id
    )
    for note in getattr(exc, "__notes__", []):
        explained.add_note(note)
    return explained


_PUB_NAMED = re.compile(r"\Apubs\[([0-9]+)\]")


def _refused_pubs(detail: Any) -> list[int]:
    """The PUBs a refusal's violations name (`pubs[3]: ...`, as admission writes them), in order, each once."""
    violations = detail.get("violations") if isinstance(detail, dict) else None
    found: list[int] = []
    for violation in violations if isinstance(violations, list) else []:
        message = violation.get("message") if isinstance(violation, dict) else None
        named = _PUB_NAMED.match(message) if isinstance(message, str) else None
        if named is not None and int(named.group(1)) not in found:
            found.append(int(named.group(1)))
    return sorted(found)
