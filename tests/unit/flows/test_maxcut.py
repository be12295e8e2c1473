"""MaxCut: brute force, the graph cut out of a device's couplers, and the QAOA circuit's expectation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from device_registry import Snapshot, topologies
from flows.examples import maxcut
from flows.examples.estimate import bits_of


@pytest.mark.parametrize(
    ("n", "edges", "best"),
    [
        (5, [(0, 1), (1, 2), (2, 3), (3, 4)], 4),  # a path: bipartite, every edge cut
        (3, [(0, 1), (1, 2), (0, 2)], 2),  # a triangle: one edge always uncut
        (4, [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2)], 4),  # a square with a diagonal
    ],
)
def test_brute_force_finds_the_maximum_cut(n: int, edges: list[tuple[int, int]], best: int) -> None:
    assert maxcut.max_cut(n, edges) == best


def _connected(graph: maxcut.Graph) -> bool:
    reached, todo = {graph.nodes[0]}, [graph.nodes[0]]
    while todo:
        u = todo.pop()
        for a, b in graph.edges:
            for x, y in ((a, b), (b, a)):
                if x == u and y not in reached:
                    reached.add(y)
                    todo.append(y)
    return reached == set(graph.nodes)


@pytest.mark.parametrize("size", [4, 5, 6])
def test_the_graph_is_a_connected_group_of_fez_qubits_and_every_coupler_between_them(fez: Snapshot, size: int) -> None:
    graph = maxcut.graph_from_snapshot(fez, size)
    usable = {(min(e.source, e.target), max(e.source, e.target)) for e in fez.edges if e.available}
    assert len(graph.nodes) == size and all(fez.qubit(q).online for q in graph.nodes)
    assert set(graph.edges) == {p for p in itertools.combinations(graph.nodes, 2) if p in usable}
    assert _connected(graph)
    assert len(graph.edges) == size - 1  # heavy-hex has no cycle shorter than 12


def test_the_calibration_steers_the_graph_away_from_poor_couplers(fez: Snapshot) -> None:
    graph = maxcut.graph_from_snapshot(fez, 5)
    errors = {(min(e.source, e.target), max(e.source, e.target)): e.error for e in fez.edges if e.available}
    chosen = [errors[e] or 0.0 for e in graph.edges]
    median = float(np.median([v for v in errors.values() if v is not None]))
    assert max(chosen) < median


def test_a_device_without_enough_connected_qubits_has_no_graph() -> None:
    line = topologies.line(3, device_id="line-3")
    assert maxcut.graph_from_snapshot(line, 3).edges == ((0, 1), (1, 2))
    with pytest.raises(ValueError, match="no connected group of 4"):
        maxcut.graph_from_snapshot(line, 4)


def test_the_expected_cut_of_counts_is_the_mean_cut_of_the_samples() -> None:
    edges = [(0, 1), (1, 2)]
    # "010": bit 1 set -> both edges cut; "000": none; "001": bit 0 set -> edge (0, 1) cut.
    estimate = maxcut.expected_cut({"010": 2, "000": 1, "001": 1}, edges)
    assert estimate.value == pytest.approx((2 * 2 + 0 + 1) / 4)
    assert maxcut.best_sampled_cut({"010": 2, "000": 1}, edges) == 2
    assert maxcut.cut_size(bits_of("001"), edges) == 1


@pytest.mark.parametrize(("gamma", "beta"), [(0.5, 0.3), (0.84, 0.39), (-1.2, 0.1)])
def test_the_p1_circuit_gives_the_analytic_expected_cut_on_a_triangle_free_graph(
    fez: Snapshot, gamma: float, beta: float
) -> None:
    """Z. Wang, S. Hadfield, Z. Jiang, E. Rieffel, PRA 97, 022304 (2018), eq. for p = 1 without triangles:
    <C_uv> = 1/2 + sin(4 beta) sin(gamma) (cos^(d_u - 1) gamma + cos^(d_v - 1) gamma) / 4."""
    from qiskit.quantum_info import Statevector

    graph = maxcut.graph_from_snapshot(fez, 6)
    edges = graph.logical_edges
    qc = maxcut.circuit(graph, 1).remove_final_measurements(inplace=False)
    probabilities = Statevector(qc.assign_parameters(maxcut.parameter_values(qc, [gamma], [beta]))).probabilities()
    simulated = sum(
        p * maxcut.cut_size(bits_of(format(i, f"0{qc.num_qubits}b")), edges) for i, p in enumerate(probabilities)
    )
    degree = {q: sum(q in e for e in edges) for q in range(qc.num_qubits)}
    analytic = sum(
        0.5
        + np.sin(4 * beta) * np.sin(gamma) * (np.cos(gamma) ** (degree[u] - 1) + np.cos(gamma) ** (degree[v] - 1)) / 4
        for u, v in edges
    )
    assert simulated == pytest.approx(analytic, abs=1e-9)
