"""A task of Sampler or Estimator PUBs through the runner, against Aer's own primitives run in-process under
a noise model built independently of ours (`NoiseModel.from_backend` of the same Fez calibration, as
tests/integration/test_relaxation_agrees_with_aer.py builds it), and the behaviour a user sees: parameters
bound by declaration order, one seed one result, errors naming the PUB, counts refused over the limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm3
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives.containers import BindingsArray
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import EstimatorV2, SamplerV2

from device_registry import Snapshot
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from harness.circuits import qasm2
from harness.runner_process import ROOT
from runner.cli import main
from tests.conftest import MakeRunDir
from vqpu_protocol.codes import ErrorCode, ExitCode

SEED = 4321


@pytest.fixture(scope="module")
def reference_noise(fez: Snapshot) -> NoiseModel:
    with pytest.warns(DeviceDefectsWarning, match="7 UNAVAILABLE"):
        backend = SnapshotBackend(fez)
    return NoiseModel.from_backend(backend)


def _run(make_run_dir: MakeRunDir, snapshot: Snapshot, pubs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The runner's outcome for a PUB task: result.json's document, or error.json's."""
    shots = sum(p.get("shots", 0) * _bindings(p) for p in pubs["pubs"]) if pubs["kind"] == "sampler" else 0
    fields.setdefault("shots", shots)
    fields.setdefault("dialect", "qasm3")
    run_dir: Path = make_run_dir(None, snapshot, pubs=pubs, **fields)
    code = main([str(run_dir)])
    outcome = json.loads((run_dir / ("result.json" if code == 0 else "error.json")).read_text())
    return {"exit": code, **outcome}


def _bindings(pub: dict[str, Any]) -> int:
    return int(np.prod(pub["shape"])) if "shape" in pub else max(len(pub.get("parameter_values", [])), 1)


def _tv(a: dict[str, int], b: dict[str, int]) -> float:
    shots = sum(a.values())
    assert shots == sum(b.values())
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / (2 * shots)


# --- Sampler ---------------------------------------------------------------------------------------


def _sampler_circuit() -> tuple[QuantumCircuit, list[Parameter]]:
    """A parameterised 3-qubit circuit on Fez qubits 0-2 in native gates, measured into two registers."""
    theta = [Parameter("a"), Parameter("b"), Parameter("c")]
    q = QuantumRegister(3, "q")
    low, high = ClassicalRegister(2, "low"), ClassicalRegister(1, "high")
    qc = QuantumCircuit(q, low, high)
    for i in range(3):
        qc.sx(i)
        qc.rz(theta[i], i)
        qc.sx(i)
    qc.cz(0, 1)
    qc.sx(1)
    qc.cz(1, 2)
    qc.rz(theta[0], 2)
    qc.sx(2)
    qc.measure([0, 1], low)
    qc.measure(2, high[0])
    return qc, theta


SAMPLER_SHOTS = 20_000


