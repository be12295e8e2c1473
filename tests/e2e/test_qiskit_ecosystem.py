"""Third-party Qiskit tools, unmodified, against `VQPUProvider(...).get_backend("ibm-fez")` on the real local
stack: qiskit-experiments' StandardRB and LocalReadoutError through `exp.run(backend)` (which deep-copies
the backend and passes IBM's run options), and mthree's calibration and correction. Each result is checked
against the calibration in the device's snapshot.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from typing import Any

import pytest
from qiskit import QuantumCircuit, transpile

from device_registry.qiskit_backend import DeviceDefectsWarning
from vqpu_client.qiskit import VQPUBackend, VQPUProvider

pytestmark = [
    pytest.mark.slow,
    # The tools' own deprecations (of each other and of Qiskit APIs) are not what these tests are about.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
WAIT_S = 300.0
RB_QUBIT = 0
"""Fez's qubit 0 has the largest sx error of the first row (7.6e-4): its decay shows within a few hundred Cliffords."""
READOUT_QUBITS = [1, 2]
GHZ_QUBITS = [1, 2, 3]


@pytest.fixture(scope="module")
def fez(provider: VQPUProvider) -> VQPUBackend:
    with warnings.catch_warnings():  # said once, at the line that asked; tests/unit/client checks where
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return provider.get_backend("ibm-fez")


def _analysed(exp: Any, backend: VQPUBackend, result: str) -> Any:
    """`exp` run the default way, `exp.run(backend)`, and the value of its analysis result `result`."""
    data = exp.run(backend).block_for_results(timeout=WAIT_S)
    assert data.status().name == "DONE", data.errors()
    return data.analysis_results(result, dataframe=True).iloc[0].value


def _ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, n, name=f"ghz-{n}")
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    qc.measure(range(n), range(n))
    return qc


def test_a_deep_copy_and_an_unpickled_backend_run_circuits_on_the_service(fez: VQPUBackend) -> None:
    isa = transpile(_ghz(2), fez, initial_layout=[1, 2], seed_transpiler=1)
    for twin in (copy.deepcopy(fez), pickle.loads(pickle.dumps(fez))):
        counts = twin.run(isa, shots=500, seed_simulator=3).result(timeout=WAIT_S).get_counts()
        assert sum(counts.values()) == 500 and counts.get("00", 0) + counts.get("11", 0) > 450, counts
    assert fez.options.shots == 1024  # the copies' runs changed nothing of the original


def test_qiskit_experiments_standard_rb_through_exp_run_gives_the_calibrated_sx_error(fez: VQPUBackend) -> None:
    from qiskit_experiments.library import StandardRB

    calibrated = fez.snapshot.qubits[RB_QUBIT].error_1q
    assert calibrated is not None
    exp = StandardRB([RB_QUBIT], lengths=[1, 100, 250, 500, 800, 1200], num_samples=3, seed=7)
    exp.set_run_options(shots=1000, seed_simulator=7)
    epg = _analysed(exp, fez, "EPG_sx")
    print(f"RB on Fez qubit {RB_QUBIT}: EPG_sx {epg} (calibrated {calibrated:.3e})")
    assert abs(epg.nominal_value - calibrated) < 0.25 * calibrated


def test_qiskit_experiments_local_readout_error_matches_the_snapshots_readout_probabilities(
    relaxed: VQPUBackend,  # asymmetric readout from prob_meas
) -> None:
    from qiskit_experiments.library import LocalReadoutError

    shots = 10_000
    exp = LocalReadoutError(READOUT_QUBITS)
    exp.set_run_options(shots=shots, seed_simulator=11)
    mitigator = _analysed(exp, relaxed, "Local Readout Mitigator")
    for qubit in READOUT_QUBITS:
        cal = relaxed.snapshot.qubits[qubit]
        assert cal.prob_meas1_prep0 is not None and cal.prob_meas0_prep1 is not None
        measured = mitigator.assignment_matrix(qubit)  # column: prepared state, row: measured outcome
        expected = [[1 - cal.prob_meas1_prep0, cal.prob_meas0_prep1], [cal.prob_meas1_prep0, 1 - cal.prob_meas0_prep1]]
        print(f"readout of Fez qubit {qubit}: measured {measured.tolist()}, snapshot {expected}")
        for prepared in (0, 1):
            p = expected[1 - prepared][prepared]
            tolerance = 0.003 + 4 * math.sqrt(max(p, 1e-3) * (1 - p) / shots)
            assert abs(measured[1 - prepared][prepared] - p) < tolerance, (qubit, prepared, measured)


