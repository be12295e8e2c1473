"""A completed report's result checked against the task it claims to be the result of.

A result is accepted only if it is this task's, from this attempt, on the snapshot bound at claim:
shots, provenance (task, attempt, device, epoch, snapshot sha256), every bitstring as wide as the
circuit's classical bits, and per-shot memory exactly when the task asked for it. A PUB task's result
carries one result per PUB (`pubs`), of the task's kind, each of its PUB's shape and shots (sampler,
counts keys as wide as that PUB's circuit's bits) or shape and precision (estimator); a circuit task's
carries none. A valid
`vqpu.result/1` document of another task, or a forged one, is not this task's result (issue 17: a
swapped run directory made tasks complete with another task's counts). Linear in the result's size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vqpu_protocol.shapes import broadcast
from vqpu_service.domain.model import Task

_CLIP = 48


@dataclass(frozen=True)
class Problem:
    field: str
    """Where in the result, dotted: `shots`, `provenance.epoch`, `counts`, `memory`."""
    reason: str


@dataclass(frozen=True)
class KeyShape:
    """What an outcome (a counts key, a memory entry) looks like for a circuit, as the runner writes it:
    Qiskit's format, one group of bits per classical register, the last declared first, separated by
    single spaces; a program of lone bits only is one group."""

    width: int
    """Classical bits in all."""
    groups: tuple[int, ...] | None
    """Widths of the space-separated groups, left to right; None: registers and lone bits mixed, which
    has no fixed grouping, so only the width is checked."""

    @classmethod
    def of(cls, layout: Sequence[int]) -> KeyShape:
        registers = [size for size in layout if size > 0]
        width = sum(size if size > 0 else 1 for size in layout)
        if len(registers) == len(layout):
            return cls(width, tuple(reversed(registers)))
        return cls(width, (width,) if not registers else None)

    def fits(self, key: str) -> bool:
        groups = key.split(" ")
        if any(not g or g.strip("01") for g in groups):
            return False
        if self.groups is None:
            return sum(map(len, groups)) == self.width
        return len(groups) == len(self.groups) and all(len(g) == n for g, n in zip(groups, self.groups, strict=True))

    def describe(self) -> str:
        bits = f"{self.width} classical bit{'s' * (self.width != 1)}"
        if self.groups is None or len(self.groups) < 2:
            return bits
        return f"{bits} in groups of {' '.join(map(str, self.groups))}"


def problems(task: Task, result: Mapping[str, Any]) -> list[Problem]:
    """Every way `result` is not this task's result (at most one per field); [] when it is."""
    provenance = result.get("provenance")
    prov: Mapping[str, Any] = provenance if isinstance(provenance, Mapping) else {}
    found = [
        Problem(name, f"{name} is {_show(got)}, but the task's is {_show(want)}")
        for name, got, want in (
            ("shots", result.get("shots"), task.shots),
            ("provenance.task_id", prov.get("task_id"), task.id),
            ("provenance.attempt", prov.get("attempt"), task.attempt),
            ("provenance.device_id", prov.get("device_id"), task.device_id),
            ("provenance.epoch", prov.get("epoch"), task.bound_epoch),
            ("provenance.snapshot_sha256", prov.get("snapshot_sha256"), task.bound_sha256),
        )
        if not _same(got, want)
    ]
    if task.pubs is not None:
        if result.get("memory") is not None:
            found.append(Problem("memory", "memory is present, but a PUB task's memory is in its pubs"))
        return found + pub_problems(task.pubs, task.pub_layouts, result, memory=task.options.get("memory") is True)
    if result.get("pubs") is not None:
        found.append(Problem("pubs", "pubs is present, but the task runs a circuit, not PUBs"))
    shape = None if task.classical_layout is None else KeyShape.of(task.classical_layout)
    counts = result.get("counts")
    if not isinstance(counts, Mapping):
        found.append(Problem("counts", "counts is missing"))
        counts = {}
    else:
        found += _counts(counts, task.shots, shape)
    found += _memory(result.get("memory"), counts, task, shape)
    return found


def pub_problems(
    pubs: Mapping[str, Any],
    layouts: Sequence[Sequence[int]] | None,
    result: Mapping[str, Any],
    *,
    memory: bool = False,
) -> list[Problem]:
    """How a PUB task's result (`pubs`: its stored, resolved PUBs) is not one result per PUB, in order,
    of its kind, each of the PUB's shape, shots or precision, counts keys, and per-shot memory exactly
    when the task asked for it (`memory`); at most one problem."""
    kind, wanted = pubs.get("kind"), pubs.get("pubs") or []
    got = result.get("pubs")
    if not isinstance(got, Mapping):
        return [Problem("pubs", f"pubs is missing, but the task runs {kind} PUBs")]
    if got.get("kind") != kind:
        return [Problem("pubs.kind", f"pubs.kind is {_show(got.get('kind'))}, but the task's is {_show(kind)}")]
    given = got.get("pubs")
    if not isinstance(given, list) or len(given) != len(wanted):
        n = len(given) if isinstance(given, list) else 0
        return [Problem("pubs.pubs", f"{n} PUB result(s), but the task has {len(wanted)} PUB(s)")]
    for i, (one, pub) in enumerate(zip(given, wanted, strict=True)):
        if not isinstance(one, Mapping):
            return [Problem(f"pubs.pubs[{i}]", f"pubs[{i}] is not a PUB result")]
        if kind == "sampler":
            layout = None if layouts is None or i >= len(layouts) else layouts[i]
            reason = _sampler_pub(one, pub, layout, memory)
        else:
            reason = _estimator_pub(one, pub)
        if reason is not None:
            return [Problem(f"pubs.pubs[{i}]", f"pubs[{i}]: {reason}")]
    return []