@pytest.mark.slow
def test_sampler_pubs_agree_with_aers_sampler_under_independently_built_noise(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel
) -> None:
    qc, theta = _sampler_circuit()
    rng = np.random.default_rng(7)
    five = rng.uniform(0, 2 * np.pi, (5, 3))
    grid = rng.uniform(0, 2 * np.pi, (2, 3, 3))
    source = qasm3.dumps(qc)
    pubs = {
        "kind": "sampler",
        "pubs": [
            {"circuit": source, "parameter_values": five.tolist(), "shots": SAMPLER_SHOTS},
            {
                "circuit": source,
                "parameter_values": grid.reshape(6, 3).tolist(),
                "shape": [2, 3],
                "shots": SAMPLER_SHOTS,
            },
        ],
    }
    ours = _run(make_run_dir, fez, pubs, shots=SAMPLER_SHOTS * 11, options={"noise_model": "relaxation"})
    assert ours["exit"] == 0, ours
    assert ours["counts"] == {} and ours["shots"] == SAMPLER_SHOTS * 11
    results = ours["pubs"]["pubs"]
    assert [r["shape"] for r in results] == [[5], [2, 3]]
    assert [r["shots"] for r in results] == [SAMPLER_SHOTS] * 2
    for result in results:
        assert result["registers"] == [{"name": "low", "num_bits": 2}, {"name": "high", "num_bits": 1}]
        for counts in result["counts"]:  # the last-declared register first, as a circuit's counts
            assert {tuple(len(part) for part in key.split(" ")) for key in counts} == {(1, 2)}

    sampler = SamplerV2(
        seed=99, options={"backend_options": {"method": "density_matrix", "noise_model": reference_noise}}
    )
    reference = sampler.run(
        [
            (qc, BindingsArray({tuple(theta): five}), SAMPLER_SHOTS),
            (qc, BindingsArray({tuple(theta): grid}), SAMPLER_SHOTS),
        ]
    ).result()
    for result, expected in zip(results, reference, strict=True):
        for flat, index in enumerate(np.ndindex(*result["shape"])):
            joined = expected.join_data(["low", "high"]).get_counts(index)  # "high" bits left of "low"'s
            ours_flat = {key.replace(" ", ""): n for key, n in result["counts"][flat].items()}
            tv = _tv(ours_flat, joined)
            assert tv <= 0.03, f"binding {index}: TV {tv:.4f} against Aer's SamplerV2"


