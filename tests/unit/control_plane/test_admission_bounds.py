"""The admission decision over a priced task: which limit refuses it, and what the refusal says."""

from __future__ import annotations

import pytest

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.admission import Bounds, Cost, check, largest_slot
from vqpu_service.domain.errors import NotAdmissible
from vqpu_service.domain.model import SlotCapacity

BOUNDS = Bounds(
    slot_memory_bytes=8 * 1024**3,
    slot_memory_source="agents",
    max_expanded_ops=5_000_000,
    max_counts_chars=2_000_000,
    max_runtime_s=3600.0,
)


def cost(**change: object) -> Cost:
    base: dict[str, object] = {
        "method": "statevector",
        "active_qubits": 20,
        "memory_bytes": 16 * 2**20,
        "expanded_ops": 1000,
        "counts_chars": 40_000,
        "estimated_runtime_s": 2.0,
    }
    return Cost(**(base | change))  # type: ignore[arg-type]


def refusal(c: Cost, bounds: Bounds = BOUNDS) -> NotAdmissible:
    with pytest.raises(NotAdmissible) as caught:
        check(c, bounds)
    return caught.value


def test_a_task_inside_every_bound_is_admitted() -> None:
    check(cost(), BOUNDS)


def test_a_statevector_over_the_slot_memory_is_too_large_and_names_both_sizes() -> None:
    err = refusal(cost(active_qubits=30, memory_bytes=16 * 2**30))
    assert err.code is ErrorCode.TOO_LARGE and err.status == 422
    assert err.detail == {"limit": "memory", "needed": 16 * 2**30, "allowed": 8 * 1024**3}
    assert "16 GiB" in err.message and "8 GiB" in err.message and "30 active qubits" in err.message


def test_a_broadcast_heavy_circuit_is_refused_by_its_expanded_size() -> None:
    err = refusal(cost(expanded_ops=27_000_000))
    assert err.code is ErrorCode.TOO_LARGE and err.detail["limit"] == "expanded_ops"


def test_counts_that_could_not_be_reported_are_refused_before_anything_runs() -> None:
    err = refusal(cost(counts_chars=16_700_000))
    assert err.code is ErrorCode.TOO_LARGE and err.detail["limit"] == "counts"


def test_an_estimate_over_the_wall_time_limit_is_too_long_with_the_estimate() -> None:
    err = refusal(cost(estimated_runtime_s=1.5e7))
    assert err.code is ErrorCode.TOO_LONG
    assert err.detail == {"limit": "max_runtime_s", "estimated_s": 1.5e7, "limit_s": 3600.0}


def test_the_expanded_size_is_named_first_when_a_task_breaks_several_limits() -> None:
    err = refusal(cost(memory_bytes=2**40, expanded_ops=10**9, estimated_runtime_s=1e9))
    assert err.detail["limit"] == "expanded_ops"
    err = refusal(cost(memory_bytes=2**40, counts_chars=10**9, estimated_runtime_s=1e9))
    assert err.detail["limit"] == "memory"
    err = refusal(cost(counts_chars=10**9, estimated_runtime_s=1e9))
    assert err.detail["limit"] == "max_runtime_s"


GIB = 1024**3
CPU_SLOT = SlotCapacity(16 * GIB)
GPU_SLOT = SlotCapacity(12 * GIB, 80 * GIB)
UNDECLARED_GPU = SlotCapacity(24 * GIB, None)


def test_a_cpu_task_is_held_to_the_largest_host_slot_even_where_a_gpu_is_larger() -> None:
    assert largest_slot([CPU_SLOT, GPU_SLOT], cpu_only=True) == 16 * GIB


def test_a_gpu_or_auto_task_is_held_to_gpu_memory_where_declared_else_host_memory() -> None:
    assert largest_slot([CPU_SLOT, GPU_SLOT], cpu_only=False) == 80 * GIB
    assert largest_slot([GPU_SLOT, UNDECLARED_GPU], cpu_only=False) == 80 * GIB
    # a GPU slot that declared only its host memory offers what the runner holds it to there
    assert largest_slot([SlotCapacity(12 * GIB, 8 * GIB), UNDECLARED_GPU], cpu_only=False) == 24 * GIB


def test_no_declared_slot_is_none_so_the_setting_applies() -> None:
    assert largest_slot([], cpu_only=False) is None and largest_slot([], cpu_only=True) is None
