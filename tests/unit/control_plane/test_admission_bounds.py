"""The admission decision over a priced task: which limit refuses it, and what the refusal says."""

from __future__ import annotations

import pytest

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.admission import Bounds, Cost, check
from vqpu_service.domain.errors import NotAdmissible

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