def test_a_sampler_pub_counts_as_the_same_circuit_task_does(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    """One code path for counts keys: a PUB without parameters, with the task's seed, is the circuit task."""
    source = (
        "OPENQASM 3.0;\nbit[2] a;\nbit[1] b;\nsx $0;\nsx $1;\ncz $0, $1;\nsx $2;\n"
        "a[0] = measure $0;\na[1] = measure $1;\nb[0] = measure $2;\n"
    )
    circuit_run = make_run_dir(source, fez, dialect="qasm3", shots=4000, seed=SEED)
    assert main([str(circuit_run)]) == 0
    circuit_counts = json.loads((circuit_run / "result.json").read_text())["counts"]
    ours = _run(make_run_dir, fez, {"kind": "sampler", "pubs": [{"circuit": source, "shots": 4000}]}, seed=SEED)
    assert ours["exit"] == 0, ours
    assert ours["pubs"]["pubs"][0]["counts"] == [circuit_counts]


def test_a_sampler_pubs_memory_is_the_same_circuit_tasks_memory_shot_for_shot(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    """options.memory on a sampler task: every binding's shots in the order sampled, keyed as its counts; a PUB
    without parameters with the task's seed is the circuit task, shot for shot (its memory is Aer's own)."""
    source = (
        "OPENQASM 3.0;\nbit[2] a;\nbit[1] b;\nsx $0;\nsx $1;\ncz $0, $1;\nsx $2;\n"
        "a[0] = measure $0;\na[1] = measure $1;\nb[0] = measure $2;\n"
    )
    circuit_run = make_run_dir(source, fez, dialect="qasm3", shots=300, seed=SEED, options={"memory": True})
    assert main([str(circuit_run)]) == 0
    circuit_memory = json.loads((circuit_run / "result.json").read_text())["memory"]
    pubs = {
        "kind": "sampler",
        "pubs": [{"circuit": source, "shots": 300}, {"circuit": source, "shots": 7, "shape": [2]}],
    }
    ours = _run(make_run_dir, fez, pubs, seed=SEED, options={"memory": True})
    assert ours["exit"] == 0, ours
    first, second = ours["pubs"]["pubs"]
    assert first["memory"] == [circuit_memory]
    assert [len(m) for m in second["memory"]] == [7, 7]
    for memory, counts in zip(second["memory"], second["counts"], strict=True):
        assert {k: memory.count(k) for k in set(memory)} == counts
    plain = _run(make_run_dir, fez, pubs, seed=SEED)
    assert [p.get("memory") for p in plain["pubs"]["pubs"]] == [None, None]  # only when asked


def test_memory_that_could_pass_the_limit_is_refused_before_simulating(
    make_run_dir: MakeRunDir, fez_ideal: Snapshot
) -> None:
    """90,000 shots of 12-bit outcomes make 1,080,000 characters of memory: over MAX_MEMORY_CHARS."""
    source = "OPENQASM 3.0;\nbit[12] c;\n" + "".join(f"c[{q}] = measure ${q};\n" for q in range(12))
    pubs = {"kind": "sampler", "pubs": [{"circuit": source, "shots": 30_000, "shape": [3]}]}
    ours = _run(make_run_dir, fez_ideal, pubs, options={"memory": True})
    assert (ours["exit"], ours["code"]) == (ExitCode.INVALID_PAYLOAD, ErrorCode.INVALID_OPTIONS), ours
    assert "1080000 characters" in ours["message"]


def test_a_pub_without_parameters_runs_every_binding_of_its_shape(
    make_run_dir: MakeRunDir, fez_ideal: Snapshot
) -> None:
    """Aer 0.18.2's SamplerV2 runs one experiment for such a PUB and returns all-zero outcomes for the rest."""
    source = "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n"
    ours = _run(
        make_run_dir, fez_ideal, {"kind": "sampler", "pubs": [{"circuit": source, "shots": 10, "shape": [2, 3]}]}
    )
    assert ours["exit"] == 0, ours
    assert ours["pubs"]["pubs"][0]["counts"] == [{"1": 10}] * 6


def test_parameters_bind_in_declaration_order_past_ten(make_run_dir: MakeRunDir, fez_ideal: Snapshot) -> None:
    """A ParameterVector's `_θ_10_` sorts before `_θ_2_` in `QuantumCircuit.parameters`; rows follow the source."""
    theta = ParameterVector("θ", 12)
    qc = QuantumCircuit(3, 3)
    for k in range(12):
        qc.rx(theta[k], k % 3)
    qc.measure(range(3), range(3))
    source = qasm3.dumps(qc)
    assert source.index("_θ_2_") < source.index("_θ_10_")
    rows = []
    for flipped in (10, 2, 0):  # rx(pi) flips qubit k % 3: 1, 2, 0
        row = [0.0] * 12
        row[flipped] = np.pi
        rows.append(row)
    ours = _run(
        make_run_dir,
        fez_ideal,
        {"kind": "sampler", "pubs": [{"circuit": source, "parameter_values": rows, "shots": 50}]},
    )
    assert ours["exit"] == 0, ours
    assert ours["pubs"]["pubs"][0]["counts"] == [{"010": 50}, {"100": 50}, {"001": 50}]


def test_same_seed_same_result(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    qc, _ = _sampler_circuit()
    pubs = {
        "kind": "sampler",
        "pubs": [
            {"circuit": qasm3.dumps(qc), "parameter_values": [[0.3, 1.1, 2.0], [1.0, 0.2, 0.4]], "shots": 500},
            {"circuit": qasm3.dumps(qc), "parameter_values": [[0.3, 1.1, 2.0]], "shots": 700},
        ],
    }
    first, again, other = (_run(make_run_dir, fez, pubs, seed=seed) for seed in (SEED, SEED, SEED + 1))
    assert first["exit"] == again["exit"] == other["exit"] == 0
    assert first["pubs"] == again["pubs"]
    assert first["pubs"] != other["pubs"]
    assert first["provenance"]["seed"] == SEED and first["provenance"]["active_qubits"] == [0, 1, 2]


# --- Estimator -------------------------------------------------------------------------------------

H2 = [("II", -1.0523), ("IZ", 0.3979), ("ZI", -0.3979), ("ZZ", -0.0112), ("XX", 0.1809), ("YY", 0.1809)]
"""An H2-like Hamiltonian (Qiskit's little-endian labels: the right character is the lower qubit)."""


def _ansatz() -> tuple[QuantumCircuit, list[Parameter]]:
    """A 2-parameter ansatz in native gates on Fez qubits 3 and 4 of a 5-qubit register."""
    theta = [Parameter("t0"), Parameter("t1")]
    qc = QuantumCircuit(5)
    qc.x(3)
    qc.sx(3)
    qc.rz(theta[0], 3)
    qc.sx(3)
    qc.sx(4)
    qc.rz(theta[1], 4)
    qc.sx(4)
    qc.cz(3, 4)
    qc.sx(4)
    qc.rz(theta[0], 4)
    qc.sx(4)
    return qc, theta


def _terms(labels: list[tuple[str, float]], qubits: tuple[int, int]) -> list[dict[str, Any]]:
    """Pauli terms on (low, high) device qubits, from little-endian two-character labels."""
    out = []
    for label, coeff in labels:
        paulis, on = [], []
        for pauli, qubit in zip(reversed(label), qubits, strict=True):
            if pauli != "I":
                paulis.append(pauli)
                on.append(qubit)
        out.append({"paulis": "".join(paulis), "qubits": on, "coeff": coeff})
    return out


def _estimator_case(fez: Snapshot) -> tuple[QuantumCircuit, list[Parameter], np.ndarray, dict[str, Any]]:
    qc, theta = _ansatz()
    values = np.array([[0.2, 1.3], [1.1, -0.4], [2.5, 0.9]])
    pub = {
        "circuit": qasm3.dumps(qc),
        "parameter_values": values.tolist(),
        "observables": [_terms(H2, (3, 4)), _terms([("ZZ", 1.0)], (3, 4))],
        "observables_shape": [2, 1],
    }
    return qc, theta, values, pub


def _reference_evs(qc: QuantumCircuit, theta: list[Parameter], values: np.ndarray, noise: NoiseModel) -> np.ndarray:
    width = qc.num_qubits
    h2 = SparsePauliOp.from_list([("III" + label, c) for label, c in H2]).apply_layout([3, 4, 0, 1, 2], width)
    zz = SparsePauliOp.from_list([("IIIZZ", 1.0)]).apply_layout([3, 4, 0, 1, 2], width)
    observables = np.empty((2, 1), dtype=object)  # np.array would iterate into each SparsePauliOp
    observables[0, 0], observables[1, 0] = h2, zz
    estimator = EstimatorV2(options={"backend_options": {"method": "density_matrix", "noise_model": noise}})
    result = estimator.run([(qc, observables, BindingsArray({tuple(theta): values}))]).result()[0]
    return np.asarray(result.data.evs)


@pytest.mark.slow
def test_estimator_exact_values_equal_aers_estimator_under_independently_built_noise(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel
) -> None:
    qc, theta, values, pub = _estimator_case(fez)
    ours = _run(make_run_dir, fez, {"kind": "estimator", "pubs": [pub]}, options={"noise_model": "relaxation"})
    assert ours["exit"] == 0, ours
    result = ours["pubs"]["pubs"][0]
    assert result["shape"] == [2, 3] and result["precision"] == 0.0 and result["stds"] == [0.0] * 6
    assert ours["shots"] == 0 and ours["provenance"]["method"] == "density_matrix"
    assert ours["provenance"]["active_qubits"] == [3, 4]
    expected = _reference_evs(qc, theta, values, reference_noise)
    assert expected.shape == (2, 3)
    np.testing.assert_allclose(result["evs"], expected.ravel(), rtol=0, atol=1e-6)
    ideal = _reference_evs(qc, theta, values, NoiseModel())
    assert np.max(np.abs(ideal - expected)) > 1e-3  # the noise matters here: the agreement is not trivial


@pytest.mark.slow
def test_estimator_precision_draws_values_of_that_width(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel
) -> None:
    qc, theta, values, pub = _estimator_case(fez)
    precision = 0.02
    ours = _run(
        make_run_dir,
        fez,
        {"kind": "estimator", "pubs": [pub | {"precision": precision}]},
        options={"noise_model": "relaxation"},
    )
    assert ours["exit"] == 0, ours
    result = ours["pubs"]["pubs"][0]
    assert result["precision"] == precision and result["stds"] == [precision] * 6
    exact = _reference_evs(qc, theta, values, reference_noise).ravel()
    deviations = (np.asarray(result["evs"]) - exact) / precision
    assert np.all(np.abs(deviations) < 5), deviations
    assert np.any(np.abs(deviations) > 1e-3)  # drawn, not the exact values


def test_estimator_under_trajectories_reports_the_averages_error(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    """A noisy statevector (method asked) averages over Aer's trajectories: stds holds their error, not 0."""
    _, _, _, pub = _estimator_case(fez)
    ours = _run(make_run_dir, fez, {"kind": "estimator", "pubs": [pub]}, options={"method": "statevector"})
    assert ours["exit"] == 0, ours
    result = ours["pubs"]["pubs"][0]
    bound_h2 = sum(abs(c) for label, c in H2 if label != "II") / np.sqrt(1024)
    np.testing.assert_allclose(result["stds"], [bound_h2] * 3 + [1 / np.sqrt(1024)] * 3)
    assert ours["provenance"]["method"] == "statevector"
    assert "values averaged over 1024 trajectories" in ours["provenance"]["method_reason"]


def test_estimator_noise_options_apply(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    qc, theta, values, pub = _estimator_case(fez)
    channels = ["gate_1q", "gate_2q", "readout", "relaxation"]
    ours = _run(
        make_run_dir,
        fez,
        {"kind": "estimator", "pubs": [pub]},
        options={"noise_model": "relaxation", "noise": {"disable": channels}},
    )
    assert ours["exit"] == 0, ours
    assert ours["provenance"]["noise_empty"] is True and ours["provenance"]["method"] == "statevector"
    ideal = _reference_evs(qc, theta, values, NoiseModel())
    np.testing.assert_allclose(ours["pubs"]["pubs"][0]["evs"], ideal.ravel(), rtol=0, atol=1e-9)


def test_an_observed_qubit_the_circuit_never_touches_is_simulated(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    pub = {
        "circuit": "OPENQASM 3.0;\nx $100;\n",
        "observables": [
            [{"paulis": "Z", "qubits": [100], "coeff": 1.0}],
            [{"paulis": "Z", "qubits": [7], "coeff": 2.0}],
            [{"paulis": "ZZ", "qubits": [7, 100], "coeff": 1.0}, {"paulis": "", "qubits": [], "coeff": 0.5}],
        ],
    }
    ours = _run(make_run_dir, fez, {"kind": "estimator", "pubs": [pub]})
    assert ours["exit"] == 0, ours
    evs = ours["pubs"]["pubs"][0]["evs"]
    assert ours["provenance"]["active_qubits"] == [7, 100]
    assert evs[0] < -0.9 and evs[1] == pytest.approx(2.0) and evs[2] == pytest.approx(evs[0] + 0.5)


# --- errors ----------------------------------------------------------------------------------------


def test_a_row_of_the_wrong_width_is_an_invalid_task_naming_the_pub(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    qc, _ = _sampler_circuit()
    good = {"circuit": qasm3.dumps(qc), "parameter_values": [[0.1, 0.2, 0.3]], "shots": 10}
    bad = good | {"parameter_values": [[0.1, 0.2]]}
    ours = _run(make_run_dir, fez, {"kind": "sampler", "pubs": [good, bad]})
    assert ours["exit"] == 2
    assert ours["code"] == "INVALID_TASK" and ours["message"].startswith("pubs[1]: ")
    assert ours["detail"]["pub"] == 1 and ours["detail"]["inputs"] == ["a", "b", "c"]


def test_a_pub_off_the_device_fails_as_the_same_circuit_does(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    off = "OPENQASM 3.0;\nbit[2] c;\ncz $0, $5;\nc[0] = measure $0;\nc[1] = measure $5;\n"
    circuit_run = make_run_dir(off, fez, dialect="qasm3")
    assert main([str(circuit_run)]) == 2
    as_circuit = json.loads((circuit_run / "error.json").read_text())
    fine = {"circuit": "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n", "shots": 10}
    ours = _run(make_run_dir, fez, {"kind": "sampler", "pubs": [fine, fine, fine, {"circuit": off, "shots": 10}]})
    assert ours["exit"] == 2
    assert ours["code"] == as_circuit["code"] == "NOT_ADMISSIBLE"
    assert ours["message"] == f"pubs[3]: {as_circuit['message']}"


def test_counts_that_could_pass_the_limit_are_refused_before_simulating(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    source = "OPENQASM 3.0;\nbit[20] c;\nx $0;\nc = measure $0;\n".replace("c = measure $0;", "c[0] = measure $0;")
    ours = _run(make_run_dir, fez, {"kind": "sampler", "pubs": [{"circuit": source, "shots": 100_000, "shape": [10]}]})
    assert ours["exit"] == 2 and ours["code"] == "TOO_LARGE", ours
    assert ours["detail"]["chars"] > ours["detail"]["limit"]


def test_an_observable_off_the_device_is_an_invalid_task(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    pub = {
        "circuit": "OPENQASM 3.0;\nx $0;\n",
        "observables": [[{"paulis": "Z", "qubits": [fez.num_qubits], "coeff": 1}]],
    }
    ours = _run(make_run_dir, fez, {"kind": "estimator", "pubs": [pub, pub]})
    assert ours["exit"] == 2 and ours["code"] == "INVALID_TASK"
    assert ours["message"].startswith("pubs[0]: observables[0] acts on qubit")


@pytest.mark.slow
def test_estimator_delays_relax_as_aers_own_noise_model_relaxes_them(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel
) -> None:
    """Idle relaxation on the PUB path: `from_backend`'s model relaxes delays by its own noise pass."""
    t = Parameter("t")
    qc = QuantumCircuit(6)
    qc.x(5)
    qc.rz(t, 5)
    qc.sx(5)
    qc.delay(40, 5, unit="us")
    qc.sx(5)
    values = np.array([[0.0], [1.0]])
    z = [{"paulis": "Z", "qubits": [5], "coeff": 1.0}]
    pub = {"circuit": qasm3.dumps(qc), "parameter_values": values.tolist(), "observables": [z]}
    ours = _run(make_run_dir, fez, {"kind": "estimator", "pubs": [pub]}, options={"noise_model": "relaxation"})
    assert ours["exit"] == 0, ours
    assert ours["provenance"]["idle_noise"] == "thermal_relaxation"
    estimator = EstimatorV2(options={"backend_options": {"method": "density_matrix", "noise_model": reference_noise}})
    observable = SparsePauliOp.from_sparse_list([("Z", [5], 1.0)], num_qubits=6)
    expected = estimator.run([(qc, observable, BindingsArray({(t,): values}))]).result()[0].data.evs
    np.testing.assert_allclose(ours["pubs"]["pubs"][0]["evs"], np.ravel(expected), rtol=0, atol=1e-6)
    without = qc.copy_empty_like()
    for inst in qc.data:
        if inst.operation.name != "delay":
            without.append(inst)
    undelayed = estimator.run([(without, observable, BindingsArray({(t,): values}))]).result()[0].data.evs
    assert np.max(np.abs(np.ravel(undelayed) - np.ravel(expected))) > 1e-3  # the delay matters here


def test_a_pub_task_at_its_wall_time_limit_is_stopped(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    """The runner process's watchdog bounds a PUB task as it bounds a circuit task (runner.limits)."""
    long = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)  # noisy on Fez: seconds a shot
    pubs = {"kind": "sampler", "pubs": [{"circuit": long, "shots": 100}]}
    run_dir = make_run_dir(None, fez, pubs=pubs, shots=100, limits={"max_runtime_s": 2.0})
    code = "from runner.cli import process_main\nraise SystemExit(process_main())"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == ExitCode.SIMULATION_FAILED, done.stderr
    assert time.monotonic() - began < 2.0 + 5.0
    assert not (run_dir / "result.json").exists()
    assert json.loads((run_dir / "error.json").read_text())["code"] == ErrorCode.TIME_LIMIT_EXCEEDED
