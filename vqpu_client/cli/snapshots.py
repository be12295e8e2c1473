"""What a person wants to know about a device snapshot, and about two epochs of one: pure functions.

`summarize` is what `vqpu devices show` prints: size, native gates, what is out of service, and the
medians of the calibration. `diff` is `vqpu devices diff`: every field that differs between two
epochs, per qubit and per edge (status changes among them), and the device-wide fields.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from device_registry import Snapshot
from device_registry.snapshot import Edge, Qubit

QUBIT_FIELDS = ("t1", "t2", "error_1q", "readout_error", "prob_meas0_prep1", "prob_meas1_prep0")
EDGE_FIELDS = ("error", "duration", "gate")
DEVICE_FIELDS = ("num_qubits", "native_gates", "directives", "directed", "captured_at")
Where = Literal["device", "qubit", "edge"]


def summarize(snapshot: Snapshot) -> dict[str, Any]:
    """The `vqpu devices show` document. Medians are over the qubits (edges) that have the value."""
    qubits, edges = snapshot.qubits, snapshot.edges
    medians = {name: _median(getattr(q, name) for q in qubits) for name in QUBIT_FIELDS}
    medians["error_2q"] = _median(e.error for e in edges)
    return {
        "device_id": snapshot.device_id,
        "epoch": snapshot.epoch,
        "sha256": snapshot.sha256(),
        "captured_at": snapshot.captured_at,
        "source": None if snapshot.source is None else snapshot.source.model_dump(mode="json"),
        "num_qubits": snapshot.num_qubits,
        "num_edges": len(edges),
        "directed": snapshot.directed,
        "native_gates": list(snapshot.native_gates),
        "offline_qubits": [q.index for q in qubits if not q.online],
        "unavailable_couplers": [[e.source, e.target] for e in edges if not e.available],
        "medians": medians,
    }


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass(frozen=True)
class Change:
    where: Where
    key: str
    """The qubit's index, the edge as `source-target`, or "" for a device-wide field."""
    field: str
    """A snapshot field; a gate duration is `gate_durations.<gate>`; `present` for a qubit or edge only one side has."""
    a: Any
    b: Any

    @property
    def is_status(self) -> bool:
        return self.field in ("status", "present")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff(a: Snapshot, b: Snapshot) -> list[Change]:
    """Every difference from `a` to `b`: device fields, then qubits by index, then edges by coupling."""
    changes = [Change("device", "", f, _wire(getattr(a, f)), _wire(getattr(b, f))) for f in DEVICE_FIELDS]
    changes = [c for c in changes if c.a != c.b]
    qa, qb = {q.index: q for q in a.qubits}, {q.index: q for q in b.qubits}
    for index in sorted(qa.keys() | qb.keys()):
        changes += _qubit(str(index), qa.get(index), qb.get(index))
    ea, eb = _edges(a), _edges(b)
    for pair in sorted(ea.keys() | eb.keys()):
        changes += _edge(ea.get(pair), eb.get(pair), pair)
    return changes


def _qubit(key: str, a: Qubit | None, b: Qubit | None) -> list[Change]:
    if a is None or b is None:
        return [Change("qubit", key, "present", a is not None, b is not None)]
    found = [Change("qubit", key, "status", str(a.status), str(b.status))] if a.status != b.status else []
    found += [
        Change("qubit", key, f, getattr(a, f), getattr(b, f)) for f in QUBIT_FIELDS if getattr(a, f) != getattr(b, f)
    ]
    for gate in sorted(a.gate_durations.keys() | b.gate_durations.keys()):
        da, db = a.gate_durations.get(gate), b.gate_durations.get(gate)
        if da != db:
            found.append(Change("qubit", key, f"gate_durations.{gate}", da, db))
    return found


def _edge(a: Edge | None, b: Edge | None, pair: tuple[int, int]) -> list[Change]:
    key = f"{pair[0]}-{pair[1]}"
    if a is None or b is None:
        return [Change("edge", key, "present", a is not None, b is not None)]
    found = [Change("edge", key, "status", str(a.status), str(b.status))] if a.status != b.status else []
    return found + [
        Change("edge", key, f, getattr(a, f), getattr(b, f)) for f in EDGE_FIELDS if getattr(a, f) != getattr(b, f)
    ]


def _edges(s: Snapshot) -> dict[tuple[int, int], Edge]:
    """Edges by coupling; an undirected device's by the sorted pair (a PATCH may name it either way)."""
    if s.directed:
        return {(e.source, e.target): e for e in s.edges}
    return {(min(e.source, e.target), max(e.source, e.target)): e for e in s.edges}


def _wire(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value
