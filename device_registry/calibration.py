"""Attach calibration to a synthetic device (hypothetical-device studies), or strip it (ideal twin)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from device_registry.snapshot import Edge, Qubit, Snapshot

_Draw = Callable[[str, float], float]


@dataclass(frozen=True)
class Calibration:
    """Typical values, SI units. The defaults are of the order of IBM Heron r2 medians."""

    t1: float = 1.5e-4
    t2: float = 1.0e-4
    error_1q: float = 3.0e-4
    error_2q: float = 3.0e-3
    readout_error: float = 1.5e-2
    duration_1q: float = 2.4e-8
    duration_2q: float = 8.4e-8
    readout_asymmetry: float = 0.3
    """Share of the readout error that flips 0→1; the rest flips 1→0 (IBM devices flip 1→0 more)."""


def attach_uniform(snapshot: Snapshot, cal: Calibration | None = None) -> Snapshot:
    """Every qubit and edge gets exactly the same calibration."""
    cal = cal or Calibration()
    return _attach(snapshot, lambda _kind, value: value, cal)


def attach_sampled(snapshot: Snapshot, seed: int, cal: Calibration | None = None, spread: float = 0.5) -> Snapshot:
    """Each value drawn log-normally around `cal` (sigma = spread); the same seed gives the same device."""
    if spread < 0:
        raise ValueError("spread must be >= 0")
    cal = cal or Calibration()
    rng = random.Random(seed)

    def draw(kind: str, value: float) -> float:
        if kind == "duration":
            return value
        return value * math.exp(rng.gauss(0.0, spread))

    return _attach(snapshot, draw, cal)


def strip(snapshot: Snapshot, device_id: str | None = None) -> Snapshot:
    """The same graph, statuses and timing (dt, gate durations) with null (ideal) calibration: timing is
    no error, and with no T1/T2 a duration adds no noise, so the ideal twin schedules as its device does."""
    qubits = [Qubit(index=q.index, status=q.status, gate_durations=q.gate_durations) for q in snapshot.qubits]
    edges = [
        Edge(source=e.source, target=e.target, gate=e.gate, status=e.status, duration=e.duration)
        for e in snapshot.edges
    ]
    update: dict[str, object] = {"qubits": qubits, "edges": edges}
    if device_id is not None:
        update["device_id"] = device_id
    return Snapshot.model_validate({**snapshot.model_dump(by_alias=True), **update})


def _attach(snapshot: Snapshot, value_of: _Draw, cal: Calibration) -> Snapshot:
    qubits = []
    for q in snapshot.qubits:
        t1 = value_of("time", cal.t1)
        t2 = min(value_of("time", cal.t2), 2 * t1)
        readout = _prob(value_of("error", cal.readout_error), 0.5)
        qubits.append(
            Qubit(
                index=q.index,
                status=q.status,
                t1=t1,
                t2=t2,
                error_1q=_prob(value_of("error", cal.error_1q), 0.75),
                readout_error=readout,
                prob_meas1_prep0=2 * readout * cal.readout_asymmetry,
                prob_meas0_prep1=2 * readout * (1 - cal.readout_asymmetry),
                gate_durations={
                    g: (0.0 if g == "rz" else cal.duration_1q)
                    for g in snapshot.native_gates
                    if g not in snapshot.two_qubit_gates()
                },
            )
        )
    edges = [
        Edge(
            source=e.source,
            target=e.target,
            gate=e.gate,
            status=e.status,
            error=_prob(value_of("error", cal.error_2q), 0.9375),
            duration=cal.duration_2q,
        )
        for e in snapshot.edges
    ]
    return Snapshot.model_validate({**snapshot.model_dump(by_alias=True), "qubits": qubits, "edges": edges})


def _prob(value: float, cap: float) -> float:
    return min(max(value, 0.0), cap)
