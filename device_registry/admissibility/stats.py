"""What the admissibility pass learns about a program's size on the way: the numbers a price is made of.

Counted from the operands' ranges as the statements go by, never by materialising a broadcast, so the
pass stays linear in the source. Exact for a program the pass admits: one made only of native gates
and directives, so the runner simulates the same operations, on the same qubits, as counted here.
"""

from __future__ import annotations

from dataclasses import dataclass

LARGEST_WEIGHT = 10**15
"""Nested `for` loops' iteration counts multiply up to this and no further: far past any price limit, and
an integer that stays small however deep the nesting."""


@dataclass(frozen=True)
class CircuitStats:
    expanded_ops: int
    """Operations Aer applies: each gate application, measure, reset and delay once per qubit (or pair, or
    tuple) it is broadcast over (`sx q;` on a 156-qubit register is 156), and once per iteration of each
    enclosing `for` loop; barriers are not counted. Every branch of a conditional counts, a `while` body
    once."""
    two_qubit_ops: int
    """Those of `expanded_ops` that act on two or more qubits: what can entangle."""
    active_qubits: frozenset[int]
    """Physical qubits some operation other than a barrier or a delay touches: the qubits Aer simulates.
    A qubit only delays touch (a scheduler's padding of every idle qubit) cannot change the counts: the
    runner leaves its delays out, and it is neither simulated nor given a noise model."""
    clbits: int
    """Classical bits declared, in all registers (an OpenQASM 3 `bit c;` too)."""
    classical_registers: int
    """Classical registers declared with a size (`creg c[n]`, `bit[n] c`): those the counts keys show,
    a space between two. A single `bit c;` is a loose bit, in no register."""
    dynamic: bool
    """Aer cannot simulate once and sample the shots: a measured qubit is acted on again, or the program
    has a reset or a classically conditioned operation, so each shot is simulated on its own."""
    crossings: tuple[int, ...] = ()
    """For each cut between consecutive active qubits (in index order, as Aer lays out a matrix product
    state), how many multi-qubit operations span it: what bounds the entanglement across it."""
    delayed_qubits: frozenset[int] = frozenset()
    """Active qubits that a delay idles, inside a control-flow block or not: where `relaxation` puts idle
    noise (the runner relaxes each delay, in blocks too)."""
    inputs: tuple[str, ...] = ()
    """The `input float[64] name;` parameters declared, in declaration order: what each row of a PUB's
    `parameter_values` gives a value for (empty unless the pass was asked to accept parameters)."""

    @property
    def key_width(self) -> int:
        """Characters of one counts key: a bit per classical bit, a space between registers."""
        return self.clbits + max(self.classical_registers - 1, 0)


class Tally:
    """The counts as the pass goes; `freeze` them once it is done. Qubits given are on the device."""

    __slots__ = ("active", "delayed", "dynamic", "measured", "ops", "spans", "two_qubit_ops", "weight")

    def __init__(self, num_qubits: int) -> None:
        self.ops = 0
        self.two_qubit_ops = 0
        self.active: set[int] = set()
        self.delayed: set[int] = set()
        self.measured: set[int] = set()
        self.dynamic = False
        self.spans = [0] * (num_qubits + 1)
        """Multi-qubit operations as a difference array: +1 at the lowest qubit, -1 at the highest."""
        self.weight = 1
        """How many times the statement being read runs: the product of the enclosing `for` loops'
        iteration counts (a `while` loop's body is counted once: its iterations are not known)."""

    def one(self, qubit: int) -> None:
        self.ops += self.weight
        self.active.add(qubit)
        if self.measured and qubit in self.measured:
            self.dynamic = True  # acted on after its measurement: Aer cannot sample a final state

    def multi(self, qubits: tuple[int, ...]) -> None:
        weight = self.weight
        self.ops += weight
        self.two_qubit_ops += weight
        self.touch(qubits)
        self.spans[min(qubits)] += weight
        self.spans[max(qubits)] -= weight

    def each(self, qubits: tuple[int, ...]) -> None:
        """A one-qubit operation broadcast over `qubits`."""
        self.ops += len(qubits) * self.weight
        self.touch(qubits)

    def touch(self, qubits: tuple[int, ...]) -> None:
        self.active.update(qubits)
        if self.measured and not self.dynamic and not self.measured.isdisjoint(qubits):
            self.dynamic = True

    def delay(self, qubits: tuple[int, ...]) -> None:
        """Idling: an operation per qubit that activates none (nor acts on a measured one again)."""
        self.ops += len(qubits) * self.weight
        self.delayed.update(qubits)

    def measure(self, qubits: tuple[int, ...]) -> None:
        self.ops += len(qubits) * self.weight
        self.active.update(qubits)
        self.measured.update(qubits)

    def freeze(self, classical: dict[str, int], inputs: tuple[str, ...] = ()) -> CircuitStats:
        active = sorted(self.active)
        crossings: list[int] = []
        spanning, at = 0, 0
        for here in active[:-1]:  # the cut just after `here`: operations from at or below it to above it
            while at <= here:
                spanning += self.spans[at]
                at += 1
            crossings.append(spanning)
        return CircuitStats(
            expanded_ops=self.ops,
            two_qubit_ops=self.two_qubit_ops,
            active_qubits=frozenset(active),
            clbits=sum(max(size, 1) for size in classical.values()),
            classical_registers=sum(1 for size in classical.values() if size),
            dynamic=self.dynamic,
            crossings=tuple(crossings),
            delayed_qubits=frozenset(self.delayed & self.active),
            inputs=inputs,
        )