def test_mthree_calibrates_from_the_service_and_its_correction_improves_a_ghz_3(fez: VQPUBackend) -> None:
    import mthree

    isa = transpile(_ghz(3), fez, initial_layout=GHZ_QUBITS, seed_transpiler=1)
    raw = fez.run(isa, shots=20_000, seed_simulator=5).result(timeout=WAIT_S).get_counts()
    mitigation = mthree.M3Mitigation(fez)
    mitigation.cals_from_system(GHZ_QUBITS, shots=20_000)
    quasi = mitigation.apply_correction(raw, GHZ_QUBITS)
    raw_ghz = (raw.get("000", 0) + raw.get("111", 0)) / sum(raw.values())
    mitigated_ghz = quasi.get("000", 0.0) + quasi.get("111", 0.0)
    print(f"GHZ-3 on Fez qubits {GHZ_QUBITS}: P(000)+P(111) raw {raw_ghz:.4f}, mitigated {mitigated_ghz:.4f}")
    assert mitigated_ghz > raw_ghz + 0.005


@pytest.fixture(scope="module")
def relaxed(provider: VQPUProvider) -> VQPUBackend:
    """ibm-fez under `relaxation`: thermal relaxation on timed gates and on every delay (idle noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return provider.get_backend("ibm-fez", noise_model="relaxation")


T1_QUBIT = 1
"""Calibrated T1 256 µs."""
T2_QUBIT = 2
"""Calibrated T2 100 µs (T1 274 µs)."""


def test_qiskit_experiments_t1_through_exp_run_fits_the_calibrated_t1(relaxed: VQPUBackend) -> None:
    import numpy as np
    from qiskit_experiments.library import T1

    calibrated = relaxed.snapshot.qubits[T1_QUBIT].t1
    assert calibrated is not None
    exp = T1([T1_QUBIT], delays=np.linspace(1e-6, 3 * calibrated, 12))
    exp.set_run_options(shots=2000, seed_simulator=13)
    fitted = _analysed(exp, relaxed, "T1")
    print(f"T1 of Fez qubit {T1_QUBIT}: fitted {fitted} s, calibrated {calibrated:.4g} s")
    assert abs(fitted.nominal_value - calibrated) < 0.15 * calibrated


def test_qiskit_experiments_t2_hahn_through_exp_run_fits_the_calibrated_t2(relaxed: VQPUBackend) -> None:
    import numpy as np
    from qiskit_experiments.library import T2Hahn

    q = relaxed.snapshot.qubits[T2_QUBIT]
    assert q.t1 is not None and q.t2 is not None
    calibrated = min(q.t2, 2 * q.t1)  # as Aer's thermal relaxation takes it
    exp = T2Hahn([T2_QUBIT], delays=np.linspace(1e-6, 3 * calibrated, 12))
    exp.set_run_options(shots=2000, seed_simulator=17)
    fitted = _analysed(exp, relaxed, "T2")
    print(f"T2 (Hahn echo) of Fez qubit {T2_QUBIT}: fitted {fitted} s, calibrated {calibrated:.4g} s")
    assert abs(fitted.nominal_value - calibrated) < 0.15 * calibrated


SHOTS = 20_000
"""Of each comparison with in-process Aer."""


def _served_beside_aer(backend: VQPUBackend, circuit: QuantumCircuit, seed: int) -> tuple[dict[str, int], float]:
    """The service's counts for `circuit`, and their total variation from in-process Aer with
    `NoiseModel.from_backend(backend)` (same shots, same seed)."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    served = backend.run(circuit, shots=SHOTS, seed_simulator=seed).result(timeout=WAIT_S).get_counts()
    simulator = AerSimulator(noise_model=NoiseModel.from_backend(backend), seed_simulator=seed)
    local = simulator.run(circuit, shots=SHOTS).result().get_counts()
    tv = 0.5 * sum(abs(served.get(k, 0) - local.get(k, 0)) for k in set(served) | set(local)) / SHOTS
    return served, tv


