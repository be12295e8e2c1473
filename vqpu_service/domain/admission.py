"""Whether a priced task fits the bounds it would run under: the admission decision after admissibility.

The price itself (method, memory, expanded size, worst counts size, estimated run time) comes from
`vqpu_protocol.pricing`; here it is plain numbers, compared with the bounds in a fixed order so that
a task over several limits is always refused for the same one: the circuit's own expanded size first
(what the user wrote), then the memory it needs, then its time, then its result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.errors import NotAdmissible
from vqpu_service.domain.model import SlotCapacity


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
    """The most memory a slot of a live agent serving the device gives this task's state (see
    `largest_slot`), else the control plane's setting."""
    slot_memory_source: str
    """Where that number came from, in words: the agents' declarations or the setting's variable name."""
    max_expanded_ops: int
    max_counts_chars: int
    max_runtime_s: float
    """The task's own wall-time limit: its `max_runtime_s`, lowered to its key's ceiling."""


def largest_slot(slots: Sequence[SlotCapacity], *, cpu_only: bool) -> int | None:
    """The most memory any of these slots gives a task's state; None when there are none.

    A task that asks for the CPU (`cpu_only`) is held to a slot's host memory. One that asks for a GPU,
    or for `auto` (which the runner runs on a GPU wherever there is one), is held to the slot's GPU
    memory where its agent declared one, else to its host memory: as the runner holds the run on the
    device it chose (`runner/pipeline.py`)."""
    return max(
        (s.memory_bytes if cpu_only or s.gpu_memory_bytes is None else s.gpu_memory_bytes for s in slots),
        default=None,
    )


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
