"""External reference for idle noise: the runner under `relaxation` against Qiskit-Aer's own
`AerSimulator(noise_model=NoiseModel.from_backend(backend))` (whose `RelaxationNoisePass` relaxes
delays), run in-process on the same circuits, on a backend built from the same Fez snapshot.

T1-style and Hahn-echo-style circuits on a few Fez qubits, written with explicit delays; an
ALAP-scheduled, dynamically decoupled GHZ-3; and GHZ-8 and QFT-5 (with its inverse) transpiled for
the device, as they are and ALAP-scheduled (the issue's regression guard, now with idle time). A
scheduled circuit covers all 156 qubits; the reference gets it without the delays on the qubits
nothing else touches (removed with Qiskit's own DAG operations), which cannot change the counts:
with them, from_backend's pass would relax all 156 qubits and Aer would simulate every one.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qasm3, transpile
from qiskit.circuit import Delay
from qiskit.circuit.library import QFTGate, XGate
from qiskit.converters import circuit_to_dag, dag_to_circuit
from qiskit.transpiler import PassManager
from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDynamicalDecoupling
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from device_registry import Snapshot
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from runner.cli import main
from tests.conftest import MakeRunDir

SHOTS = 200_000
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def backend(fez: Snapshot) -> SnapshotBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return SnapshotBackend(fez)


@pytest.fixture(scope="module")
def reference_noise(backend: SnapshotBackend) -> NoiseModel:
    return NoiseModel.from_backend(backend)


def _t1_style() -> QuantumCircuit:
    """Three qubits excited, then left to decay for 20, 60 and 150 µs (one in dt: 15,000 dt = 60 µs)."""
    circuit = QuantumCircuit(3, 3)
    circuit.x([0, 1, 2])
    circuit.delay(20, 0, unit="us")
    circuit.delay(15_000, 1, unit="dt")
    circuit.delay(150e-6, 2, unit="s")
    circuit.measure(range(3), range(3))
    return circuit


def _hahn_echo() -> QuantumCircuit:
    """sx, wait, x, wait, sx on qubits 1 and 2 (T2 decay of the echo), 40 and 80 µs in all."""
    circuit = QuantumCircuit(3, 2)
    for qubit, half in ((1, 20), (2, 40)):
        circuit.sx(qubit)
        circuit.delay(half, qubit, unit="us")
        circuit.x(qubit)
        circuit.delay(half, qubit, unit="us")
        circuit.sx(qubit)
    circuit.measure([1, 2], [0, 1])
    return circuit


def _decoupled_ghz3(backend: SnapshotBackend) -> QuantumCircuit:
    circuit = QuantumCircuit(3, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.delay(30, 1, unit="us")
    circuit.cx(1, 2)
    circuit.measure(range(3), range(3))
    native = transpile(circuit, backend, initial_layout=[0, 1, 2], optimization_level=0)
    durations = backend.instruction_durations
    decoupled: QuantumCircuit = PassManager(
        [
            ALAPScheduleAnalysis(durations),
            PadDynamicalDecoupling(durations, dd_sequence=[XGate(), XGate()], target=backend.target),
        ]
    ).run(native)
    assert decoupled.num_qubits == 156
    return decoupled


def _without_idle_padding(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit without the delays on qubits nothing else touches (the qubits stay, idle)."""
    dag = circuit_to_dag(circuit)
    idle = set(dag.idle_wires(ignore=["delay", "barrier"]))
    for node in list(dag.op_nodes(Delay)):
        if node.qargs[0] in idle:
            dag.remove_op_node(node)
    return dag_to_circuit(dag)


def _ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n, n)
    circuit.h(0)
    for q in range(n - 1):
        circuit.cx(q, q + 1)
    circuit.measure(range(n), range(n))
    return circuit


def _qft(n: int) -> QuantumCircuit:
    """QFT-n then its inverse on a basis state: ideally that state again, so the counts have few outcomes
    and sampling alone moves them little (QFT-n alone is nearly uniform: 2^n outcomes, a sampling TV
    near 0.01 at these shots whatever the noise), while every gate's noise moves weight off it."""
    circuit = QuantumCircuit(n, n)
    circuit.x([0, 2])
    circuit.compose(QFTGate(n), range(n), inplace=True)
    circuit.compose(QFTGate(n).inverse(), range(n), inplace=True)
    circuit.measure(range(n), range(n))
    return circuit


