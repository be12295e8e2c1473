"""Importer for IBM backend `props` / `conf` JSON: IBM units to SI, broken couplers to UNAVAILABLE edges.

IBM data marks a broken coupler only by `gate_error >= 1` and may lack T1/T2 or readout values for a
qubit; missing values become null (ideal) fields, never guesses. Timing comes along: the conf's `dt`
(in ns, as IBM's backend configuration gives it), each gate's `gate_length`, and `readout_length` as
the duration of `measure`. So do the control-flow constructs the conf's `supported_instructions` lists.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_registry.errors import ImportFailed, SnapshotError
from device_registry.snapshot import (
    CONTROL_FLOW,
    ControlFlow,
    Edge,
    EdgeStatus,
    Qubit,
    QubitStatus,
    Snapshot,
    Source,
)

# Divide, not multiply: 24 / 1e9 is exactly the double nearest 2.4e-8, 24 * 1e-9 is not.
_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6, "ns": 1e9, "ps": 1e12}
_ONE_QUBIT_ERROR_ORDER = ("sx", "x", "id")


def load_json(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ImportFailed(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ImportFailed(f"{path}: expected a JSON object")
    return data


def from_files(props: Path, conf: Path, *, device_id: str, epoch: int = 0) -> Snapshot:
    return from_ibm(load_json(props), load_json(conf), device_id=device_id, epoch=epoch)


def from_ibm(props: dict[str, Any], conf: dict[str, Any], *, device_id: str, epoch: int = 0) -> Snapshot:
    try:
        n = int(conf["n_qubits"])
        basis = [str(g) for g in conf["basis_gates"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ImportFailed(f"conf lacks a usable n_qubits/basis_gates: {exc}") from exc
    gates = _gate_table(props)
    two_qubit = sorted({name for (name, qs) in gates if len(qs) == 2 and name in basis})
    if len(two_qubit) != 1:
        raise ImportFailed(f"expected exactly one calibrated 2-qubit basis gate, found {two_qubit}")
    qubit_rows = props.get("qubits") or []
    qubits = [_qubit(i, qubit_rows[i] if i < len(qubit_rows) else [], gates, basis) for i in range(n)]
    edges, directed = _edges(gates, two_qubit[0], conf.get("coupling_map") or [])
    last_update = props.get("last_update_date")
    dt = _sample_time(conf)
    try:
        return Snapshot(
            device_id=device_id,
            epoch=epoch,
            captured_at=_utc(last_update),
            source=Source(kind="ibm-props", name=props.get("backend_name"), last_update_date=last_update),
            num_qubits=n,
            native_gates=sorted(basis),
            directed=directed,
            qubits=qubits,
            edges=edges,
            dt=dt,
            control_flow=_control_flow(conf),
        )
    except ValidationError as exc:
        raise SnapshotError.from_validation(exc) from None


GateTable = dict[tuple[str, tuple[int, ...]], dict[str, float | None]]


def _gate_table(props: dict[str, Any]) -> GateTable:
    table: GateTable = {}
    for position, g in enumerate(props.get("gates") or []):
        try:
            params = {p["name"]: _si(p) for p in g.get("parameters") or [] if "name" in p}
            table[(str(g["gate"]), tuple(int(q) for q in g["qubits"]))] = params
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ImportFailed):
                raise
            raise ImportFailed(f"props gates[{position}] is malformed: {exc!r}") from None
    return table


def _qubit(index: int, rows: list[dict[str, Any]], gates: GateTable, basis: list[str]) -> Qubit:
    try:
        values = {r["name"]: _si(r) for r in rows if "name" in r}
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ImportFailed):
            raise
        raise ImportFailed(f"props qubits[{index}] is malformed: {exc!r}") from None
    error_1q = next(
        (gates[(g, (index,))].get("gate_error") for g in _ONE_QUBIT_ERROR_ORDER if (g, (index,)) in gates),
        None,
    )
    durations = {
        name: length
        for (name, qs), params in gates.items()
        if qs == (index,) and (name in basis or name == "reset")
        if (length := params.get("gate_length")) is not None
    }
    if values.get("readout_length") is not None:
        durations["measure"] = values["readout_length"]  # type: ignore[assignment]
    operational = values.get("operational", 1.0)
    return Qubit(
        index=index,
        status=QubitStatus.ONLINE if operational else QubitStatus.OFFLINE,
        t1=_positive(values.get("T1")),
        t2=_positive(values.get("T2")),
        error_1q=error_1q,
        readout_error=values.get("readout_error"),
        prob_meas0_prep1=values.get("prob_meas0_prep1"),
        prob_meas1_prep0=values.get("prob_meas1_prep0"),
        gate_durations=durations,
    )


def _edges(gates: GateTable, gate: str, coupling_map: list[list[int]]) -> tuple[list[Edge], bool]:
    calibrated = {qs: params for (name, qs), params in gates.items() if name == gate and len(qs) == 2}
    pairs = set(calibrated) | {(int(a), int(b)) for a, b in coupling_map}
    directed = any((b, a) not in pairs or calibrated.get((a, b)) != calibrated.get((b, a)) for a, b in pairs)
    edges = []
    for a, b in sorted(pairs):
        if not directed and a > b:
            continue
        params = calibrated.get((a, b), {})
        error = params.get("gate_error")
        broken = error is not None and error >= 1.0
        edges.append(
            Edge(
                source=a,
                target=b,
                gate=gate,
                status=EdgeStatus.UNAVAILABLE if broken else EdgeStatus.AVAILABLE,
                error=None if broken else error,
                duration=params.get("gate_length"),
            )
        )
    return edges, directed


def _control_flow(conf: dict[str, Any]) -> list[ControlFlow]:
    """The control-flow constructs the conf's `supported_instructions` lists (Fez: if_else, for_loop and
    switch_case; no while_loop), in Qiskit's order; none when it lists none."""
    listed = conf.get("supported_instructions") or []
    if not isinstance(listed, list):
        raise ImportFailed(f"conf supported_instructions is not a list: {type(listed).__name__}")
    return [name for name in CONTROL_FLOW if name in listed]  # type: ignore[misc]


def _sample_time(conf: dict[str, Any]) -> float | None:
    """IBM's backend configuration gives `dt` in nanoseconds (Qiskit's `BackendConfiguration` reads it so)."""
    value = conf.get("dt")
    if value is None:
        return None
    try:
        ns = float(value)
    except (TypeError, ValueError):
        raise ImportFailed(f"conf dt is not a number: {value!r}") from None
    if not math.isfinite(ns) or ns <= 0:
        raise ImportFailed(f"conf dt must be a positive number of nanoseconds, not {value!r}")
    return ns / _PER_SECOND["ns"]


def _si(param: dict[str, Any]) -> float | None:
    value = param.get("value")
    if value is None:
        return None
    unit = str(param.get("unit") or "")
    if unit in ("", "GHz", "MHz", "Hz"):
        return float(value)
    per_second = _PER_SECOND.get(unit)
    if per_second is None:
        raise ImportFailed(f"parameter {param.get('name')!r} has unsupported unit {unit!r}")
    return float(value) / per_second


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _utc(stamp: Any) -> str | None:
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:  # IBM stamps carry an offset; a bare one is taken as UTC, not local time
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
