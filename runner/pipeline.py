"""One run: inputs -> parse -> fit to device -> noise -> simulate -> a `vqpu.result/1` document."""

from __future__ import annotations

import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from runner import __version__, circuit, simulate
from runner.errors import InvalidPayload
from runner.noise import NoiseCache
from runner.rundir import RunInputs
from runner.targets import TargetCache
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import Provenance, ResultDocument, Timings, scheduler_job_id


@dataclass
class Caches:
    """What a runner process keeps between runs: built Targets and noise models, by snapshot identity."""

    targets: TargetCache = field(default_factory=TargetCache)
    noise: NoiseCache = field(default_factory=NoiseCache)


def execute(inputs: RunInputs, caches: Caches, started: float | None = None) -> ResultDocument:
    started = time.perf_counter() if started is None else started
    task, snapshot = inputs.task, inputs.snapshot
    seed = task.seed if task.seed is not None else secrets.randbits(63)

    t0 = time.perf_counter()
    parsed = circuit.parse(task.circuit, task.dialect, snapshot)
    t1 = time.perf_counter()
    fitted = circuit.fit_to_device(parsed, snapshot, caches.targets.get(snapshot), seed)
    if not any(inst.operation.name == "measure" for inst in fitted.circuit.data):
        raise InvalidPayload(ErrorCode.NO_MEASUREMENTS, "the circuit measures no qubit, so it has no counts to return")
    active = circuit.active_qubits(fitted.circuit)
    t2 = time.perf_counter()
    noise = caches.noise.get(snapshot, active, task.options.noise_model)
    t3 = time.perf_counter()
    chosen = simulate.plan(task.options, len(active), noisy=noise.model is not None)
    counts = simulate.run(fitted.circuit, noise.model, chosen, task.shots, seed)
    t4 = time.perf_counter()

    return ResultDocument(
        counts=counts,
        shots=task.shots,
        timings=Timings(
            parse_s=t1 - t0, transpile_s=t2 - t1, noise_s=t3 - t2, simulate_s=t4 - t3, total_s=t4 - started
        ),
        provenance=Provenance(
            task_id=task.task_id,
            attempt=task.attempt,
            device_id=snapshot.device_id,
            epoch=snapshot.epoch,
            snapshot_sha256=task.snapshot_sha256,
            seed=seed,
            seed_source="task" if task.seed is not None else "runner",
            noise_model=task.options.noise_model,
            noise_empty=noise.model is None,
            noise_cache="hit" if noise.cache_hit else "miss",
            method=chosen.method,
            device=chosen.device,
            method_reason=chosen.reason,
            simulator_options=chosen.options,
            transpile=fitted.transpile,
            active_qubits=sorted(active),
            dialect=task.dialect,
            runner=__version__,
            qiskit=_version("qiskit"),
            qiskit_aer=_aer_version(),
            python=platform.python_version(),
            hostname=platform.node(),
            scheduler_job_id=scheduler_job_id(os.environ),
        ),
    )


def _aer_version() -> str | None:
    return _version("qiskit-aer-gpu") or _version("qiskit-aer")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
