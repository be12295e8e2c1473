"""The `vqpu.snapshot/1` model: one device's graph, native gates, calibration and timing, in SI units.

A snapshot's identity is the sha256 of its canonical JSON (sorted keys, no whitespace). Fields added
after epochs were stored (`dt`, `control_flow`) are left out of the JSON when absent, so those epochs keep their sha.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_registry import gates
from device_registry.errors import SnapshotError

SCHEMA: Literal["vqpu.snapshot/1"] = "vqpu.snapshot/1"
DEFAULT_DIRECTIVES = ("barrier", "measure", "reset", "delay")
CONTROL_FLOW = ("if_else", "for_loop", "while_loop", "switch_case")
"""Qiskit's names for the control-flow constructs a device may execute (IBM's `supported_instructions`)."""
ControlFlow = Literal["if_else", "for_loop", "while_loop", "switch_case"]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(gt=0.0)]
Duration = Annotated[float, Field(ge=0.0)]
SampleTime = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class QubitStatus(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class EdgeStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"


class _Frozen(BaseModel):
    """Strict: a snapshot arrives from other processes (registration, claims, run directories), and
    `"num_qubits": "5"` or `"t1": true` is a mistake to report, not a value to guess."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)


class Qubit(_Frozen):
    index: Annotated[int, Field(ge=0)]
    status: QubitStatus = Field(QubitStatus.ONLINE, strict=False)  # the enum from its JSON string
    t1: Seconds | None = None
    t2: Seconds | None = None
    error_1q: Probability | None = None
    readout_error: Probability | None = None
    prob_meas0_prep1: Probability | None = None
    prob_meas1_prep0: Probability | None = None
    gate_durations: dict[Name, Duration] = Field(default_factory=dict)

    @property
    def online(self) -> bool:
        return self.status is QubitStatus.ONLINE


class Edge(_Frozen):
    source: Annotated[int, Field(ge=0)]
    target: Annotated[int, Field(ge=0)]
    gate: Name
    status: EdgeStatus = Field(EdgeStatus.AVAILABLE, strict=False)
    error: Probability | None = None
    duration: Duration | None = None

    @property
    def available(self) -> bool:
        return self.status is EdgeStatus.AVAILABLE


class Source(_Frozen):
    kind: str
    name: str | None = None
    last_update_date: str | None = None


class Snapshot(_Frozen):
    schema_: Literal["vqpu.snapshot/1"] = Field(SCHEMA, alias="schema")
    device_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
    epoch: Annotated[int, Field(ge=0)] = 0
    captured_at: str | None = None
    source: Source | None = None
    num_qubits: Annotated[int, Field(ge=1, le=100_000)]
    native_gates: list[Name] = Field(min_length=1)
    directives: list[Name] = Field(default_factory=lambda: list(DEFAULT_DIRECTIVES))
    directed: bool = False
    qubits: list[Qubit]
    edges: list[Edge] = Field(default_factory=list)
    dt: SampleTime | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="the control electronics' sample time in seconds (IBM's `dt`): the unit of a `delay[n dt]` "
        "and of scheduled circuits; absent (left out of the JSON, so older epochs keep their sha256) when the "
        "device declares none",
    )
    control_flow: list[ControlFlow] = Field(
        default_factory=list,
        exclude_if=lambda value: not value,
        description="the control-flow constructs the device executes within a shot (Qiskit's names: `if_else`, "
        "`for_loop`, `while_loop`, `switch_case`); a program using any other is refused at submit. Absent (left "
        "out of the JSON, so older epochs keep their sha256) when it executes none",
    )

    @model_validator(mode="after")
    def _check_graph(self) -> Snapshot:
        problems = _graph_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- identity -----------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def canonical_json(self) -> bytes:
        return canonical_bytes(self.to_json_dict())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()

    # --- graph views --------------------------------------------------------------

    def qubit(self, index: int) -> Qubit:
        return self.qubits[index]

    def couplings(self) -> dict[tuple[int, int], Edge]:
        """Every usable direction of every edge (both directions for an undirected device)."""
        out: dict[tuple[int, int], Edge] = {}
        for e in self.edges:
            out[(e.source, e.target)] = e
            if not self.directed:
                out[(e.target, e.source)] = e
        return out

    def two_qubit_gates(self) -> set[str]:
        return {e.gate for e in self.edges}

    def with_epoch(self, epoch: int, captured_at: str | None = None) -> Snapshot:
        data = self.to_json_dict()
        data["epoch"] = epoch
        if captured_at is not None:
            data["captured_at"] = captured_at
        return parse_snapshot(data)


