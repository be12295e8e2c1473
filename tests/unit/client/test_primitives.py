"""`VQPUSamplerV2`, `VQPUEstimatorV2` and `backend.run([...])` as PUB tasks, against a fake service (an httpx
MockTransport): what one `run()` sends (one task), and how the PUB results come back as Qiskit's containers.
The conversions both ways are checked against Qiskit's own coercion and Aer's own primitives in process."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm3
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import BitArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp

from device_registry import Snapshot, topologies
from harness.documents import provenance
from vqpu_client.calls import submit_body
from vqpu_client.errors import NotAdmissibleError, TaskFailedError, UsageError
from vqpu_client.qiskit import (
    RunOptionsError,
    UnsupportedCircuitError,
    VQPUBackend,
    VQPUEstimatorV2,
    VQPUProvider,
    VQPUSamplerV2,
)
from vqpu_client.qiskit import pubs as convert
from vqpu_client.qiskit.backend import PUB_TASK_BYTES, _explained, batches
from vqpu_client.qiskit.errors import ResultShapeError
from vqpu_protocol import pubs as wire
from vqpu_protocol.rundir import ResultDocument

KEY = "vqpu_u_0123456789abcdef"
SHA = "a" * 64
GATES = ("cz", "id", "rz", "sx", "x")
_urls = itertools.count()


def _provenance(task_id: str) -> dict[str, Any]:
    return provenance(
        task_id,
        device_id="line-4",
        epoch=3,
        snapshot_sha256=SHA,
        seed=11,
        seed_source="task",
        method_reason="ideal",
        transpile="basis-translation",
        active_qubits=[0, 1],
        runner="test",
        python="3.11",
    )


def result_document(task_id: str, pubs: dict[str, Any] | None, counts: dict[str, int] | None = None) -> dict[str, Any]:
    shots = sum((counts or {}).values()) or sum(
        p.get("shots", 0) * len(p.get("counts", [])) for p in (pubs or {}).get("pubs", [])
    )
    doc: dict[str, Any] = {
        "schema": "vqpu.result/1",
        "counts": counts or {},
        "shots": shots,
        "timings": {"parse_s": 0.0, "transpile_s": 0.0, "noise_s": 0.0, "simulate_s": 0.01, "total_s": 0.02},
        "provenance": _provenance(task_id),
    }
    if pubs is not None:
        doc["pubs"] = pubs
    return doc


class FakeService:
    """One device; records each submission and answers it COMPLETED with what `answer(body)` returns (the
    result's `pubs` for a PUB task, its counts for a circuit task)."""

    def __init__(self, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.url = f"http://vqpu-primitives-{next(_urls)}.test"
        self.snapshot: Snapshot = topologies.line(4, device_id="line-4").with_epoch(3)
        self.answer = answer
        self.submitted: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/devices/line-4":
            return httpx.Response(200, content=self.snapshot.canonical_json())
        if path == "/v1/tasks" and request.method == "POST":
            self.submitted.append(json.loads(request.content))
            return httpx.Response(201, json=self._task(len(self.submitted)))
        if found := re.fullmatch(r"/v1/tasks/t-([0-9]+)", path):
            return httpx.Response(200, json=self._task(int(found.group(1))))
        if found := re.fullmatch(r"/v1/tasks/t-([0-9]+)/result", path):
            n = int(found.group(1))
            body = self.submitted[n - 1]
            answer = self.answer(body)
            if "pubs" in body:
                return httpx.Response(200, json=result_document(f"t-{n}", answer))
            return httpx.Response(200, json=result_document(f"t-{n}", None, answer))
        return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": path}})

    def _task(self, n: int) -> dict[str, Any]:
        body = self.submitted[n - 1]
        now = "2026-12-01T00:00:00+00:00"
        kind = body["pubs"]["kind"] if "pubs" in body else "circuit"
        failed = {"code": "NO_MEASUREMENTS", "message": "pubs[1]: the circuit measures no qubit", "detail": {"pub": 1}}
        return {
            **{k: None for k in ("epoch", "bound_epoch", "bound_sha256", "agent_id", "scheduler")},
            "error": failed if body.get("tags") == ["fail"] else None,
            **{k: None for k in ("claimed_at", "seed")},
            "id": f"t-{n}",
            "owner": "user",
            "device": body["device"],
            "dialect": body["dialect"],
            "kind": kind,
            "pubs": len(body["pubs"]["pubs"]) if "pubs" in body else None,
            "shots": body.get("shots", 0),
            "tags": body.get("tags", []),
            "options": body.get("options", {}),
            "state": "FAILED" if body.get("tags") == ["fail"] else "COMPLETED",
            "attempt": 1,
            "admitted_epoch": 3,
            "cancel_requested": False,
            "stale": False,
            "created_at": now,
            "updated_at": now,
            "finished_at": now,
        }


def _backend(service: FakeService) -> Iterator[VQPUBackend]:
    with VQPUProvider(service.url, KEY, transport=httpx.MockTransport(service.handle)) as provider:
        yield provider.get_backend("line-4")


def _two_registers() -> QuantumCircuit:
    """Registers of 3 and 9 bits (9: two bytes in a BitArray), the second declared last."""
    a, b = ClassicalRegister(3, "a"), ClassicalRegister(9, "b")
    qc = QuantumCircuit(QuantumRegister(4, "q"), a, b, name="two-registers")
    theta = Parameter("t")
    qc.rx(theta, 0)
    qc.x(1)
    qc.measure([0, 1, 2], a)
    qc.measure([3, 1, 0, 2, 3, 1, 0, 2, 1], b)
    return qc


# --- Qiskit's PUBs as the service's ------------------------------------------------------------


def test_parameter_values_are_sent_in_the_order_the_circuit_declares_its_inputs_with_a_vector_of_12() -> None:
    theta = ParameterVector("θ", 12)
    qc = QuantumCircuit(2, 2)
    for i, t in enumerate(theta):
        qc.rz(t, i % 2)
    qc.measure([0, 1], [0, 1])
    values = np.arange(5 * 12, dtype=float).reshape(5, 12) / 7  # column k: theta[k]
    doc = convert.sampler_pub(SamplerPub.coerce((qc, values), 100), GATES)
    declared = re.findall(r"^input float\[64\] (\S+);", doc.circuit, flags=re.MULTILINE)
    # The exporter names theta[10] `_θ_10_`: a sort by name would put it before theta[2].
    assert declared == [f"_θ_{k}_" for k in range(12)]
    assert doc.shape == [5] and doc.shots == 100 and doc.bindings == 5
    for row, expected in zip(doc.parameter_values, values, strict=True):
        assert row == list(expected)  # one value per input, in declaration order


def test_named_parameters_follow_the_circuits_parameter_order_and_a_2d_shape_is_flattened_in_c_order() -> None:
    b, a = Parameter("b"), Parameter("a")
    qc = QuantumCircuit(1, 1)
    qc.rx(b, 0)
    qc.rz(a, 0)
    qc.measure(0, 0)
    values = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)  # last axis: (a, b), circuit.parameters order
    doc = convert.sampler_pub(SamplerPub.coerce((qc, {("a", "b"): values}), 10), GATES)
    assert re.findall(r"^input float\[64\] (\S+);", doc.circuit, flags=re.MULTILINE) == ["a", "b"]
    assert doc.shape == [2, 3]
    assert doc.parameter_values == values.reshape(6, 2).tolist()


def test_a_parameterless_pub_is_one_binding_with_no_rows() -> None:
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    doc = convert.sampler_pub(SamplerPub.coerce(qc, 7), GATES)
    assert (doc.parameter_values, doc.shape, doc.bindings, doc.shots) == ([], [], 1, 7)
    assert "input" not in doc.circuit


def test_a_pub_that_leaves_a_parameter_unbound_is_refused_by_qiskits_own_coercion() -> None:
    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("x"), 0)
    qc.measure(0, 0)
    with pytest.raises(ValueError, match="parameters"):
        SamplerPub.coerce(qc, 10)


