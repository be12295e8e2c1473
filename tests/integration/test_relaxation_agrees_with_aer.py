"""External reference for our noise derivation: the `relaxation` option against Qiskit-Aer's own
`NoiseModel.from_backend` on the same Fez calibration (TV <= 0.01 at high shot counts).

The reference backend is `SnapshotBackend(fez)`, whose Target test_ibm_importer checks
against IBM's own loader (FakeFez); so the chain IBM JSON -> snapshot -> noise is checked end to end.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from device_registry import Snapshot
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from harness.circuits import qasm2
from runner.circuit import parse
from runner.cli import main
from tests.conftest import MakeRunDir

SHOTS = 200_000
TOLERANCE = 0.01


def _random_chain(n: int, depth: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(depth):
        for q in range(n):
            lines.append(rng.choice(["sx", "x", "id", f"rz({rng.uniform(0, 6.28):.4f})"]) + f" q[{q}];")
        lines += [f"cz q[{q}],q[{q + 1}];" for q in range(rng.randint(0, 1), n - 1, 2)]
    return qasm2("\n".join(lines) + "\nmeasure q -> c;", qubits=n)


CIRCUITS = {
    "5-qubit random native chain": _random_chain(5, 8, seed=1),
    "3-qubit random native chain": _random_chain(3, 12, seed=2),
    "readout of |11111>": qasm2("x q;\nmeasure q -> c;", qubits=5),
    "long idle on an excited qubit": qasm2("x q[0];\n" + "id q[0];\nid q[1];\n" * 200 + "measure q -> c;"),
    "entangling pair on a different edge": qasm2(
        "sx q[3];\ncz q[3],q[4];\nsx q[4];\nrz(0.7) q[4];\nsx q[4];\nmeasure q[3] -> c[0];\nmeasure q[4] -> c[1];",
        qubits=5,
    ),
}


@pytest.fixture(scope="module")
def reference_noise(fez: Snapshot) -> NoiseModel:
    with pytest.warns(DeviceDefectsWarning, match="7 UNAVAILABLE"):
        backend = SnapshotBackend(fez)
    return NoiseModel.from_backend(backend)


def _tv(a: dict[str, int], b: dict[str, int]) -> float:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / (2 * SHOTS)


def _ours(make_run_dir: MakeRunDir, source: str, fez: Snapshot, model: str) -> dict[str, int]:
    run_dir: Path = make_run_dir(source, fez, shots=SHOTS, seed=11, options={"noise_model": model})
    assert main([str(run_dir)]) == 0
    return json.loads((run_dir / "result.json").read_text())["counts"]


def _reference(source: str, fez: Snapshot, noise: NoiseModel) -> dict[str, int]:
    simulator = AerSimulator(method="density_matrix", noise_model=noise, seed_simulator=29)
    return simulator.run(parse(source, "qasm2", fez), shots=SHOTS).result().get_counts()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CIRCUITS))
def test_the_relaxation_model_agrees_with_aer_from_backend(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel, name: str
) -> None:
    source = CIRCUITS[name]
    tv = _tv(_ours(make_run_dir, source, fez, "relaxation"), _reference(source, fez, reference_noise))
    assert tv <= TOLERANCE, f"{name}: TV {tv:.4f} against NoiseModel.from_backend"


def _issued(name: str, fez: Snapshot) -> str:
    """The issue's guard circuits, as a user makes them: Qiskit's own GHZ and QFT transpiled for Fez."""
    from qiskit import QuantumCircuit, qasm2, transpile
    from qiskit.circuit.library import QFTGate

    if name == "GHZ-8":
        circuit = QuantumCircuit(8)
        circuit.h(0)
        for q in range(7):
            circuit.cx(q, q + 1)
    else:
        circuit = QuantumCircuit(5)
        circuit.x([0, 2])
        circuit.append(QFTGate(5), range(5))
    circuit.measure_all()
    with pytest.warns(DeviceDefectsWarning):
        backend = SnapshotBackend(fez)
    layout = list(range(circuit.num_qubits))  # Fez's first row: a chain of couplers
    return qasm2.dumps(transpile(circuit, backend, initial_layout=layout, optimization_level=1, seed_transpiler=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["GHZ-8", "QFT-5"])
def test_ghz_8_and_qft_5_under_relaxation_agree_with_aer_from_backend(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel, name: str
) -> None:
    """Issue 19's regression guard: within TV 0.01 of `NoiseModel.from_backend` at 200,000 shots."""
    source = _issued(name, fez)
    tv = _tv(_ours(make_run_dir, source, fez, "relaxation"), _reference(source, fez, reference_noise))
    assert tv <= TOLERANCE, f"{name}: TV {tv:.4f} against NoiseModel.from_backend"


@pytest.mark.slow
def test_the_check_can_tell_models_apart(make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel) -> None:
    """The paper model ignores relaxation on idles, so the same comparison must fail for it."""
    source = CIRCUITS["long idle on an excited qubit"]
    tv = _tv(_ours(make_run_dir, source, fez, "paper"), _reference(source, fez, reference_noise))
    assert tv > 5 * TOLERANCE
