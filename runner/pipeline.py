"""One run: inputs -> parse -> fit to device -> noise -> simulate -> a `vqpu.result/1` document."""

from __future__ import annotations

import dataclasses
import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from qiskit import QuantumCircuit

from runner import __version__, circuit, pubs, simulate
from runner.errors import InvalidPayload, SimulationFailed
from runner.noise import NoiseCache, idle_relaxation
from runner.rundir import RunInputs, SnapshotCache
from runner.targets import TargetCache
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_COUNTS_CHARS, MAX_MEMORY_CHARS
from vqpu_protocol.pricing import Price, price, price_pubs, runtime_terms, simulator_memory_mb
from vqpu_protocol.pubs import (
    EstimatorPub,
    EstimatorPubResult,
    EstimatorPubResults,
    EstimatorPubs,
    SamplerPub,
    SamplerPubResult,
    SamplerPubResults,
    SamplerPubs,
)
from vqpu_protocol.rundir import (
    SNAPSHOT_FILE,
    Provenance,
    ResultDocument,
    RunLimits,
    Timings,
    memory_chars,
    scheduler_job_id,
)


def prime() -> None:
    """What a warm runner does once before it forks its runs (agent.warm.zygote): parse once
    (`circuit.prime()`), and read the package versions every result's provenance names (importlib.metadata
    reads them from disk, some milliseconds per run otherwise). Pure Python, no threads: safe before a fork."""
    circuit.prime()
    _version("qiskit")
    _aer_version()


@dataclass
class Caches:
    """What a runner process keeps between runs: parsed snapshots, built Targets and noise models, by snapshot
    identity."""

    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    targets: TargetCache = field(default_factory=TargetCache)
    noise: NoiseCache = field(default_factory=NoiseCache)


PROCESS = Caches()
"""A runner process's own caches (`runner.cli.process_main`): empty in a fresh `python -m runner`; in a child of
the warm runner, what its parent `prepare`d before the fork."""


def prepare(run_dir: Path) -> bool:
    """What a warm runner does for each run just before it forks it (agent.warm.zygote): the run's snapshot
    parsed, hashed and turned into a Target in this process's caches (`PROCESS`), so that the child inherits
    them and no later run on the same calibration epoch builds them again. Only the snapshot is read, which
    is the site's calibration data, never the tenant's task. Pure Python, no threads: safe before a fork.
    Returns whether anything was built (False: all of it was cached already). A snapshot that cannot be read
    or used raises the runner's error; the run itself then meets and reports the same error."""
    snapshot, digest, parsed_before = PROCESS.snapshots.load(run_dir / SNAPSHOT_FILE)
    built = digest not in PROCESS.targets
    PROCESS.targets.get(snapshot, digest=digest)
    return built or not parsed_before


def execute(inputs: RunInputs, caches: Caches, started: float | None = None) -> ResultDocument:
    started = time.perf_counter() if started is None else started
    task, snapshot = inputs.task, inputs.snapshot
    seed = task.seed if task.seed is not None else secrets.randbits(63)
    if task.pubs is not None:
        return _execute_pubs(inputs, caches, started, seed, task.pubs)
    assert task.circuit is not None  # a task holds a circuit or PUBs (TaskDocument)

    t0 = time.perf_counter()
    parsed = circuit.parse(task.circuit, task.dialect, snapshot)
    t1 = time.perf_counter()
    circuit.check_delays(parsed, snapshot)
    fitted = circuit.fit_to_device(parsed, snapshot, caches.targets.get(snapshot, digest=inputs.snapshot_sha256), seed)
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
    noise = caches.noise.get(
        snapshot, active, task.options.noise_model, task.options.noise, digest=inputs.snapshot_sha256
    )
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
        provenance=_provenance(
            inputs,
            seed,
            noise_empty=noise.model is None and idle is None,
            idle=idle is not None,
            channels=noise.channels,
            cache_hit=noise.cache_hit,
            chosen=chosen,
            transpile=fitted.transpile,
            active=active,
        ),
    )