def _sampler_pub(
    got: Mapping[str, Any], pub: Mapping[str, Any], layout: Sequence[int] | None, memory: bool
) -> str | None:
    shape = bindings_shape(pub)
    if not _same(got.get("shots"), pub.get("shots")):
        return f"shots is {_show(got.get('shots'))}, but the PUB's is {_show(pub.get('shots'))}"
    if got.get("shape") != shape:
        return f"shape is {_show(got.get('shape'))}, but the PUB's bindings have shape {shape}"
    shots_memory = got.get("memory")
    if memory != (shots_memory is not None):
        return "memory is missing, but the task asked for it" if memory else "memory is present, but not asked for"
    if layout is not None:
        key_shape = KeyShape.of(layout)
        counts = got.get("counts")
        for j, binding in enumerate(counts if isinstance(counts, list) else []):
            wrong = next((key for key in binding if not key_shape.fits(key)), None)
            if wrong is not None:
                return f"counts[{j}] key {_show(wrong)} is not {key_shape.describe()} wide"
        # (memory entries tally to the counts: the document's own validation, so their keys are these)
    return None


def _estimator_pub(got: Mapping[str, Any], pub: Mapping[str, Any]) -> str | None:
    shape = result_shape(pub)
    if got.get("shape") != shape:
        return f"shape is {_show(got.get('shape'))}, but the PUB's results have shape {shape}"
    want, precision = pub.get("precision"), got.get("precision")
    if isinstance(precision, bool) or not isinstance(precision, int | float) or precision != want:
        return f"precision is {_show(precision)}, but the PUB's is {_show(want)}"
    return None


def bindings_shape(pub: Mapping[str, Any]) -> list[int]:
    """A stored PUB's bindings' shape: its `shape`, else [rows], else [] (`vqpu_protocol.pubs`)."""
    if pub.get("shape") is not None:
        return list(pub["shape"])
    rows = pub.get("parameter_values") or []
    return [len(rows)] if rows else []


def result_shape(pub: Mapping[str, Any]) -> list[int] | None:
    """A stored Estimator PUB's results' shape: NumPy's broadcast of its observables' and bindings' shapes."""
    observables = pub.get("observables_shape")
    a = list(observables) if observables is not None else [len(pub.get("observables") or [])]
    return broadcast(a, bindings_shape(pub))


def _counts(counts: Mapping[str, Any], shots: int, shape: KeyShape | None) -> list[Problem]:
    total = sum(n for n in counts.values() if isinstance(n, int))
    if total != shots:
        return [Problem("counts", f"counts add up to {total}, not to the task's {shots} shots")]
    if shape is not None:
        wrong = next((key for key in counts if not shape.fits(key)), None)
        if wrong is not None:
            return [Problem("counts", f"counts key {_show(wrong)} is not {shape.describe()} wide")]
    return []


def _memory(memory: Any, counts: Mapping[str, Any], task: Task, shape: KeyShape | None) -> list[Problem]:
    asked = task.options.get("memory") is True
    if not asked:
        if memory is None:
            return []
        return [Problem("memory", "memory is present, but the task did not ask for it (options.memory)")]
    if not isinstance(memory, list):
        return [Problem("memory", "memory is missing, but the task asked for it (options.memory)")]
    if len(memory) != task.shots:
        return [Problem("memory", f"memory holds {len(memory)} shots, not the task's {task.shots}")]
    wrong = next((m for m in memory if not isinstance(m, str) or (shape is not None and not shape.fits(m))), None)
    if wrong is not None:
        if shape is not None:
            return [Problem("memory", f"memory entry {_show(wrong)} is not {shape.describe()} wide")]
        return [Problem("memory", f"memory entry {_show(wrong)} is not a bitstring")]
    tally = dict(Counter(memory))
    nonzero = {key: n for key, n in counts.items() if n}
    if tally != nonzero:
        key = next(k for k in sorted(set(tally) | set(nonzero)) if tally.get(k, 0) != nonzero.get(k, 0))
        return [
            Problem(
                "memory",
                f"memory does not tally to counts: {_show(key)} is {tally.get(key, 0)} in memory, "
                f"{nonzero.get(key, 0)} in counts",
            )
        ]
    return []


def _same(got: Any, want: Any) -> bool:
    return type(got) is type(want) and got == want  # 1 is not True; a string is never a number


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _CLIP else f"{text[: _CLIP - 1]}…"
