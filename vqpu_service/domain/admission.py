"""Whether a priced task fits the bounds it would run under: the admission decision after admissibility.

The price itself (method, memory, expanded size, worst counts size, estimated run time) comes from
`vqpu_protocol.pricing`; here it is plain numbers, compared with the bounds in a fixed order so that
a task over several limits is always refused for the same one: the circuit's own expanded size first
(what the user wrote), then the memory it needs, then its time, then its result.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.errors import NotAdmissible


@dataclass(frozen=True)
class Cost:
    method: str
    active_qubits: int
    memory_bytes: int
    expanded_ops: int
    counts_chars: int
    estimated_runtime_s: float


@dataclass(frozen=True)
class Bounds:
    slot_memory_bytes: int
    """The largest slot any live agent serving the device declared, else the control plane's setting."""
    slot_memory_source: str
    """Where that number came from: `agents` or the setting's variable name."""
    max_expanded_ops: int
    max_counts_chars: int
    max_runtime_s: float
    """The task's own wall-time limit: its `max_runtime_s`, lowered to its key's ceiling."""


def check(cost: Cost, bounds: Bounds) -> None:
    """Raise NotAdmissible with TOO_LARGE or TOO_LONG naming the first limit the task exceeds."""
    if cost.expanded_ops > bounds.max_expanded_ops:
        raise _too_large(
            "expanded_ops",
            f"the circuit expands to {cost.expanded_ops} operations (broadcasts unrolled); "
            f"the limit is {bounds.max_expanded_ops}",
            cost.expanded_ops,
            bounds.max_expanded_ops,
        )
    if cost.memory_bytes > bounds.slot_memory_bytes:
        raise _too_large(
            "memory",
            f"{cost.method} on {cost.active_qubits} active qubits needs {_bytes(cost.memory_bytes)}; "
            f"a slot holds {_bytes(bounds.slot_memory_bytes)} ({bounds.slot_memory_source})",
            cost.memory_bytes,
            bounds.slot_memory_bytes,
        )
    if cost.estimated_runtime_s > bounds.max_runtime_s:
        raise NotAdmissible(
            f"the run is estimated at {cost.estimated_runtime_s:.3g} s; its wall-time limit is "
            f"{bounds.max_runtime_s:g} s",
            {"limit": "max_runtime_s", "estimated_s": cost.estimated_runtime_s, "limit_s": bounds.max_runtime_s},
            code=ErrorCode.TOO_LONG,
        )
    if cost.counts_chars > bounds.max_counts_chars:
        raise _too_large(
            "counts",
            f"the counts could hold {cost.counts_chars} characters (shots or 2^clbits distinct outcomes); "
            f"the limit is {bounds.max_counts_chars}: fewer shots, or fewer measured bits",
            cost.counts_chars,
            bounds.max_counts_chars,
        )


def _too_large(limit: str, message: str, needed: int, allowed: int) -> NotAdmissible:
    return NotAdmissible(
        f"the task is too large: {message}",
        {"limit": limit, "needed": needed, "allowed": allowed},
        code=ErrorCode.TOO_LARGE,
    )


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"