def _for_fez(circuit: QuantumCircuit, backend: SnapshotBackend, scheduled: bool) -> QuantumCircuit:
    out: QuantumCircuit = transpile(
        circuit,
        backend,
        initial_layout=list(range(circuit.num_qubits)),
        seed_transpiler=3,
        scheduling_method="alap" if scheduled else None,
    )
    return out


def _tv(a: dict[str, int], b: dict[str, int]) -> float:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / (2 * SHOTS)


def _ours(make_run_dir: MakeRunDir, circuit: QuantumCircuit, fez: Snapshot) -> dict[str, object]:
    run_dir: Path = make_run_dir(
        qasm3.dumps(circuit), fez, dialect="qasm3", shots=SHOTS, seed=11, options={"noise_model": "relaxation"}
    )
    assert main([str(run_dir)]) == 0, (run_dir / "error.json").read_text()
    result: dict[str, object] = json.loads((run_dir / "result.json").read_text())
    return result


def _reference(circuit: QuantumCircuit, noise: NoiseModel) -> dict[str, int]:
    simulator = AerSimulator(method="density_matrix", noise_model=noise, seed_simulator=29)
    counts: dict[str, int] = simulator.run(circuit, shots=SHOTS).result().get_counts()
    return counts


GUARD = {
    "GHZ-8": lambda backend, scheduled: _for_fez(_ghz(8), backend, scheduled),
    "QFT-5": lambda backend, scheduled: _for_fez(_qft(5), backend, scheduled),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["t1-style", "hahn-echo"])
def test_idle_relaxation_agrees_with_aer_from_backend_on_explicit_delays(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel, name: str
) -> None:
    circuit = _t1_style() if name == "t1-style" else _hahn_echo()
    ours = _ours(make_run_dir, circuit, fez)
    counts = ours["counts"]
    assert isinstance(counts, dict)
    tv = _tv(counts, _reference(circuit, reference_noise))
    assert tv <= TOLERANCE, f"{name}: TV {tv:.4f} against NoiseModel.from_backend"
    provenance = ours["provenance"]
    assert isinstance(provenance, dict) and provenance["idle_noise"] == "thermal_relaxation"


@pytest.mark.slow
@pytest.mark.parametrize("scheduled", [False, True], ids=["as-transpiled", "alap"])
@pytest.mark.parametrize("name", list(GUARD))
def test_relaxation_agrees_with_aer_from_backend_on_ghz8_and_qft5(
    make_run_dir: MakeRunDir,
    fez: Snapshot,
    backend: SnapshotBackend,
    reference_noise: NoiseModel,
    name: str,
    scheduled: bool,
) -> None:
    circuit = GUARD[name](backend, scheduled)
    ours = _ours(make_run_dir, circuit, fez)
    counts = ours["counts"]
    assert isinstance(counts, dict)
    tv = _tv(counts, _reference(_without_idle_padding(circuit), reference_noise))
    assert tv <= TOLERANCE, f"{name} ({'alap' if scheduled else 'as transpiled'}): TV {tv:.4f} against from_backend"
    provenance = ours["provenance"]
    assert isinstance(provenance, dict)
    assert provenance["idle_noise"] == ("thermal_relaxation" if scheduled else "none")
    assert len(provenance["active_qubits"]) <= 8 and provenance["method"] == "density_matrix"


@pytest.mark.slow
def test_a_decoupled_alap_circuit_agrees_with_aer_and_simulates_only_its_qubits(
    make_run_dir: MakeRunDir, fez: Snapshot, backend: SnapshotBackend, reference_noise: NoiseModel
) -> None:
    circuit = _decoupled_ghz3(backend)
    ours = _ours(make_run_dir, circuit, fez)
    provenance = ours["provenance"]
    assert isinstance(provenance, dict)
    assert provenance["active_qubits"] == [0, 1, 2]
    assert provenance["method"] == "density_matrix"
    counts = ours["counts"]
    assert isinstance(counts, dict)
    tv = _tv(counts, _reference(_without_idle_padding(circuit), reference_noise))
    assert tv <= TOLERANCE, f"decoupled GHZ-3: TV {tv:.4f} against NoiseModel.from_backend"


@pytest.mark.slow
def test_the_check_can_tell_idle_noise_from_none(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel
) -> None:
    """Under `paper` delays are noiseless, so the same comparison must fail for it."""
    circuit = _t1_style()
    run_dir = make_run_dir(qasm3.dumps(circuit), fez, dialect="qasm3", shots=SHOTS, seed=11)
    assert main([str(run_dir)]) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["provenance"]["idle_noise"] == "none"
    assert _tv(result["counts"], _reference(circuit, reference_noise)) > 10 * TOLERANCE
