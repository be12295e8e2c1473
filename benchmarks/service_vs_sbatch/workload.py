"""The workload: pseudo-random native circuits on a chain of Fez qubits, fixed by their seeds."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from device_registry import Snapshot, admissibility

DEVICE = "ibm-fez"
CHAIN = (0, 1, 2, 3, 4)
DEPTH = 5
SHOTS = 1024
CIRCUIT_SEED_BASE = 5000  # what draws circuit i's gates
SIM_SEED_BASE = 1000  # circuit i's simulation seed, the same in both paths
WARMUP_SEED = 999


@dataclass(frozen=True)
class Circuit:
    index: int  # -1: the warm-up
    source: str
    seed: int

    @property
    def label(self) -> str:
        return "warm-up" if self.index < 0 else f"c{self.index}"


def native_circuit(rng: random.Random) -> str:
    """DEPTH layers on the chain; each layer touches every qubit once (a CZ on a chain neighbour pair,
    else one of sx, x, rz(theta)), so the circuit's depth before measurement is exactly DEPTH."""
    lines = ["OPENQASM 2.0;", f"qreg q[{len(CHAIN)}];", f"creg c[{len(CHAIN)}];"]
    for _ in range(DEPTH):
        i = 0
        while i < len(CHAIN):
            if i + 1 < len(CHAIN) and rng.random() < 0.4:
                lines.append(f"cz q[{i}],q[{i + 1}];")
                i += 2
                continue
            gate = rng.choice(("sx", "x", "rz"))
            lines.append(f"rz({rng.uniform(-math.pi, math.pi):.6f}) q[{i}];" if gate == "rz" else f"{gate} q[{i}];")
            i += 1
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def make_circuits(n: int, snapshot: Snapshot) -> tuple[Circuit, list[Circuit]]:
    """The warm-up circuit and n deterministic pseudo-random circuits, checked against the snapshot."""
    coupled = {frozenset((e.source, e.target)) for e in snapshot.edges if str(e.status.value) == "AVAILABLE"}
    for a, b in itertools.pairwise(CHAIN):
        if frozenset((a, b)) not in coupled:
            raise SystemExit(f"{snapshot.device_id}: qubits {a} and {b} are not coupled by an available edge")
    circuits = [Circuit(i, native_circuit(random.Random(CIRCUIT_SEED_BASE + i)), SIM_SEED_BASE + i) for i in range(n)]
    warmup = Circuit(-1, native_circuit(random.Random(CIRCUIT_SEED_BASE - 1)), WARMUP_SEED)
    for c in [warmup, *circuits]:
        if violations := admissibility.check(c.source, "qasm2", snapshot):
            raise SystemExit(f"circuit {c.label} is not admissible on {snapshot.device_id}: {violations}")
    return warmup, circuits
