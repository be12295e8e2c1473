"""Topology builders: each returns a snapshot with ideal (null) calibration.

A synthetic device executes every control-flow construct (`if_else`, `for_loop`, `while_loop`,
`switch_case`) unless it is built with fewer: it models no hardware's limits, only its graph.

Qubits are numbered as IBM numbers them where a family comes from IBM (heavy-hex: row-major,
bridge qubits between the rows they join), and row-major everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from device_registry.snapshot import CONTROL_FLOW, Snapshot, parse_snapshot

DEFAULT_NATIVE_GATES = ("cz", "id", "rz", "sx", "x")
Pair = tuple[int, int]


def from_edges(
    num_qubits: int,
    edges: Iterable[Sequence[int]],
    *,
    device_id: str = "custom",
    directed: bool = False,
    native_gates: Sequence[str] = DEFAULT_NATIVE_GATES,
    two_qubit_gate: str = "cz",
    control_flow: Sequence[str] = CONTROL_FLOW,
) -> Snapshot:
    """A device from an edge list; an undirected device keeps each coupling once."""
    seen: set[Pair] = set()
    listed: list[dict[str, object]] = []
    for raw in edges:
        a, b = int(raw[0]), int(raw[1])
        key = (a, b) if directed else (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            listed.append({"source": key[0], "target": key[1], "gate": two_qubit_gate})
    return parse_snapshot(
        {
            "device_id": device_id,
            "source": {"kind": "synthetic", "name": device_id},
            "num_qubits": num_qubits,
            "native_gates": sorted(set(native_gates) | {two_qubit_gate}),
            "directed": directed,
            "qubits": [{"index": i} for i in range(num_qubits)],
            "edges": listed,
            "control_flow": list(control_flow),
        }
    )


def line(n: int, **kw: object) -> Snapshot:
    _at_least(n, 2, "line")
    return _build(n, [(i, i + 1) for i in range(n - 1)], f"line-{n}", kw)


def ring(n: int, **kw: object) -> Snapshot:
    _at_least(n, 3, "ring")
    return _build(n, [(i, (i + 1) % n) for i in range(n)], f"ring-{n}", kw)


def star(n: int, **kw: object) -> Snapshot:
    """Qubit 0 is the hub; n counts the hub."""
    _at_least(n, 2, "star")
    return _build(n, [(0, i) for i in range(1, n)], f"star-{n}", kw)


def all_to_all(n: int, **kw: object) -> Snapshot:
    _at_least(n, 2, "all-to-all")
    return _build(n, [(a, b) for a in range(n) for b in range(a + 1, n)], f"all-to-all-{n}", kw)


def grid(rows: int, cols: int, **kw: object) -> Snapshot:
    _at_least(rows, 1, "grid rows")
    _at_least(cols, 1, "grid cols")
    if rows * cols < 2:
        raise ValueError("a grid needs at least 2 qubits")
    edges: list[Pair] = []
    for r in range(rows):
        for c in range(cols):
            q = r * cols + c
            if c + 1 < cols:
                edges.append((q, q + 1))
            if r + 1 < rows:
                edges.append((q, q + cols))
    return _build(rows * cols, edges, f"grid-{rows}x{cols}", kw)


def heavy_hex(rows: int, row_length: int, **kw: object) -> Snapshot:
    """IBM's heavy-hex lattice as on Heron/Eagle chips.

    `rows` lines of `row_length` qubits; between consecutive lines a bridge qubit every 4th column,
    at columns 3, 7, 11, ... below even lines and 1, 5, 9, ... below odd lines (0-based), numbered
    after the line above it. heavy_hex(8, 16) is the 156-qubit graph of IBM Fez and Kingston (Heron r2).
    """
    _at_least(rows, 1, "heavy-hex rows")
    _at_least(row_length, 4, "heavy-hex row length")
    edges: list[Pair] = []
    start = 0
    for r in range(rows):
        line_qubits = list(range(start, start + row_length))
        edges += [(line_qubits[i], line_qubits[i + 1]) for i in range(row_length - 1)]
        start += row_length
        if r + 1 == rows:
            break
        columns = list(range(3 if r % 2 == 0 else 1, row_length, 4))
        below_start = start + len(columns)
        for k, col in enumerate(columns):
            bridge = start + k
            edges += [(line_qubits[col], bridge), (bridge, below_start + col)]
        start = below_start
    return _build(start, edges, f"heavy-hex-{rows}x{row_length}", kw)


def _build(n: int, edges: list[Pair], default_id: str, kw: dict[str, object]) -> Snapshot:
    kw.setdefault("device_id", default_id)
    return from_edges(n, edges, **kw)  # type: ignore[arg-type]


def _at_least(value: int, minimum: int, what: str) -> None:
    if value < minimum:
        raise ValueError(f"{what} needs at least {minimum}, got {value}")
