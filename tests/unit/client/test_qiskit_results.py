"""The Qiskit bridge's pure parts: a task's counts and memory read back as a Qiskit `Result` exactly as
Qiskit-Aer's own `Result` for the same circuit reads (counts, memory, hex data, header), circuits
refused before sending when their outcomes could not be mapped back, and the job's one status.

Aer stands in for the runner: the runner's counts and memory are Aer's `get_counts()` / `get_memory()`
of the circuit it parsed, so Aer's own Result for the same circuit is what ours must equal.
"""

from __future__ import annotations

from typing import Any

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, Parameter
from qiskit.providers import JobStatus
from qiskit.result import Result
from qiskit_aer import AerSimulator

from device_registry import Snapshot, catalog, topologies
from harness.documents import provenance
from runner.circuit import parse
from vqpu_client.qiskit.circuits import to_openqasm
from vqpu_client.qiskit.errors import ResultShapeError, UnsupportedCircuitError
from vqpu_client.qiskit.job import job_status
from vqpu_client.qiskit.results import Experiment, build_result, to_hex
from vqpu_protocol.rundir import ResultDocument

SHA = "ab" * 32


def _bell_one_register() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _ghz_two_registers() -> QuantumCircuit:
    """Three qubits into a 2-bit and a 1-bit register: Aer's keys read "b a" ("1 11")."""
    q, a, b = QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b, name="ghz-ab", metadata={"experiment": 7})
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure(0, a[0])
    qc.measure(1, a[1])
    qc.measure(2, b[0])
    return qc


def _three_registers_leading_zeros() -> QuantumCircuit:
    """Registers of 1, 3 and 2 bits, two qubits in superposition and the high bits mostly 0: the hex
    drops leading zeros ("0x1") and the header must pad them back."""
    qc = QuantumCircuit(QuantumRegister(4, "q"), ClassicalRegister(1, "x"), ClassicalRegister(3, "y"), name="xyz")
    qc.add_register(ClassicalRegister(2, "z"))
    qc.h(0)
    qc.h(2)
    qc.x(3)
    qc.measure(0, 0)  # x[0]
    qc.measure(2, 2)  # y[1]
    qc.measure(3, 5)  # z[1]
    return qc


def _measure_all_beside_a_register() -> QuantumCircuit:
    qc = QuantumCircuit(3, 1, name="measure-all")
    qc.x(1)
    qc.h(2)
    qc.measure(2, 0)
    qc.measure_all()  # adds register "meas" of 3 bits after "c"
    return qc


CIRCUITS = [_bell_one_register, _ghz_two_registers, _three_registers_leading_zeros, _measure_all_beside_a_register]


def _aer(circuit: QuantumCircuit, shots: int = 64, seed: int = 11) -> Result:
    return AerSimulator(method="statevector").run(circuit, shots=shots, seed_simulator=seed, memory=True).result()


def _document(
    counts: dict[str, int], memory: list[str] | None, *, seed: int = 11, task_id: str = "t-1"
) -> ResultDocument:
    """A result document as the runner writes it, around the given counts and memory."""
    return ResultDocument.model_validate(
        {
            "counts": counts,
            "shots": sum(counts.values()),
            "memory": memory,
            "timings": {"parse_s": 0.0, "transpile_s": 0.0, "noise_s": 0.0, "simulate_s": 0.01, "total_s": 0.02},
            "provenance": provenance(
                task_id,
                epoch=3,
                snapshot_sha256=SHA,
                seed=seed,
                seed_source="task",
                method_reason="ideal",
                transpile="basis-translation",
                active_qubits=[0, 1],
                runner="test",
                python="3.11",
            ),
        }
    )


def _ours(circuit: QuantumCircuit, aer: Result, *, memory: bool = True) -> Result:
    doc = _document(aer.get_counts(0), aer.get_memory(0) if memory else None)
    return build_result(
        [Experiment(circuit, doc, "t-1")], backend_name="line-16", backend_version="3", job_id="t-1", memory=memory
    )