def _graph_problems(s: Snapshot) -> list[str]:
    problems: list[str] = []
    if len(s.qubits) != s.num_qubits:
        problems.append(f"num_qubits is {s.num_qubits} but {len(s.qubits)} qubits are listed")
    for pos, q in enumerate(s.qubits):
        if q.index != pos:
            problems.append(f"qubits[{pos}] has index {q.index}; qubits must be listed 0..n-1 in order")
            break
    overlap = set(s.native_gates) & set(s.directives)
    if overlap:
        problems.append(f"names listed both as native gates and directives: {sorted(overlap)}")
    if len(set(s.native_gates)) != len(s.native_gates):
        problems.append("native_gates lists a gate twice")
    if len(set(s.control_flow)) != len(s.control_flow):
        problems.append("control_flow lists a construct twice")
    problems += _gate_problems(s)
    seen: set[tuple[int, int]] = set()
    for i, e in enumerate(s.edges):
        where = f"edges[{i}] ({e.source}, {e.target})"
        for end in (e.source, e.target):
            if end >= s.num_qubits:
                problems.append(f"{where} references unknown qubit {end} (device has {s.num_qubits})")
        if e.source == e.target:
            problems.append(f"{where} couples a qubit to itself")
        if e.gate not in s.native_gates:
            problems.append(f"{where} uses gate {e.gate!r}, which is not a native gate")
        key = (e.source, e.target) if s.directed else (min(e.source, e.target), max(e.source, e.target))
        if key in seen:
            kind = "directed" if s.directed else "undirected"
            problems.append(f"{where} duplicates an earlier {kind} edge")
        seen.add(key)
    return problems


def _gate_problems(s: Snapshot) -> list[str]:
    """Every native gate is a standard gate the runner can execute; every edge carries a two-qubit one."""
    problems: list[str] = []
    for name in s.native_gates:
        gate = gates.GATES.get(name)
        if gate is None:
            problems.append(f"native gate {name!r} is not a standard gate, so its number of qubits is unknown")
        elif gates.Library.QISKIT not in gate.libraries:
            problems.append(f"native gate {name!r} has no Qiskit standard gate, so the runner cannot execute it")
    reported: set[str] = set()
    for i, e in enumerate(s.edges):
        qubits = gates.arity(e.gate)
        if qubits is not None and qubits != 2 and e.gate not in reported:
            reported.add(e.gate)
            count = sum(1 for other in s.edges if other.gate == e.gate)
            more = f" (and {count - 1} more edge{'s' if count > 2 else ''})" if count > 1 else ""
            problems.append(
                f"edges[{i}] ({e.source}, {e.target}) carries {e.gate!r}, a {qubits}-qubit gate{more}; "
                "an edge carries a two-qubit gate"
            )
    return problems


def canonical_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def parse_snapshot(data: bytes | str | dict[str, Any]) -> Snapshot:
    """Parse and validate a snapshot from JSON text or a decoded object; raise SnapshotError."""
    try:
        if isinstance(data, dict):
            return Snapshot.model_validate(data)
        return Snapshot.model_validate_json(data)
    except ValidationError as exc:
        raise SnapshotError.from_validation(exc) from None
