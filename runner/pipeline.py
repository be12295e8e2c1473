"""One run: inputs -> parse -> fit to device -> noise -> simulate -> a `vqpu.result/1` document."""

from __future__ import annotations

import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from qiskit import QuantumCircuit

from runner import __version__, circuit, simulate
from runner.errors import InvalidPayload, SimulationFailed
from runner.noise import NoiseCache, idle_relaxation
from runner.rundir import RunInputs
from runner.targets import TargetCache
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_COUNTS_CHARS, MAX_MEMORY_CHARS
from vqpu_protocol.pricing import Price, price, simulator_memory_mb
from vqpu_protocol.rundir import Provenance, ResultDocument, RunLimits, Timings, memory_chars, scheduler_job_id


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
    circuit.check_delays(parsed, snapshot)
    fitted = circuit.fit_to_device(parsed, snapshot, caches.targets.get(snapshot), seed)
    if not circuit.measures(fitted.circuit):
        raise InvalidPayload(ErrorCode.NO_MEASUREMENTS, "the circuit measures no qubit, so it has no counts to return")
    if task.options.memory:
        _check_memory_size(fitted.circuit, task.shots)
    stats = circuit.circuit_stats(fitted.circuit)
    active = stats.active_qubits
    priced = price(stats, snapshot, task.options, task.shots)
    _check_counts_size(priced, task.shots, stats.key_width)
    device = simulate.device_for(task.options.device)
    _check_memory_limit(priced, task.limits, device)
    t2 = time.perf_counter()
    noise = caches.noise.get(snapshot, active, task.options.noise_model, task.options.noise)
    idle = idle_relaxation(snapshot, stats.delayed_qubits, task.options.noise_model, task.options.noise)
    to_run = circuit.drop_idle_delays(fitted.circuit, active)
    if idle is not None:
        to_run = idle.apply(to_run)
    t3 = time.perf_counter()
    limit = task.limits.memory_bytes
    chosen = simulate.plan(
        task.options,
        device,
        len(active),
        noisy=noise.model is not None or idle is not None,
        max_memory_mb=None if limit is None else simulator_memory_mb(limit, stats.expanded_ops),
    )
    sampled = simulate.run(to_run, noise.model, chosen, task.shots, seed, memory=task.options.memory)
    t4 = time.perf_counter()

    return ResultDocument(
        counts=sampled.counts,
        memory=sampled.memory,
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
            noise_empty=noise.model is None and idle is None,
            idle_noise="thermal_relaxation" if idle is not None else "none",
            noise=task.options.noise,
            noise_channels=noise.channels,
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


def _check_memory_size(fitted: QuantumCircuit, shots: int) -> None:
    """Refuse, before simulating, a memory too big to report: never a truncated one."""
    key_width = fitted.num_clbits + max(len(fitted.cregs) - 1, 0)  # registers are space-separated
    chars = memory_chars(shots, key_width)
    if chars > MAX_MEMORY_CHARS:
        raise InvalidPayload(
            ErrorCode.INVALID_OPTIONS,
            f"options.memory: {shots} shots of {key_width}-character outcomes make {chars} characters; "
            f"the limit is {MAX_MEMORY_CHARS} (fewer shots, or no memory)",
            {"field": "options.memory", "shots": shots, "key_width": key_width, "limit": MAX_MEMORY_CHARS},
        )


def _check_counts_size(priced: Price, shots: int, key_width: int) -> None:
    """Refuse, before simulating, counts that could be too big to report (the worst case, as admission does)."""
    if priced.counts_chars > MAX_COUNTS_CHARS:
        raise InvalidPayload(
            ErrorCode.TOO_LARGE,
            f"counts: {shots} shots of {priced.clbits} classical bits can make {priced.counts_chars} characters "
            f"of counts; the limit is {MAX_COUNTS_CHARS} (fewer shots, or fewer classical bits)",
            {
                "field": "counts",
                "shots": shots,
                "clbits": priced.clbits,
                "key_width": key_width,
                "chars": priced.counts_chars,
                "limit": MAX_COUNTS_CHARS,
            },
        )


def _check_memory_limit(priced: Price, limits: RunLimits, device: str) -> None:
    """Fail at once, rather than let Aer try, a run whose priced memory is more than the site allows it:
    on a GPU, the slot's GPU memory where the site declared it, else (and on the CPU) its host memory.
    The control plane admits a task by the same rule (`vqpu_service.domain.admission.largest_slot`)."""
    on_gpu = device == "GPU" and limits.gpu_memory_bytes is not None
    allowed = limits.gpu_memory_bytes if on_gpu else limits.memory_bytes
    if allowed is not None and priced.memory_bytes > allowed:
        raise SimulationFailed(
            ErrorCode.OUT_OF_MEMORY,
            f"a {priced.method} run of {priced.active_qubits} qubits needs {priced.memory_bytes} bytes; "
            f"this site allows a run {allowed} bytes{' of GPU memory' if on_gpu else ''}",
            {
                "field": "memory",
                "method": priced.method,
                "active_qubits": priced.active_qubits,
                "memory_bytes": priced.memory_bytes,
                "limit": allowed,
            },
        )


def _aer_version() -> str | None:
    return _version("qiskit-aer-gpu") or _version("qiskit-aer")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