@pytest.mark.parametrize(
    ("observables_shape", "bindings_shape", "result_shape"),
    [((2, 1), (5,), [2, 5]), ((3,), (3,), [3]), ((1,), (4,), [4]), ((2, 3), (), [2, 3]), ((4, 1), (1, 2), [4, 2])],
)
def test_observables_and_bindings_broadcast_as_qiskit_broadcasts_them(
    observables_shape: tuple[int, ...], bindings_shape: tuple[int, ...], result_shape: list[int]
) -> None:
    x = Parameter("x")
    qc = QuantumCircuit(2)
    qc.ry(x, 0)
    qc.cz(0, 1)
    labels = ["ZZ", "XI", "IY", "ZI", "IZ", "XX", "YY", "ZX"]
    size = int(np.prod(observables_shape))
    observables = np.array([{labels[k % len(labels)]: 0.5 + k} for k in range(size)], dtype=object)
    values = np.linspace(0, 1, int(np.prod(bindings_shape))).reshape(*bindings_shape, 1)
    pub = EstimatorPub.coerce((qc, observables.reshape(observables_shape), values), 0.0)
    doc = convert.estimator_pub(pub, GATES)
    assert list(pub.shape) == result_shape == doc.result_shape
    assert doc.observables_shape == list(observables_shape) and doc.bindings_shape == list(bindings_shape)
    assert doc.precision == 0.0
    assert [obs[0].coeff for obs in doc.observables] == [0.5 + k for k in range(size)]  # C order