def _execute_pubs(
    inputs: RunInputs, caches: Caches, started: float, seed: int, task_pubs: SamplerPubs | EstimatorPubs
) -> ResultDocument:
    """A PUB task: every PUB prepared and the whole task priced and checked before any is simulated."""
    task, snapshot, options = inputs.task, inputs.snapshot, inputs.task.options
    items: list[SamplerPub | EstimatorPub] = list(task_pubs.pubs)
    t0 = time.perf_counter()
    target = caches.targets.get(snapshot, digest=inputs.snapshot_sha256)
    prepared = [pubs.prepare(i, pub, task.dialect, snapshot, target, seed) for i, pub in enumerate(items)]
    t1 = time.perf_counter()
    priced = price_pubs([p.stats for p in prepared], snapshot, options, task_pubs)
    _check_pub_counts_size(priced)
    if options.memory:
        _check_pub_memory_size(items, prepared)
    device = simulate.device_for(options.device)
    _check_memory_limit(priced, task.limits, device)
    limit = task.limits.memory_bytes
    max_memory_mb = None if limit is None else simulator_memory_mb(limit, priced.expanded_ops)
    union = frozenset().union(*(p.active for p in prepared))
    overall = caches.noise.get(snapshot, union, options.noise_model, options.noise, digest=inputs.snapshot_sha256)
    t2 = time.perf_counter()
    noise_s = 0.0
    results: list[SamplerPubResult | EstimatorPubResult] = []
    plans: list[simulate.Plan] = []
    hits: list[bool] = [overall.cache_hit]
    any_idle = False
    for i, (pub, ready) in enumerate(zip(items, prepared, strict=True)):
        n0 = time.perf_counter()
        idle = idle_relaxation(snapshot, ready.stats.delayed_qubits, options.noise_model, options.noise)
        any_idle = any_idle or idle is not None
        to_run = circuit.drop_idle_delays(ready.circuit, ready.active)
        if idle is not None:
            to_run = idle.apply(to_run)
        layout: tuple[int, ...] | None = None
        if isinstance(pub, EstimatorPub):
            to_run, layout = circuit.compact(to_run, ready.active or frozenset({0}))
        noise = caches.noise.get(
            snapshot, ready.active, options.noise_model, options.noise, layout, digest=inputs.snapshot_sha256
        )
        hits.append(noise.cache_hit)
        noisy = noise.model is not None or idle is not None
        chosen = simulate.plan(options, device, len(ready.active), noisy=noisy, max_memory_mb=max_memory_mb)
        plans.append(chosen)
        noise_s += time.perf_counter() - n0
        with pubs.naming(i):
            if isinstance(pub, SamplerPub):
                seeded = pubs.pub_seed(seed, i)
                results.append(pubs.sample(ready, to_run, pub, noise.model, chosen, seeded, memory=options.memory))
            else:
                assert layout is not None
                stats = circuit.circuit_stats(ready.circuit, ready.active)
                # Each shot its own trajectory (Aer averages the saved values over them): gate noise on a
                # statevector, a dynamic circuit, or a measurement whose outcome each shot samples.
                trajectories = runtime_terms(stats, snapshot, options, 1).per_shot or circuit.measures(ready.circuit)
                if trajectories:
                    averaged = f"values averaged over {pubs.TRAJECTORIES} trajectories (Aer's shots)"
                    plans[-1] = chosen = dataclasses.replace(chosen, reason=f"{chosen.reason}; {averaged}")
                results.append(
                    pubs.estimate(
                        ready,
                        to_run,
                        layout,
                        pub,
                        noise.model,
                        chosen,
                        pubs.pub_seed(seed, i),
                        trajectories=trajectories,
                    )
                )
    t4 = time.perf_counter()
    # Reported as the price reports it: the method of the PUB with the largest state (the price's method).
    largest = max(range(len(plans)), key=lambda i: (plans[i].method == priced.method, len(prepared[i].active), -i))
    chosen = plans[largest]
    methods = {p.method for p in plans}
    if len(methods) > 1:
        per_pub = ", ".join(f"pubs[{i}] {p.method}" for i, p in enumerate(plans))
        chosen = dataclasses.replace(chosen, reason=f"{chosen.reason}; per PUB: {per_pub}")
    results_doc: SamplerPubResults | EstimatorPubResults = (
        SamplerPubResults(pubs=[r for r in results if isinstance(r, SamplerPubResult)])
        if isinstance(task_pubs, SamplerPubs)
        else EstimatorPubResults(pubs=[r for r in results if isinstance(r, EstimatorPubResult)])
    )
    return ResultDocument(
        shots=task.shots,
        pubs=results_doc,
        timings=Timings(
            parse_s=t1 - t0,
            transpile_s=t2 - t1,
            noise_s=noise_s,
            simulate_s=t4 - t2 - noise_s,
            total_s=t4 - started,
        ),
        provenance=_provenance(
            inputs,
            seed,
            noise_empty=overall.model is None and not any_idle,
            idle=any_idle,
            channels=overall.channels,
            cache_hit=all(hits),
            chosen=chosen,
            transpile="basis-translation" if any(p.transpile != "native" for p in prepared) else "native",
            active=union,
        ),
    )


