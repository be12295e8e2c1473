"""A PUB task's admissibility: what `devices.Reading` is for a circuit, for every PUB of a task.

Each PUB's circuit is checked against the device as a circuit task's is, its `input float[64]`
parameters accepted and listed; each PUB's `parameter_values` must give one value per input (a circuit
that declares none takes no rows: it runs once, or `shape` times); each term of an Estimator PUB's
observables must act on qubits the device has, ONLINE. Every violation names its PUB (`pubs[3]: ...`).
Linear in the PUBs' size; at most `limit` violations, in PUB order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from device_registry import Snapshot
from device_registry.admissibility import DIALECTS, CircuitStats, Violation, ViolationCode, check
from device_registry.admissibility.checker import Checker
from device_registry.admissibility.device import Device
from vqpu_protocol.pubs import EstimatorPub, EstimatorPubs, SamplerPub, SamplerPubs

_SHOWN = 8
"""At most this many input names are listed in a mismatch's message."""


@dataclass(frozen=True)
class PubsReading:
    violations: list[Violation]
    layouts: list[list[int]]
    """Each PUB's classical layout (see `devices.Reading.classical`), in PUB order."""
    stats: list[CircuitStats] | None
    """Each PUB's circuit's size, in PUB order; None for a dialect the pass does not read."""


def read(pubs: SamplerPubs | EstimatorPubs, dialect: str, snapshot: Snapshot, limit: int) -> PubsReading:
    if dialect not in DIALECTS:
        return PubsReading(check("", dialect, snapshot, limit=limit), [], None)
    device = Device(snapshot)  # built once for every PUB
    violations: list[Violation] = []
    layouts: list[list[int]] = []
    stats: list[CircuitStats] = []
    items: list[SamplerPub | EstimatorPub] = list(pubs.pubs)
    for index, pub in enumerate(items):
        room = limit - len(violations)
        if room <= 0:
            break
        checker = Checker(pub.circuit, dialect, snapshot, room, parameters=True, device=device)
        found = checker.run()
        sized = checker.stats
        found += _bindings(pub, sized.inputs)
        if isinstance(pub, EstimatorPub):
            found += _observables(pub, device)
        else:
            found += _lone_bits(checker.registers.classical)
        violations += [_at(index, v) for v in found[:room]]
        layouts.append(list(checker.registers.classical.values()))
        stats.append(sized)
    return PubsReading(violations, layouts, stats)


def violations(pubs: dict[str, Any], dialect: str, snapshot: Snapshot, limit: int) -> list[Violation]:
    """What `read` finds in a stored task's PUBs (`Task.pubs`)."""
    return read(parse(pubs), dialect, snapshot, limit).violations


def parse(pubs: dict[str, Any]) -> SamplerPubs | EstimatorPubs:
    """A stored task's PUBs as the documents they were admitted as."""
    if pubs.get("kind") == "estimator":
        return EstimatorPubs.model_validate(pubs)
    return SamplerPubs.model_validate(pubs)


def source_bytes(pubs: SamplerPubs | EstimatorPubs) -> int:
    """The PUBs' circuits' source in bytes, all together: what the circuit byte limit applies to."""
    return sum(len(p.circuit.encode()) for p in pubs.pubs)


def _bindings(pub: SamplerPub | EstimatorPub, inputs: tuple[str, ...]) -> list[Violation]:
    rows, width = len(pub.parameter_values), pub.num_parameters
    if not inputs:
        if not rows:
            return []
        message = (
            f"parameter_values gives {rows} row(s), but the circuit declares no input parameters: give no rows "
            "(and a `shape` to run it several times)"
        )
    elif not rows:
        message = f"the circuit declares {_named(inputs)}, but parameter_values gives no rows"
    elif width != len(inputs):
        message = f"each row of parameter_values gives {width} value(s); the circuit declares {_named(inputs)}"
    else:
        return []
    return [Violation(ViolationCode.PARAMETER_MISMATCH, None, message)]


def _lone_bits(classical: dict[str, int]) -> list[Violation]:
    """A sampler PUB's outcomes are per register (the V2 result's bit arrays): a lone `bit b;` (width 0 in
    the layout) belongs to none, and the runner refuses it; so does admission, before anything is queued."""
    lone = [name for name, width in classical.items() if width == 0]
    if not lone:
        return []
    message = (
        f"a sampler PUB measures into registers (bit[n] name;), and {', '.join(lone[:_SHOWN])} "
        f"{'is a lone bit' if len(lone) == 1 else 'are lone bits'} in none"
    )
    return [Violation(ViolationCode.PARSE_ERROR, None, message)]


def _named(inputs: tuple[str, ...]) -> str:
    names = ", ".join(inputs[:_SHOWN]) + (", ..." if len(inputs) > _SHOWN else "")
    return f"{len(inputs)} input parameter(s) ({names}), in that order"


def _observables(pub: EstimatorPub, device: Device) -> list[Violation]:
    """The first term that names a qubit the device lacks, or an OFFLINE one (one violation per PUB)."""
    n, online = device.num_qubits, device.online
    for i, observable in enumerate(pub.observables):
        for j, term in enumerate(observable):
            for qubit in term.qubits:
                where = f"observables[{i}] term {j} acts on qubit {qubit}"
                if qubit >= n:
                    message = f"{where}, which {device.id} does not have (qubits 0..{n - 1})"
                    return [Violation(ViolationCode.QUBIT_OUT_OF_RANGE, None, message, (qubit,))]
                if not online[qubit]:
                    return [Violation(ViolationCode.QUBIT_OFFLINE, None, f"{where}, which is OFFLINE", (qubit,))]
    return []


def _at(index: int, v: Violation) -> Violation:
    return dataclasses.replace(v, message=f"pubs[{index}]: {v.message}")