def test_observables_become_sparse_pauli_terms_on_the_circuits_qubits() -> None:
    qc = QuantumCircuit(3)
    qc.h(0)
    h = SparsePauliOp.from_list([("III", -1.05), ("IIZ", 0.39), ("ZII", -0.39), ("IZZ", -0.01), ("XYX", 0.18)])
    doc = convert.estimator_pub(EstimatorPub.coerce((qc, h), 0.25), GATES)
    terms = {(t.paulis, tuple(t.qubits)): t.coeff for t in doc.observables[0]}
    # As SparsePauliOp.to_sparse_list writes them (identities left out; qubit 0 the label's last character).
    assert terms == {(p, tuple(q)): c.real for p, q, c in h.to_sparse_list()}
    assert terms[("XYX", (0, 1, 2))] == pytest.approx(0.18) and terms[("", ())] == pytest.approx(-1.05)
    assert doc.precision == 0.25 and doc.observables_shape == []


# --- the service's results as Qiskit's ---------------------------------------------------------


def _joint_counts(a: BitArray, b: BitArray) -> list[dict[str, int]]:
    """Per binding, the counts keyed as a circuit's (last register first, space separated)."""
    found = []
    for index in np.ndindex(a.shape):
        keys = [f"{y} {x}" for x, y in zip(a[index].get_bitstrings(), b[index].get_bitstrings(), strict=True)]
        found.append({k: keys.count(k) for k in set(keys)})
    return found


def test_bit_arrays_of_two_registers_of_different_widths_read_back_as_aers_sampler_gives_them() -> None:
    from qiskit_aer.primitives import SamplerV2

    qc = _two_registers()
    values = np.linspace(0, np.pi, 6).reshape(2, 3, 1)
    aer = SamplerV2(seed=5).run([(qc, values)], shots=200).result()[0].data
    result = wire.SamplerPubResult(
        shape=[2, 3],
        shots=200,
        registers=[wire.Register(name="a", num_bits=3), wire.Register(name="b", num_bits=9)],
        counts=_joint_counts(aer.a, aer.b),
    )
    ours = convert.bit_arrays(qc, result)
    assert ours.shape == (2, 3) and ours.a.shape == (2, 3) and ours.b.shape == (2, 3)
    assert (ours.a.num_bits, ours.b.num_bits, ours.a.num_shots) == (3, 9, 200)
    for index in np.ndindex(2, 3):
        assert ours.a.get_counts(index) == aer.a.get_counts(index)
        assert ours.b.get_counts(index) == aer.b.get_counts(index)
    # The joint outcome of each shot is kept (shots are grouped by outcome, but never split across registers).
    assert _joint_counts(ours.a, ours.b) == result.counts


