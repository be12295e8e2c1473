"""The device's side of admissibility: its native gates and their arity, its ONLINE qubits, its
AVAILABLE couplings, and the messages that say which of them a statement misses."""

from __future__ import annotations

from device_registry import gates
from device_registry.admissibility.syntax import clip
from device_registry.admissibility.violations import Rejection, ViolationCode
from device_registry.snapshot import Edge, Snapshot

_SHOWN = 16
"""At most this many qubits are listed as the operands of one out-of-range violation."""


class Device:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.id = snapshot.device_id
        self.num_qubits = snapshot.num_qubits
        self.native = frozenset(snapshot.native_gates)
        self.directives = frozenset(snapshot.directives)
        self.control_flow = frozenset(snapshot.control_flow)
        self.online = [q.online for q in snapshot.qubits]
        self.every_coupling = snapshot.couplings()
        self.couplings: dict[tuple[int, int], Edge] = {
            pair: e for pair, e in self.every_coupling.items() if e.available
        }
        coupled = snapshot.two_qubit_gates()
        # A validated snapshot lists only gates of the table; the edges decide for any other.
        self.arity = {g: gates.arity(g) or (2 if g in coupled else 1) for g in self.native - self.directives}

    # --- rules --------------------------------------------------------------------

    def require_control_flow(self, construct: str, stmt: str) -> None:
        """`construct` is Qiskit's name (`if_else`, `for_loop`, ...); `stmt` the header that uses it."""
        if construct not in self.control_flow:
            executes = ", ".join(sorted(self.control_flow)) or "no control flow"
            raise Rejection(
                ViolationCode.UNSUPPORTED_CONTROL_FLOW,
                f"{self.id} does not execute {construct} ({clip(stmt)!r}); it executes {executes}",
            )

    def require_existing(self, qubits: range) -> None:
        if qubits.stop > self.num_qubits:
            outside = range(max(qubits.start, self.num_qubits), qubits.stop)
            raise Rejection(
                ViolationCode.QUBIT_OUT_OF_RANGE,
                f"qubit {outside[0]} does not exist on {self.id} (qubits 0..{self.num_qubits - 1})",
                tuple(outside[:_SHOWN]),
            )

    def register_too_wide(self, name: str, before: int, width: int) -> Rejection:
        return Rejection(
            ViolationCode.QUBIT_OUT_OF_RANGE,
            f"register {clip(name)} brings the program to {width} qubits; {self.id} has {self.num_qubits}",
            tuple(range(max(before, self.num_qubits), width)[:_SHOWN]),
        )

    def offline(self, qubits: tuple[int, ...]) -> tuple[int, ...]:
        online = self.online
        return tuple(q for q in qubits if q < len(online) and not online[q])

    def offline_violation(self, name: str, qubits: tuple[int, ...]) -> Rejection:
        listed = ", ".join(map(str, qubits))
        message = f"{name} touches OFFLINE qubit{'s' if len(qubits) > 1 else ''} {listed}"
        return Rejection(ViolationCode.QUBIT_OFFLINE, message, qubits, gate=name)

    def multi_qubit_problem(self, name: str, qubits: tuple[int, ...]) -> Rejection | None:
        """Why the native multi-qubit gate `name` cannot run on `qubits`; None when it can."""
        if len(set(qubits)) != len(qubits):
            return Rejection(ViolationCode.PARSE_ERROR, f"{name} names qubit {qubits[0]} more than once", qubits)
        offline = self.offline(qubits)
        if offline:
            return self.offline_violation(name, offline)
        if len(qubits) == 2:
            edge = self.couplings.get((qubits[0], qubits[1]))
            if edge is not None and edge.gate == name:
                return None
        return Rejection(ViolationCode.NO_COUPLING, self._no_coupling(name, qubits), qubits, gate=name)

    def not_native(self, name: str, operands: tuple[int, ...]) -> Rejection:
        shown = clip(name)
        return Rejection(
            ViolationCode.UNKNOWN_GATE,
            f"{shown} is not a native gate of {self.id} (native: {', '.join(sorted(self.native))})",
            operands,
            gate=shown,
        )

    def require_directive(self, name: str) -> None:
        if name not in self.directives:
            raise Rejection(ViolationCode.UNKNOWN_GATE, f"{self.id} does not support {name}", gate=name)

    # --- messages -----------------------------------------------------------------

    def _no_coupling(self, name: str, qubits: tuple[int, ...]) -> str:
        if len(qubits) != 2:
            return f"{self.id} has no {len(qubits)}-qubit couplings for {name}"
        a, b = qubits
        edge = self.every_coupling.get((a, b))
        if edge is not None and not edge.available:
            return f"the {edge.gate} coupling ({a}, {b}) of {self.id} is UNAVAILABLE"
        if edge is not None:
            return f"coupling ({a}, {b}) of {self.id} carries {edge.gate}, not {name}"
        if self.snapshot.directed and (b, a) in self.every_coupling:
            return f"{self.id} is directed: {name} runs on ({b}, {a}), not ({a}, {b})"
        return f"qubits {a} and {b} are not coupled on {self.id}"