def _provenance(
    inputs: RunInputs,
    seed: int,
    *,
    noise_empty: bool,
    idle: bool,
    channels: int,
    cache_hit: bool,
    chosen: simulate.Plan,
    transpile: Literal["native", "basis-translation"],
    active: frozenset[int],
) -> Provenance:
    task, snapshot = inputs.task, inputs.snapshot
    return Provenance(
        task_id=task.task_id,
        attempt=task.attempt,
        device_id=snapshot.device_id,
        epoch=snapshot.epoch,
        snapshot_sha256=task.snapshot_sha256,
        seed=seed,
        seed_source="task" if task.seed is not None else "runner",
        noise_model=task.options.noise_model,
        noise_empty=noise_empty,
        idle_noise="thermal_relaxation" if idle else "none",
        noise=task.options.noise,
        noise_channels=channels,
        noise_cache="hit" if cache_hit else "miss",
        method=chosen.method,
        device=chosen.device,
        method_reason=chosen.reason,
        simulator_options=chosen.options,
        transpile=transpile,
        active_qubits=sorted(active),
        dialect=task.dialect,
        runner=__version__,
        qiskit=_version("qiskit"),
        qiskit_aer=_aer_version(),
        python=platform.python_version(),
        hostname=platform.node(),
        scheduler_job_id=scheduler_job_id(os.environ),
    )


def _check_pub_counts_size(priced: Price) -> None:
    """Refuse, before simulating, PUB counts that could be too big to report (every binding's worst)."""
    if priced.counts_chars > MAX_COUNTS_CHARS:
        raise InvalidPayload(
            ErrorCode.TOO_LARGE,
            f"counts: the PUBs' shots and classical bits can make {priced.counts_chars} characters of counts in "
            f"all; the limit is {MAX_COUNTS_CHARS} (fewer shots or bindings, or fewer classical bits)",
            {"field": "counts", "clbits": priced.clbits, "chars": priced.counts_chars, "limit": MAX_COUNTS_CHARS},
        )


def _check_pub_memory_size(items: list[SamplerPub | EstimatorPub], prepared: list[pubs.Prepared]) -> None:
    """Refuse, before simulating, the PUBs' per-shot memory when it is too big to report."""
    chars = sum(
        memory_chars((pub.shots or 0) * pub.bindings, ready.stats.key_width)
        for pub, ready in zip(items, prepared, strict=True)
        if isinstance(pub, SamplerPub)
    )
    if chars > MAX_MEMORY_CHARS:
        raise InvalidPayload(
            ErrorCode.INVALID_OPTIONS,
            f"options.memory: the PUBs' shots make {chars} characters of outcomes; the limit is "
            f"{MAX_MEMORY_CHARS} (fewer shots or bindings, or no memory)",
            {"field": "options.memory", "chars": chars, "limit": MAX_MEMORY_CHARS},
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


@cache
def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
