"""MaxCut on a device's couplers: the graph taken from a snapshot, brute force, and the p-layer QAOA circuit.

The graph is embedded on the hardware: its nodes are physical qubits and its edges are couplers, so
the QAOA circuit needs no routing. `graph_from_snapshot` grows a connected subgraph from the
device's coupling graph (available couplers between online qubits only), starting at each qubit of
the most-connected kind and preferring the best-calibrated couplers, and keeps the one with the
lowest total calibrated error (a device without calibration ties everywhere and yields the lowest
qubit numbers). On a heavy-hex device such as Fez every subgraph under 12 qubits is a tree.

QAOA (E. Farhi, J. Goldstone, S. Gutmann, arXiv:1411.4028) prepares
prod_l exp(-i beta_l B) exp(-i gamma_l C) |+>^n, with C = Σ_(u,v) (1 - Z_u Z_v)/2 the cut size and
B = Σ X; <C> is estimated from the counts, and the approximation ratio is <C> / max C.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from device_registry import Snapshot
from flows.examples.estimate import Bits, Estimate, mean_of


@dataclass(frozen=True)
class Graph:
    """Nodes are physical qubits; logical qubit i of the circuit (and classical bit i) is nodes[i]."""

    nodes: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def logical_edges(self) -> list[tuple[int, int]]:
        index = {q: i for i, q in enumerate(self.nodes)}
        return [(index[u], index[v]) for u, v in self.edges]


def graph_from_snapshot(snapshot: Snapshot, size: int) -> Graph:
    """A connected `size`-qubit subgraph of the device's usable couplers (see the module docstring)."""
    if size < 2:
        raise ValueError(f"a MaxCut graph needs at least 2 nodes, not {size}")
    weight: dict[tuple[int, int], float] = {}
    for e in snapshot.edges:
        if e.available and snapshot.qubit(e.source).online and snapshot.qubit(e.target).online:
            weight[(min(e.source, e.target), max(e.source, e.target))] = e.error or 0.0
    neighbours: dict[int, set[int]] = {}
    for u, v in weight:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    if not neighbours:
        raise ValueError(f"{snapshot.device_id} has no usable coupler")
    top = max(len(n) for n in neighbours.values())
    best: tuple[float, tuple[int, ...]] | None = None
    for start in sorted(q for q, n in neighbours.items() if len(n) == top):
        nodes = _grow(start, size, neighbours, weight)
        if nodes is None:
            continue
        cost = sum(w for (u, v), w in weight.items() if u in nodes and v in nodes)
        if best is None or (cost, nodes) < best:
            best = (cost, nodes)
    if best is None:
        raise ValueError(f"{snapshot.device_id} has no connected group of {size} usable qubits")
    nodes = best[1]
    edges = tuple(sorted((u, v) for (u, v) in weight if u in nodes and v in nodes))
    return Graph(nodes, edges)


def _grow(
    start: int, size: int, neighbours: Mapping[int, set[int]], weight: Mapping[tuple[int, int], float]
) -> tuple[int, ...] | None:
    """Add, one at a time, the outside neighbour reached by the lowest-error coupler (Prim's order)."""
    chosen = [start]
    while len(chosen) < size:
        frontier = [(weight[(min(u, v), max(u, v))], v, u) for u in chosen for v in neighbours[u] if v not in chosen]
        if not frontier:
            return None
        chosen.append(min(frontier)[1])
    return tuple(sorted(chosen))


def cut_size(bits: Bits, edges: Sequence[tuple[int, int]]) -> int:
    """Edges whose ends the bits put on different sides (edges over logical qubit indices)."""
    return sum(bits[u] != bits[v] for u, v in edges)


def max_cut(num_nodes: int, edges: Sequence[tuple[int, int]]) -> int:
    """The largest cut, by trying every assignment (the graphs here have a handful of nodes)."""
    if num_nodes > 20:
        raise ValueError(f"brute force over {num_nodes} nodes would take 2^{num_nodes} steps")
    return max(cut_size(bits, edges) for bits in itertools.product((0, 1), repeat=num_nodes))


def expected_cut(counts: Mapping[str, int], edges: Sequence[tuple[int, int]]) -> Estimate:
    """The mean cut size over the shots, with its standard error."""
    return mean_of(counts, lambda bits: cut_size(bits, edges))


def best_sampled_cut(counts: Mapping[str, int], edges: Sequence[tuple[int, int]]) -> int:
    from flows.examples.estimate import bits_of

    return max(cut_size(bits_of(key), edges) for key, n in counts.items() if n)


def circuit(graph: Graph, layers: int) -> Any:
    """The p-layer QAOA circuit over logical qubits, parameters gamma[0..p-1] and beta[0..p-1], all measured."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    if layers < 1:
        raise ValueError(f"QAOA needs at least one layer, not {layers}")
    n = len(graph.nodes)
    gammas, betas = ParameterVector("gamma", layers), ParameterVector("beta", layers)
    qc = QuantumCircuit(n, n, name=f"qaoa-p{layers}")
    qc.h(range(n))
    for layer in range(layers):
        for u, v in graph.logical_edges:
            # e^{-igamma(1 - ZZ)/2} is e^{+igamma ZZ/2} up to a global phase: RZZ(-gamma).
            qc.rzz(-gammas[layer], u, v)
        qc.rx(2 * betas[layer], range(n))
    qc.measure(range(n), range(n))
    return qc


def parameter_values(qc: Any, gammas: Sequence[float], betas: Sequence[float]) -> dict[Any, float]:
    """Bind by name, so the order Qiskit sorts the parameters in does not matter."""
    values = {f"gamma[{i}]": g for i, g in enumerate(gammas)} | {f"beta[{i}]": b for i, b in enumerate(betas)}
    return {p: values[p.name] for p in qc.parameters}
