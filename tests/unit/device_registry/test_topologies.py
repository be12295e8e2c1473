"""Topology builders: sizes, connectivity facts, null calibration, and heavy-hex against IBM Fez."""

from __future__ import annotations

import gzip
import json
from collections import Counter, deque
from collections.abc import Callable
from importlib import resources

import pytest

from device_registry import EdgeStatus, QubitStatus, Snapshot, topologies

Builder = Callable[[], Snapshot]


def _neighbours(snap: Snapshot) -> dict[int, set[int]]:
    adj: dict[int, set[int]] = {q: set() for q in range(snap.num_qubits)}
    for e in snap.edges:
        adj[e.source].add(e.target)
        adj[e.target].add(e.source)
    return adj


def _degrees(snap: Snapshot) -> list[int]:
    adj = _neighbours(snap)
    return [len(adj[q]) for q in range(snap.num_qubits)]


def _distances_from(snap: Snapshot, start: int) -> dict[int, int]:
    adj, dist, todo = _neighbours(snap), {start: 0}, deque([start])
    while todo:
        q = todo.popleft()
        for n in adj[q] - set(dist):
            dist[n] = dist[q] + 1
            todo.append(n)
    return dist


def _connected(snap: Snapshot) -> bool:
    return len(_distances_from(snap, 0)) == snap.num_qubits


def _bipartite(snap: Snapshot) -> bool:
    dist = _distances_from(snap, 0)
    return all(dist[e.source] % 2 != dist[e.target] % 2 for e in snap.edges)


def _shortest_cycle(snap: Snapshot) -> int | None:
    """Girth by BFS from every qubit (fine for a few hundred qubits)."""
    adj, best = _neighbours(snap), None
    for start in adj:
        dist, parent, todo = {start: 0}, {start: -1}, deque([start])
        while todo:
            q = todo.popleft()
            for n in adj[q]:
                if n not in dist:
                    dist[n], parent[n] = dist[q] + 1, q
                    todo.append(n)
                elif parent[q] != n:
                    length = dist[q] + dist[n] + 1
                    best = length if best is None else min(best, length)
    return best


SIZES = [
    pytest.param(lambda: topologies.line(7), 7, 6, id="line-7"),
    pytest.param(lambda: topologies.ring(9), 9, 9, id="ring-9"),
    pytest.param(lambda: topologies.star(6), 6, 5, id="star-6"),
    pytest.param(lambda: topologies.grid(3, 4), 12, 17, id="grid-3x4"),
    pytest.param(lambda: topologies.grid(1, 5), 5, 4, id="grid-1x5"),
    pytest.param(lambda: topologies.all_to_all(6), 6, 15, id="all-to-all-6"),
    pytest.param(lambda: topologies.heavy_hex(8, 16), 156, 176, id="heavy-hex-fez"),
    pytest.param(lambda: topologies.heavy_hex(1, 5), 5, 4, id="heavy-hex-one-row"),
    pytest.param(lambda: topologies.from_edges(4, [(0, 1), (2, 3)]), 4, 2, id="from-edges"),
]


@pytest.mark.parametrize(("build", "qubits", "edges"), SIZES)
def test_each_builder_makes_the_expected_number_of_qubits_and_couplings(
    build: Builder, qubits: int, edges: int
) -> None:
    snap = build()
    assert snap.num_qubits == qubits
    assert len(snap.edges) == edges
    assert [q.index for q in snap.qubits] == list(range(qubits))


@pytest.mark.parametrize(("build", "qubits", "edges"), SIZES)
def test_every_builder_yields_an_ideal_fully_available_device(build: Builder, qubits: int, edges: int) -> None:
    snap = build()
    for q in snap.qubits:
        assert q.status is QubitStatus.ONLINE
        assert (q.t1, q.t2, q.error_1q, q.readout_error, q.prob_meas0_prep1, q.prob_meas1_prep0) == (None,) * 6
        assert q.gate_durations == {}
    for e in snap.edges:
        assert (e.status, e.error, e.duration) == (EdgeStatus.AVAILABLE, None, None)
    assert not snap.directed
    assert snap.two_qubit_gates() == {"cz"}
    assert set(snap.native_gates) == {"cz", "id", "rz", "sx", "x"}


def test_a_line_is_connected_with_two_ends_of_degree_one() -> None:
    snap = topologies.line(7)
    assert _connected(snap)
    assert Counter(_degrees(snap)) == {1: 2, 2: 5}
    assert _distances_from(snap, 0)[6] == 6


def test_a_ring_has_degree_two_everywhere_and_one_cycle_through_all_qubits() -> None:
    snap = topologies.ring(9)
    assert set(_degrees(snap)) == {2}
    assert _connected(snap)
    assert _shortest_cycle(snap) == 9


