"""The runner bounds a run before simulating it: counts that could be too big to report, a state bigger
than the site allows, and Aer's own memory limit and precision set from the task."""

from __future__ import annotations

from typing import Any

import pytest

from device_registry import Snapshot
from runner import pipeline, simulate
from runner.errors import InvalidPayload, SimulationFailed
from runner.pipeline import Caches
from runner.rundir import RunInputs
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_COUNTS_CHARS
from vqpu_protocol.pricing import RUNNER_BYTES
from vqpu_protocol.rundir import RunOptions, TaskDocument


def _inputs(source: str, snapshot: Snapshot, shots: int, **fields: Any) -> RunInputs:
    task = TaskDocument.model_validate(
        {
            "task_id": "t",
            "circuit": source,
            "dialect": "qasm2",
            "shots": shots,
            "seed": 7,
            "snapshot_sha256": snapshot.sha256(),
            **fields,
        }
    )
    return RunInputs(task=task, snapshot=snapshot)


def _whole_register(n: int) -> str:
    return f"OPENQASM 2.0;\nqreg q[{n}];\ncreg c[{n}];\nsx q;\nmeasure q -> c;\n"


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run was simulated")

    monkeypatch.setattr(simulate, "run", refuse)


@pytest.mark.usefixtures("no_simulation")
def test_counts_that_could_exceed_the_limit_are_refused_before_simulating(fez: Snapshot) -> None:
    inputs = _inputs(_whole_register(156), fez, 100_000, options={"method": "matrix_product_state"})
    with pytest.raises(InvalidPayload) as refused:
        pipeline.execute(inputs, Caches())
    assert refused.value.code is ErrorCode.TOO_LARGE
    assert refused.value.detail["field"] == "counts"
    assert refused.value.detail["limit"] == MAX_COUNTS_CHARS
    assert (refused.value.detail["shots"], refused.value.detail["clbits"]) == (100_000, 156)
    assert str(MAX_COUNTS_CHARS) in refused.value.message


def test_counts_within_the_limit_run(fez_ideal: Snapshot) -> None:
    shots = MAX_COUNTS_CHARS // (20 + 12)  # exactly at the limit: one 20-bit key per shot
    result = pipeline.execute(_inputs(_whole_register(20), fez_ideal, shots), Caches())
    assert sum(result.counts.values()) == shots


@pytest.mark.usefixtures("no_simulation")
def test_a_state_bigger_than_the_site_allows_fails_out_of_memory_at_once(fez_ideal: Snapshot) -> None:
    limit = RUNNER_BYTES + 2**30  # a 1 GiB state allowance; 30 qubits need 16 GiB
    inputs = _inputs(_whole_register(30), fez_ideal, 10, limits={"memory_bytes": limit})
    with pytest.raises(SimulationFailed) as failed:
        pipeline.execute(inputs, Caches())
    assert failed.value.code is ErrorCode.OUT_OF_MEMORY
    assert failed.value.detail["limit"] == limit
    assert failed.value.detail["memory_bytes"] > 16 * 2**30
    assert str(limit) in failed.value.message and str(failed.value.detail["memory_bytes"]) in failed.value.message


GPU_SLOT = {"memory_bytes": RUNNER_BYTES + 2**30, "gpu_memory_bytes": 32 * 2**30}
"""A slot with 1 GiB of host memory for the state and a 32 GiB GPU."""


@pytest.mark.usefixtures("no_simulation")
def test_a_cpu_run_on_a_gpu_slot_is_held_to_the_slots_host_memory(fez_ideal: Snapshot) -> None:
    inputs = _inputs(_whole_register(30), fez_ideal, 10, options={"device": "CPU"}, limits=GPU_SLOT)
    with pytest.raises(SimulationFailed) as failed:
        pipeline.execute(inputs, Caches())
    assert failed.value.code is ErrorCode.OUT_OF_MEMORY
    assert failed.value.detail["limit"] == GPU_SLOT["memory_bytes"] and "GPU" not in failed.value.message


@pytest.mark.usefixtures("no_simulation")
def test_a_gpu_run_is_held_to_the_slots_gpu_memory(fez_ideal: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU on the machines the suite runs on: the node is told it has one, and the run stops where
    # Aer would start (the no_simulation fixture), past the memory check.
    monkeypatch.setattr(simulate, "gpu_available", lambda: True)
    fits = _inputs(_whole_register(30), fez_ideal, 10, options={"device": "GPU"}, limits=GPU_SLOT)
    with pytest.raises(AssertionError, match="the run was simulated"):
        pipeline.execute(fits, Caches())
    too_big = _inputs(_whole_register(32), fez_ideal, 10, options={"device": "GPU"}, limits=GPU_SLOT)
    with pytest.raises(SimulationFailed) as failed:
        pipeline.execute(too_big, Caches())
    assert failed.value.code is ErrorCode.OUT_OF_MEMORY
    assert failed.value.detail["limit"] == 32 * 2**30 and "of GPU memory" in failed.value.message


@pytest.mark.skipif(simulate.gpu_available(), reason="this node has a GPU")
@pytest.mark.usefixtures("no_simulation")
def test_a_gpu_run_on_a_node_without_one_fails_gpu_unavailable_before_any_memory_check(fez_ideal: Snapshot) -> None:
    inputs = _inputs(_whole_register(32), fez_ideal, 10, options={"device": "GPU"}, limits=GPU_SLOT)
    with pytest.raises(SimulationFailed) as failed:
        pipeline.execute(inputs, Caches())
    assert failed.value.code is ErrorCode.GPU_UNAVAILABLE


def test_aer_is_given_the_sites_memory_and_the_tasks_precision(fez_ideal: Snapshot) -> None:
    limit = RUNNER_BYTES + 64 * 2**20
    inputs = _inputs(
        _whole_register(12), fez_ideal, 100, options={"precision": "single"}, limits={"memory_bytes": limit}
    )
    result = pipeline.execute(inputs, Caches())
    options = result.provenance.simulator_options
    assert options["precision"] == "single"
    assert 60 <= int(options["max_memory_mb"]) <= 64


def test_a_run_without_site_limits_or_precision_is_the_run_it_always_was(fez_ideal: Snapshot) -> None:
    result = pipeline.execute(_inputs(_whole_register(4), fez_ideal, 100), Caches())
    assert result.provenance.simulator_options == {}
    assert result.provenance.method == "statevector"


def test_noisy_trajectories_under_a_memory_limit_run_without_shot_branching(fez: Snapshot) -> None:
    # Aer 0.18.2 segfaults when shot branching wants more memory than max_memory_mb allows (measured: a
    # 14-qubit, 1,000-shot Fez run under 200-300 MiB); Aer's parallel shots respect the limit instead.
    limited = simulate.plan(RunOptions(device="CPU"), "CPU", 14, noisy=True, max_memory_mb=256)
    free = simulate.plan(RunOptions(device="CPU"), "CPU", 14, noisy=True)
    assert "shot_branching_enable" not in limited.options and limited.options["max_memory_mb"] == 256
    assert free.options == {}  # nor without one: test_dynamic_circuits.py has why
    inputs = _inputs(_whole_register(12), fez, 50, limits={"memory_bytes": RUNNER_BYTES + 40 * 2**20})
    result = pipeline.execute(inputs, Caches())
    assert (result.provenance.method, sum(result.counts.values())) == ("statevector", 50)
