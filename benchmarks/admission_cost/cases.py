"""The circuits the admission-cost benchmark prices and runs: layered native circuits on a chain of Fez.

Each layer is sx and rz on every qubit of the chain, then cz on alternate couplings of it; a dynamic
circuit measures and resets its first qubit halfway. Widths, depths, shots, noise and methods are
spread so each term of the cost model (vqpu_protocol.pricing.Cost) is exercised by several cases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from device_registry import Snapshot


@dataclass(frozen=True)
class Case:
    name: str
    device: str
    qubits: int
    layers: int
    shots: int
    options: dict[str, Any]
    dynamic: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ideal(n: int, layers: int, shots: int, **options: Any) -> Case:
    tag = "".join(f"-{k}={v}" for k, v in options.items())
    return Case(f"ideal-sv-{n}q-{layers}l-{shots}s{tag}", "ibm-fez-ideal", n, layers, shots, options)


CASES: tuple[Case, ...] = (
    # ideal statevector: one pass, then sampling
    *(_ideal(n, layers, 1000) for n, layers in ((2, 4), (6, 16), (10, 16), (14, 16), (18, 8), (20, 8), (22, 4))),
    _ideal(24, 2, 1000),
    _ideal(12, 4, 100_000),
    _ideal(20, 2, 60_000),  # 60,000 20-bit keys: just under MAX_COUNTS_CHARS
    _ideal(22, 4, 1000, precision="single"),
    _ideal(4, 4000, 1000),  # long circuits: what parsing and each operation cost, in time and memory
    _ideal(8, 1500, 1000),
    # ideal, dynamic (a mid-circuit measurement and reset): every shot its own pass
    *(
        Case(f"dynamic-sv-{n}q-4l-{s}s", "ibm-fez-ideal", n, 4, s, {}, dynamic=True)
        for n, s in ((6, 1000), (10, 500), (14, 200), (16, 100))
    ),
    # noisy statevector trajectories (paper, relaxation)
    *(
        Case(f"noisy-sv-{n}q-{layers}l-{s}s", "ibm-fez", n, layers, s, {})
        for n, layers, s in ((11, 4, 1000), (12, 4, 200), (14, 4, 200), (14, 2, 1000), (16, 4, 100))
    ),
    *(
        Case(f"relaxation-sv-{n}q-{layers}l-{s}s", "ibm-fez", n, layers, s, {"noise_model": "relaxation"})
        for n, layers, s in ((12, 4, 200), (14, 2, 100))
    ),
    # density matrix (noisy, <= 10 qubits)
    *(
        Case(f"noisy-dm-{n}q-{layers}l-1000s", "ibm-fez", n, layers, 1000, {})
        for n, layers in ((2, 4), (4, 8), (6, 8), (8, 8), (9, 4), (10, 4))
    ),
    *(Case(f"relaxation-dm-{n}q-4l-1000s", "ibm-fez", n, 4, 1000, {"noise_model": "relaxation"}) for n in (6, 8)),
    # matrix product state
    *(
        Case(f"ideal-mps-{n}q-{layers}l-1000s", "ibm-fez-ideal", n, layers, 1000, {"method": "matrix_product_state"})
        for n, layers in ((24, 4), (40, 4), (60, 2), (16, 12))
    ),
    Case("noisy-mps-20q-2l-100s", "ibm-fez", 20, 2, 100, {"method": "matrix_product_state"}),
)


def chain(snapshot: Snapshot, length: int) -> list[int]:
    """A path of `length` ONLINE qubits joined by AVAILABLE couplings, found depth-first from qubit 0."""
    neighbours: dict[int, list[int]] = {}
    for (a, b), edge in snapshot.couplings().items():
        if edge.available and snapshot.qubits[a].online and snapshot.qubits[b].online:
            neighbours.setdefault(a, []).append(b)
    for start in sorted(neighbours):
        path = _extend([start], neighbours, length)
        if path is not None:
            return path
    raise ValueError(f"{snapshot.device_id} has no chain of {length} qubits")


def _extend(path: list[int], neighbours: dict[int, list[int]], length: int) -> list[int] | None:
    if len(path) == length:
        return path
    for nxt in sorted(neighbours.get(path[-1], ())):
        if nxt not in path:
            found = _extend([*path, nxt], neighbours, length)
            if found is not None:
                return found
    return None


def qasm(case: Case, path: list[int]) -> str:
    n = len(path)
    lines = ["OPENQASM 2.0;", f"qreg q[{max(path) + 1}];", f"creg c[{n}];"]
    half = case.layers // 2
    for layer in range(case.layers):
        if case.dynamic and layer == half:
            lines += [f"measure q[{path[0]}] -> c[0];", f"reset q[{path[0]}];"]
        lines += [f"sx q[{p}];" for p in path]
        lines += [f"rz({0.1 + 0.01 * (i + layer):.4f}) q[{p}];" for i, p in enumerate(path)]
        lines += [f"cz q[{path[i]}],q[{path[i + 1]}];" for i in range(layer % 2, n - 1, 2)]
    lines += [f"measure q[{p}] -> c[{i}];" for i, p in enumerate(path)]
    return "\n".join(lines) + "\n"