@pytest.mark.parametrize("make", CIRCUITS, ids=lambda make: make.__name__.strip("_"))
def test_counts_and_memory_read_back_exactly_as_aers_own_result_for_the_same_circuit(make: Any) -> None:
    circuit = make()
    aer = _aer(circuit)
    ours = _ours(circuit, aer)
    assert ours.get_counts(0) == aer.get_counts(0)
    assert ours.get_counts(circuit) == aer.get_counts(circuit)  # looked up by the circuit's name
    assert ours.get_memory(0) == aer.get_memory(0)
    # What BackendSamplerV2 reads: the hex data itself, and the header it formats by.
    ours_exp, aer_exp = ours.to_dict()["results"][0], aer.to_dict()["results"][0]
    assert ours_exp["data"] == aer_exp["data"]
    assert ours_exp["header"] == aer_exp["header"]
    assert ours_exp["meas_level"] == aer_exp["meas_level"] == 2


def test_the_results_of_several_circuits_stay_in_their_order_with_their_own_registers() -> None:
    circuits = [make() for make in CIRCUITS]
    aers = [_aer(c, seed=20 + i) for i, c in enumerate(circuits)]
    experiments = [
        Experiment(c, _document(a.get_counts(0), a.get_memory(0), seed=20 + i, task_id=f"t-{i}"), f"t-{i}")
        for i, (c, a) in enumerate(zip(circuits, aers, strict=True))
    ]
    ours = build_result(experiments, backend_name="line-16", backend_version="3", job_id="j", memory=True)
    assert ours.get_counts() == [a.get_counts(0) for a in aers]
    assert [ours.get_memory(i) for i in range(len(circuits))] == [a.get_memory(0) for a in aers]
    assert [r.seed_simulator for r in ours.results] == [20, 21, 22, 23]
    assert [r.metadata["task_id"] for r in ours.results] == ["t-0", "t-1", "t-2", "t-3"]


def test_each_experiment_says_which_epoch_and_snapshot_it_ran_under() -> None:
    circuit = _bell_one_register()
    ours = _ours(circuit, _aer(circuit))
    metadata = ours.results[0].metadata
    assert (metadata["epoch"], metadata["snapshot_sha256"], metadata["seed"]) == (3, SHA, 11)
    assert ours.results[0].seed_simulator == 11
    assert ours.backend_name == "line-16" and ours.job_id == "t-1"


def test_without_memory_asked_the_result_has_counts_and_no_memory() -> None:
    circuit = _ghz_two_registers()
    ours = _ours(circuit, _aer(circuit), memory=False)
    assert ours.get_counts(0) == _aer(circuit).get_counts(0)
    assert "memory" not in ours.to_dict()["results"][0]["data"]


def test_memory_asked_for_but_missing_is_an_error_not_an_empty_or_zero_memory() -> None:
    circuit = _bell_one_register()
    doc = _document({"00": 3, "11": 5}, None)
    with pytest.raises(ResultShapeError, match="memory"):
        build_result([Experiment(circuit, doc, "t-1")], backend_name="d", backend_version="0", job_id="j", memory=True)


def test_an_outcome_wider_or_narrower_than_the_circuits_bits_is_refused() -> None:
    circuit = _ghz_two_registers()  # 3 classical bits
    for counts in ({"1 1": 8}, {"1 111": 8}):
        with pytest.raises(ResultShapeError, match="3 bits"):
            build_result(
                [Experiment(circuit, _document(counts, None), "t-1")],
                backend_name="d",
                backend_version="0",
                job_id="j",
                memory=False,
            )


def test_a_result_that_belongs_to_another_task_is_refused() -> None:
    doc = _document({"00": 8}, None, task_id="t-2")
    with pytest.raises(ResultShapeError, match="t-2"):
        build_result(
            [Experiment(_bell_one_register(), doc, "t-1")],
            backend_name="d",
            backend_version="0",
            job_id="j",
            memory=False,
        )