def test_a_dynamically_decoupled_alap_circuit_runs_as_aer_runs_it_with_the_devices_noise(
    relaxed: VQPUBackend,
) -> None:
    from qiskit.circuit.library import XGate
    from qiskit.transpiler import PassManager
    from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDynamicalDecoupling

    isa = transpile(_ghz(3), relaxed, initial_layout=GHZ_QUBITS, seed_transpiler=1)
    idle = QuantumCircuit(*isa.qregs, *isa.cregs)
    idle.compose(isa.remove_final_measurements(inplace=False), inplace=True)
    idle.delay(40_000, GHZ_QUBITS[0], unit="dt")  # 160 µs with the first qubit waiting on its own
    idle.barrier(GHZ_QUBITS)  # a barrier over all 156 would end their idle start: DD would fill them all
    idle.measure(GHZ_QUBITS, range(3))
    durations = relaxed.instruction_durations
    dd = PassManager(
        [ALAPScheduleAnalysis(durations), PadDynamicalDecoupling(target=relaxed.target, dd_sequence=[XGate(), XGate()])]
    ).run(transpile(idle, relaxed, scheduling_method="alap", seed_transpiler=1))
    assert dd.count_ops().get("x", 0) >= 2  # the X X pairs were inserted
    served, tv = _served_beside_aer(relaxed, dd, seed=19)
    print(f"DD GHZ-3 on Fez {GHZ_QUBITS}: TV to Aer's from_backend {tv:.4f}; served {served}")
    assert tv < 0.02


def _dynamic() -> QuantumCircuit:
    """A mid-circuit measurement steering an `if`/`else`, a `for` loop and a `switch` on 4 uncoupled qubits:
    ideally 0100 and 1111, half each (c0 is a coin, c1 copies it, c2 is always 1, c3 copies it again)."""
    qc = QuantumCircuit(4, 4, name="dynamic")
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as else_:
        qc.x(1)
    with else_:
        qc.id(1)
    qc.measure(1, 1)
    with qc.for_loop(range(2)):
        qc.sx(2)  # twice: an X
    with qc.switch(qc.cregs[0]) as case:
        with case(3):  # c = 0b0011 (c1 = c0 = 1)
            qc.x(3)
        with case(case.DEFAULT):
            qc.id(3)
    qc.measure([2, 3], [2, 3])
    return qc


DYNAMIC_QUBITS = [1, 2, 3, 4]


def test_a_dynamic_circuit_gives_the_exact_ideal_distribution_on_the_ideal_twin(provider: VQPUProvider) -> None:
    with warnings.catch_warnings():  # the ideal twin leaves out Fez's broken couplers too
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        ideal = provider.get_backend("ibm-fez-ideal")
    assert {"if_else", "for_loop", "switch_case"} <= set(ideal.target.operation_names)
    isa = transpile(_dynamic(), ideal, initial_layout=DYNAMIC_QUBITS, seed_transpiler=1)
    counts = ideal.run(isa, shots=4000, seed_simulator=5).result(timeout=WAIT_S).get_counts()
    assert set(counts) == {"0100", "1111"}, counts
    assert abs(counts["1111"] - 2000) < 4 * math.sqrt(4000 * 0.25), counts  # binomial, 4 sigma


def test_a_dynamic_circuit_on_fez_runs_as_aer_runs_it_with_the_devices_noise(relaxed: VQPUBackend) -> None:
    isa = transpile(_dynamic(), relaxed, initial_layout=DYNAMIC_QUBITS, seed_transpiler=1)
    served, tv = _served_beside_aer(relaxed, isa, seed=23)
    print(f"dynamic circuit on Fez {DYNAMIC_QUBITS}: TV to Aer's from_backend {tv:.4f}; served {served}")
    assert tv < 0.02
    assert served.get("0100", 0) + served.get("1111", 0) < 0.99 * SHOTS  # the noise is there
