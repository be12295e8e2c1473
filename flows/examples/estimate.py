"""Expectation values from counts, each with its standard error.

A measurement basis gives one value per shot (a weighted sum of Z-strings on the rotated qubits, or a
cut size); its estimate is the sample mean and its standard error sqrt(s^2 / shots), with s^2 the
sample variance over the shots. Estimates of independent measurements (different bases, different
tasks) add: their variances add.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Bits = tuple[int, ...]
"""One shot's classical bits, bit 0 first (a counts key reversed: Qiskit writes bit 0 rightmost)."""


@dataclass(frozen=True)
class Estimate:
    value: float
    stderr: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.value + other.value, math.hypot(self.stderr, other.stderr))

    def shifted(self, constant: float) -> Estimate:
        return Estimate(self.value + constant, self.stderr)


def bits_of(key: str) -> Bits:
    """The bits of one counts key of a single classical register: "110" -> (0, 1, 1)."""
    if not key or set(key) - {"0", "1"}:
        raise ValueError(f"{key!r} is not a counts key of one classical register (only 0s and 1s)")
    return tuple(int(b) for b in reversed(key))


def mean_of(counts: Mapping[str, int], value: Callable[[Bits], float]) -> Estimate:
    """The mean of `value` over the shots, and its standard error."""
    shots = sum(counts.values())
    if shots < 2:
        raise ValueError(f"a standard error needs at least 2 shots, not {shots}")
    total = squares = 0.0
    for key, n in counts.items():
        v = value(bits_of(key))
        total += n * v
        squares += n * v * v
    mean = total / shots
    variance = max(squares / shots - mean * mean, 0.0) * shots / (shots - 1)
    return Estimate(mean, math.sqrt(variance / shots))


def z_string(bits: Bits, positions: Sequence[int]) -> int:
    """The eigenvalue (+1 or -1) of the product of Z on `positions` for these measured bits."""
    return -1 if sum(bits[p] for p in positions) % 2 else 1