def test_a_result_whose_registers_do_not_fit_the_circuit_is_refused() -> None:
    qc = _two_registers()
    result = wire.SamplerPubResult(
        shape=[], shots=1, registers=[wire.Register(name="a", num_bits=12)], counts=[{"0" * 12: 1}]
    )
    with pytest.raises(ResultShapeError, match="registers"):
        convert.bit_arrays(qc, result)


def test_estimator_values_keep_their_shape() -> None:
    data = convert.estimator_data(
        wire.EstimatorPubResult(shape=[2, 2], evs=[1.0, 2.0, 3.0, 4.0], stds=[0.0] * 4, precision=0.0)
    )
    assert data.shape == (2, 2) and data.evs.tolist() == [[1.0, 2.0], [3.0, 4.0]] and data.stds.shape == (2, 2)


# --- one run, one task -------------------------------------------------------------------------


def _sampler_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Each binding of each PUB: every shot `1...1` on the first register, `0...0` on the others."""
    out = []
    for pub in body["pubs"]["pubs"]:
        widths = [int(n) for n in re.findall(r"^bit\[([0-9]+)\]", pub["circuit"], flags=re.MULTILINE)]
        shape = pub.get("shape", [])
        key = " ".join(("1" if i == 0 else "0") * w for i, w in reversed(list(enumerate(widths))))
        registers = [{"name": f"r{i}", "num_bits": w} for i, w in enumerate(widths)]
        shots = pub.get("shots") or body["shots"]
        out.append(
            {"shape": shape, "shots": shots, "registers": registers, "counts": [{key: shots}] * int(np.prod(shape))}
        )
    return {"kind": "sampler", "pubs": out}


@pytest.fixture
def sampled() -> Iterator[tuple[FakeService, VQPUBackend]]:
    service = FakeService(_sampler_answer)
    for backend in _backend(service):
        yield service, backend


def test_a_sampler_run_is_one_task_of_all_its_pubs_with_the_backends_run_options(
    sampled: tuple[FakeService, VQPUBackend],
) -> None:
    service, backend = sampled
    backend.set_options(vqpu_noise_model="relaxation", seed_simulator=4, job_tags=["s"])
    qc = _two_registers()
    sampler = VQPUSamplerV2(backend)
    job = sampler.run([(qc, np.linspace(0, 1, 5)), (qc, [0.5], 30)], shots=100)
    assert len(service.submitted) == 1
    body = service.submitted[0]
    assert body["pubs"]["kind"] == "sampler" and body["shots"] == 100 and body["dialect"] == "qasm3"
    assert [p["shots"] for p in body["pubs"]["pubs"]] == [100, 30]
    assert body["pubs"]["pubs"][0]["shape"] == [5] and len(body["pubs"]["pubs"][0]["parameter_values"]) == 5
    assert body["seed"] == 4 and body["tags"] == ["s"] and body["options"] == {"noise_model": "relaxation"}
    assert job.job_id() == "t-1" and job.status() == JobStatus.DONE and job.done() and job.in_final_state()
    result = job.result()
    first = result[0].data
    assert first.shape == (5,) and first.a.shape == (5,) and first.a.num_shots == 100
    assert first.a.get_counts(4) == {"111": 100} and first.b.get_counts(0) == {"0" * 9: 100}
    assert result[1].data.a.num_shots == 30 and result[1].metadata["shots"] == 30
    assert result.metadata["task_id"] == "t-1" and result.metadata["provenance"]["epoch"] == 3
    assert job.provenance().task_id == "t-1"


def test_sampler_options_are_checked_when_made_and_memory_is_refused(sampled: tuple[FakeService, VQPUBackend]) -> None:
    _, backend = sampled
    with pytest.raises(RunOptionsError, match="no option 'shots'"):
        VQPUSamplerV2(backend, options={"shots": 5})
    with pytest.raises(RunOptionsError, match="memory=True cannot be honoured"):
        VQPUSamplerV2(backend, options={"run_options": {"memory": True}})
    with pytest.raises(RunOptionsError, match="vqpu_noise_model"):
        VQPUSamplerV2(backend, options={"run_options": {"vqpu_noise_model": "aer"}})
    backend.set_options(memory=True)  # the backend's own default does not reach a PUB task
    VQPUSamplerV2(backend, options={"default_shots": 10}).run([_measured()])


def _measured() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    return qc


def test_backend_run_of_several_circuits_is_one_task_whose_result_reads_as_one_task_per_circuit(
    sampled: tuple[FakeService, VQPUBackend],
) -> None:
    service, backend = sampled
    circuits = [_measured(), _measured(), _measured()]
    circuits[1].name, circuits[2].metadata = "second", {"k": 2}
    job = backend.run(circuits, shots=50, seed_simulator=7)
    assert len(service.submitted) == 1 and service.submitted[0]["seed"] == 7
    assert [p.get("parameter_values", []) for p in service.submitted[0]["pubs"]["pubs"]] == [[], [], []]
    assert job.job_id() == "t-1" and job.task_ids() == ["t-1"]
    result = job.result()
    assert [result.get_counts(i) for i in range(3)] == [{"1": 50}] * 3
    assert [r.header["name"] for r in result.results] == [c.name for c in circuits]
    assert result.results[2].header["metadata"] == {"k": 2} and result.results[0].header["creg_sizes"] == [["c", 1]]
    assert result.get_counts("second") == {"1": 50}
    assert result.results[0].metadata["task_id"] == "t-1"
    # The runner seeds PUB k with the task's seed + k: each experiment says the seed its circuit ran with.
    assert [r.seed_simulator for r in result.results] == [11, 12, 13]
    assert [r.metadata["seed"] for r in result.results] == [11, 12, 13]
    assert [(p.task_id, p.seed) for p in job.provenance()] == [("t-1", 11), ("t-1", 12), ("t-1", 13)]


def test_a_failed_pub_task_says_which_circuit_of_the_run_its_error_names(
    sampled: tuple[FakeService, VQPUBackend],
) -> None:
    _, backend = sampled
    circuits = [_measured(), _measured()]
    circuits[1].name = "unmeasured"
    job = backend.run(circuits, shots=5, job_tags=["fail"])
    with pytest.raises(TaskFailedError) as e:
        job.result()
    assert e.value.code == "NO_MEASUREMENTS" and job.status() is JobStatus.ERROR
    assert "pubs[1] of task t-1 is circuit 1 ('unmeasured') of this run" in e.value.__notes__


def test_backend_run_with_memory_is_one_pub_task_asking_memory_and_one_circuit_stays_a_circuit_task() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if "pubs" not in body:
            return {"1": body["shots"]}
        one = {"shape": [], "shots": 5, "registers": [{"name": "c", "num_bits": 1}], "counts": [{"1": 5}]}
        return {"kind": "sampler", "pubs": [one] * len(body["pubs"]["pubs"])}

    service = FakeService(answer)
    for backend in _backend(service):
        backend.run(_measured(), shots=5)
        assert "circuit" in service.submitted[0] and "pubs" not in service.submitted[0]
        with pytest.raises(ResultShapeError):  # the fake returns no memory; what matters is what was sent
            backend.run([_measured(), _measured()], shots=5, memory=True).result()
        [sent] = service.submitted[1:]
        assert len(sent["pubs"]["pubs"]) == 2 and sent["options"] == {"memory": True}


def test_a_parameterised_circuit_given_to_backend_run_is_refused_before_sending(
    sampled: tuple[FakeService, VQPUBackend],
) -> None:
    service, backend = sampled
    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("x"), 0)
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="unbound parameters"):
        backend.run([_measured(), qc])
    assert service.submitted == []


def test_a_refusal_of_a_pub_task_names_the_circuits_its_violations_name() -> None:
    def refusal(*messages: str) -> NotAdmissibleError:
        violations = [{"code": "UNKNOWN_GATE", "line": 3, "message": m, "operands": ["h"]} for m in messages]
        return NotAdmissibleError(
            "NOT_ADMISSIBLE", "not admissible on line-4", status=422, detail={"violations": violations}
        )

    circuits = [(4, QuantumCircuit(1, name="a")), (5, QuantumCircuit(1, name="b")), (6, QuantumCircuit(1, name="c"))]
    one = _explained(refusal("pubs[1]: gate h is not native", "pubs[1]: again"), circuits)
    assert one.message.startswith("circuit 5 ('b'): not admissible on line-4. transpile(circuit, backend)")
    two = _explained(refusal("pubs[2]: x", "pubs[0]: y"), circuits)
    assert two.message.startswith("circuit 4 ('a'), circuit 6 ('c'): ")
    unnamed = _explained(refusal("gate h is not native"), circuits)
    assert unnamed.message.startswith("one of circuits 4..6 (sent as one task of 3 PUBs): ")
    assert _explained(refusal("gate h"), circuits[:1]).message.startswith("circuit 4 ('a'): ")


def test_large_runs_split_into_as_few_pub_tasks_as_the_body_limit_allows() -> None:
    big = "x" * (PUB_TASK_BYTES // 2)
    assert batches(["a"]) == [[0]]
    assert batches(["a", "b", "c"]) == [[0, 1, 2]]
    assert batches([big, big, big, "a"]) == [[0, 1], [2, 3]]


def test_runs_with_memory_split_where_one_tasks_memory_would_overflow() -> None:
    """Per-shot memory of one task holds MAX_MEMORY_SHOTS shots and MAX_MEMORY_CHARS characters."""
    assert batches(["a"] * 3, shots=40_000, memory_widths=[1, 1, 1]) == [[0, 1], [2]]  # 100,000 shots a task
    assert batches(["a"] * 3, shots=1_000, memory_widths=[500, 500, 1]) == [[0, 1], [2]]  # 1,000,000 characters
    assert batches(["a"] * 3, shots=1_000, memory_widths=[5, 5, 5]) == [[0, 1, 2]]


def test_an_estimator_run_is_one_task_without_shots_and_its_values_keep_the_pubs_shapes() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        out = []
        for pub in body["pubs"]["pubs"]:
            shape = wire.EstimatorPub.model_validate(pub).result_shape
            n = int(np.prod(shape))
            out.append({"shape": shape, "evs": [float(k) for k in range(n)], "stds": [0.0] * n, "precision": 0.0})
        return {"kind": "estimator", "pubs": out}

    service = FakeService(answer)
    for backend in _backend(service):
        x = Parameter("x")
        qc = QuantumCircuit(2)
        qc.ry(x, 0)
        qc.cz(0, 1)
        h = SparsePauliOp.from_list([("ZZ", 0.5), ("XI", -0.2)])
        job = VQPUEstimatorV2(backend, options={"seed_simulator": 3}).run(
            [(qc, [[h], [h.power(2)]], np.linspace(0, 1, 4).reshape(4, 1))]
        )
        body = service.submitted[0]
        assert len(service.submitted) == 1 and "shots" not in body and body["seed"] == 3
        pub = body["pubs"]["pubs"][0]
        assert body["pubs"]["kind"] == "estimator" and pub["observables_shape"] == [2, 1] and pub["precision"] == 0.0
        result = job.result()
        assert result[0].data.evs.shape == (2, 4) and result[0].data.evs[1, 3] == 7.0
        assert result[0].metadata["target_precision"] == 0.0 and result[0].metadata["task_id"] == "t-1"


# --- the client's request ----------------------------------------------------------------------


def _pubs() -> dict[str, Any]:
    return {"kind": "sampler", "pubs": [{"circuit": "OPENQASM 3.0;\nbit[1] c;\nqubit[1] q;\nc[0] = measure q[0];\n"}]}


def test_a_submit_body_holds_a_circuit_or_pubs_as_the_server_would_check_it() -> None:
    common: dict[str, Any] = {"dialect": None, "seed": None, "epoch": None, "tags": (), "options": None}
    body = submit_body("d", None, shots=10, pubs=_pubs(), **common)
    assert body["pubs"]["kind"] == "sampler" and body["dialect"] == "qasm3" and "circuit" not in body
    with pytest.raises(UsageError, match="not both"):
        submit_body("d", "OPENQASM 3.0;", shots=10, pubs=_pubs(), **common)
    with pytest.raises(UsageError, match="either"):
        submit_body("d", None, shots=10, **common)
    with_memory = submit_body("d", None, shots=10, pubs=_pubs(), **{**common, "options": {"memory": True}})
    assert with_memory["options"] == {"memory": True}  # a sampler's shots, every one in order
    estimator = {"kind": "estimator", "pubs": [{**_pubs()["pubs"][0], "observables": [[]]}]}
    with pytest.raises(UsageError, match="per-shot memory"):
        submit_body("d", None, shots=None, pubs=estimator, **{**common, "options": {"memory": True}})
    estimator = {"kind": "estimator", "pubs": [{"circuit": "OPENQASM 3.0;", "observables": [[]]}]}
    with pytest.raises(UsageError, match="estimator task takes no `shots`"):
        submit_body("d", None, shots=10, pubs=estimator, **common)
    with pytest.raises(UsageError, match="invalid pubs"):
        submit_body("d", None, shots=10, pubs={"kind": "sampler", "pubs": []}, **common)


def test_results_expose_a_pub_tasks_pubs() -> None:
    doc = ResultDocument.model_validate(result_document("t-9", _sampler_answer({"shots": 4, "pubs": _pubs()})))
    assert isinstance(doc.pubs, wire.SamplerPubResults) and doc.pubs.pubs[0].counts == [{"1": 4}]


def test_qasm3_writes_parameter_vectors_in_index_order() -> None:
    """The premise of the column order: qasm3.dumps declares the inputs in `circuit.parameters` order."""
    theta = ParameterVector("p", 11)
    qc = QuantumCircuit(1)
    for t in reversed(theta):
        qc.rz(t, 0)
    names = re.findall(r"^input float\[64\] (\S+);", qasm3.dumps(qc), flags=re.MULTILINE)
    assert names == [f"_p_{k}_" for k in range(11)] and [p.index for p in qc.parameters] == list(range(11))


def test_the_async_client_submits_pubs_as_the_sync_one_does() -> None:
    import asyncio

    from vqpu_client.aio import AsyncClient

    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "stop"}})

    async def submit() -> None:
        async with AsyncClient("http://vqpu.test", KEY, transport=httpx.MockTransport(handle), retries=0) as vqpu:
            with pytest.raises(Exception, match="stop"):
                await vqpu.submit("d", pubs=_pubs(), shots=5)

    asyncio.run(submit())
    pubs = wire.SamplerPubs.model_validate(_pubs()).model_dump(mode="json", exclude_none=True)
    assert sent == [{"device": "d", "pubs": pubs, "dialect": "qasm3", "shots": 5}]