def test_a_star_hub_touches_every_other_qubit_and_the_leaves_only_the_hub() -> None:
    snap = topologies.star(6)
    assert _degrees(snap) == [5, 1, 1, 1, 1, 1]
    assert set(_neighbours(snap)[0]) == {1, 2, 3, 4, 5}


def test_a_grid_has_corners_of_degree_two_and_interior_of_degree_four() -> None:
    snap = topologies.grid(3, 4)
    assert Counter(_degrees(snap)) == {2: 4, 3: 6, 4: 2}
    assert _connected(snap) and _bipartite(snap)
    assert _shortest_cycle(snap) == 4
    assert _distances_from(snap, 0)[11] == 2 + 3  # Manhattan distance corner to corner


def test_all_to_all_couples_every_pair() -> None:
    snap = topologies.all_to_all(6)
    assert set(_degrees(snap)) == {5}
    assert {frozenset((e.source, e.target)) for e in snap.edges} == {
        frozenset((a, b)) for a in range(6) for b in range(6) if a != b
    }


@pytest.mark.parametrize(("rows", "row_length"), [(2, 8), (3, 12), (5, 16), (8, 16)])
def test_a_heavy_hex_lattice_is_connected_bipartite_and_never_joins_two_degree_three_qubits(
    rows: int, row_length: int
) -> None:
    snap = topologies.heavy_hex(rows, row_length)
    degrees = _degrees(snap)
    assert _connected(snap) and _bipartite(snap)
    assert max(degrees) == 3
    assert set(degrees) <= {1, 2, 3}
    assert all(min(degrees[e.source], degrees[e.target]) <= 2 for e in snap.edges)


@pytest.mark.parametrize(("rows", "row_length"), [(3, 12), (8, 16)])
def test_the_smallest_cycle_of_a_heavy_hex_lattice_is_a_twelve_qubit_hexagon(rows: int, row_length: int) -> None:
    assert _shortest_cycle(topologies.heavy_hex(rows, row_length)) == 12


def test_heavy_hex_8_by_16_is_exactly_the_coupling_graph_of_ibm_fez() -> None:
    conf_path = resources.files("device_registry") / "data" / "ibm" / "conf_fez.json.gz"
    conf = json.loads(gzip.decompress(conf_path.read_bytes()))
    fez_graph = {frozenset(pair) for pair in conf["coupling_map"]}
    snap = topologies.heavy_hex(8, 16)
    assert snap.num_qubits == conf["n_qubits"]
    assert {frozenset((e.source, e.target)) for e in snap.edges} == fez_graph


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: topologies.line(1), id="line-1"),
        pytest.param(lambda: topologies.ring(2), id="ring-2"),
        pytest.param(lambda: topologies.star(1), id="star-1"),
        pytest.param(lambda: topologies.all_to_all(1), id="all-to-all-1"),
        pytest.param(lambda: topologies.grid(0, 4), id="grid-0x4"),
        pytest.param(lambda: topologies.grid(4, -1), id="grid-4x-1"),
        pytest.param(lambda: topologies.grid(1, 1), id="grid-1x1"),
        pytest.param(lambda: topologies.heavy_hex(0, 16), id="heavy-hex-0-rows"),
        pytest.param(lambda: topologies.heavy_hex(2, 3), id="heavy-hex-short-rows"),
    ],
)
def test_a_size_too_small_for_the_family_raises_value_error(build: Builder) -> None:
    with pytest.raises(ValueError, match="at least"):
        build()


def test_builders_accept_a_device_id_and_default_to_a_descriptive_one() -> None:
    assert topologies.grid(2, 3).device_id == "grid-2x3"
    assert topologies.ring(5, device_id="my-ring").device_id == "my-ring"


def test_from_edges_on_a_directed_device_keeps_each_direction_and_collapses_repeats() -> None:
    snap = topologies.from_edges(3, [(0, 1), (1, 0), (0, 1), (2, 1), (2, 1)], directed=True)
    assert snap.directed
    assert [(e.source, e.target) for e in snap.edges] == [(0, 1), (1, 0), (2, 1)]
    assert set(snap.couplings()) == {(0, 1), (1, 0), (2, 1)}


def test_from_edges_on_an_undirected_device_lists_each_coupling_once() -> None:
    snap = topologies.from_edges(3, [(1, 0), (0, 1), (2, 1), (1, 2)])
    assert len(snap.edges) == 2
    assert set(snap.couplings()) == {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_from_edges_adds_a_custom_two_qubit_gate_to_the_native_set() -> None:
    snap = topologies.from_edges(2, [(0, 1)], native_gates=("rz", "sx", "x"), two_qubit_gate="ecr", directed=True)
    assert snap.native_gates == ["ecr", "rz", "sx", "x"]
    assert snap.edges[0].gate == "ecr"


def test_from_edges_rejects_an_edge_to_a_qubit_the_device_does_not_have() -> None:
    with pytest.raises(ValueError, match="unknown qubit 5"):
        topologies.from_edges(3, [(0, 5)])