def test_hex_drops_the_register_spaces_and_reads_the_most_significant_bit_first() -> None:
    assert to_hex("1 01", 3) == "0x5"
    assert to_hex("00 000", 5) == "0x0"
    assert to_hex("1 00000000", 9) == "0x100"


@pytest.fixture(scope="module")
def line16() -> Snapshot:
    return catalog.load("line-16")


@pytest.mark.parametrize("make", CIRCUITS, ids=lambda make: make.__name__.strip("_"))
def test_the_source_sent_parses_on_the_runner_into_the_same_circuit_outcomes(make: Any, line16: Snapshot) -> None:
    """The OpenQASM 3 the backend sends keeps every register's size, the bit order and the qubits: the
    runner's parse, simulated with the same seed, gives Aer's memory for the original circuit shot for
    shot. (A register named like a gate, "x", is renamed in the source; the Result names it from the
    circuit itself.)"""
    circuit = make()
    parsed = parse(to_openqasm(circuit, line16.native_gates), "qasm3", line16)
    assert [r.size for r in parsed.cregs] == [r.size for r in circuit.cregs]
    assert _aer(parsed).get_memory(0) == _aer(circuit).get_memory(0)


def test_native_gates_outside_stdgates_are_sent_undefined_so_the_runner_can_predeclare_them() -> None:
    ecr_line = topologies.line(3, device_id="ecr-line", two_qubit_gate="ecr", native_gates=["rz", "sx", "x"])
    qc = QuantumCircuit(2, 2)
    qc.sx(0)
    qc.ecr(0, 1)
    qc.measure([0, 1], [0, 1])
    source = to_openqasm(qc, ecr_line.native_gates)
    assert "gate ecr" not in source and "ecr q[0], q[1];" in source
    parsed = parse(source, "qasm3", ecr_line)
    assert [inst.operation.name for inst in parsed.data] == ["sx", "ecr", "measure", "measure"]


def test_a_loose_classical_bit_is_refused_before_sending() -> None:
    qc = QuantumCircuit(2)
    qc.add_bits([Clbit()])
    qc.add_register(ClassicalRegister(1, "r"))
    qc.measure([0, 1], [0, 1])
    with pytest.raises(UnsupportedCircuitError, match="registers laid end to end"):
        to_openqasm(qc, ["cz"])


def test_registers_sharing_a_bit_are_refused_before_sending() -> None:
    c = ClassicalRegister(2, "c")
    qc = QuantumCircuit(QuantumRegister(2, "q"), c)
    qc.add_register(ClassicalRegister(bits=[c[1]], name="alias"))
    qc.measure([0, 1], [0, 1])
    with pytest.raises(UnsupportedCircuitError, match="registers laid end to end"):
        to_openqasm(qc, ["cz"])


def test_unbound_parameters_are_refused_before_sending() -> None:
    qc = QuantumCircuit(1, 1, name="theta")
    qc.rx(Parameter("t"), 0)
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="assign_parameters"):
        to_openqasm(qc, ["rz"])


@pytest.mark.parametrize(
    ("states", "status"),
    [
        (["QUEUED", "QUEUED"], JobStatus.QUEUED),
        (["QUEUED", "RUNNING"], JobStatus.RUNNING),
        (["COMPLETED", "QUEUED"], JobStatus.RUNNING),
        (["FAILED", "RUNNING"], JobStatus.RUNNING),  # not final while a task still runs
        (["COMPLETED", "COMPLETED"], JobStatus.DONE),
        (["COMPLETED", "CANCELLED"], JobStatus.CANCELLED),
        (["CANCELLED", "FAILED"], JobStatus.ERROR),
    ],
)
def test_the_jobs_status_is_final_only_when_every_task_is(states: list[str], status: JobStatus) -> None:
    assert job_status(states) is status
