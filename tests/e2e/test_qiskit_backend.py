"""The Qiskit backend against the real local stack (control plane, Prefect server, agent on a Dask
LocalCluster, the runner): what a Qiskit user sees from `transpile`, `backend.run`, `BackendSamplerV2`,
a pinned epoch, a refused circuit and a cancel.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.primitives import BackendSamplerV2
from qiskit.providers import JobStatus
from qiskit_aer import AerSimulator

from device_registry.qiskit_backend import DeviceDefectsWarning
from harness.stack import LocalStack
from vqpu_client import Client, errors
from vqpu_client.qiskit import RunOptionsError, TaskProvenance, VQPUBackend, VQPUProvider

pytestmark = pytest.mark.slow
WAIT_S = 180.0
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = (ROOT / "docs" / "qiskit.md", ROOT / "README.md")
EXAMPLE_MARKER = "<!-- qiskit-example -->"


def _quietly(provider: VQPUProvider, name: str) -> VQPUBackend:
    """The warning comes once per process at whichever line asks first (tests/unit/client checks it), so a
    fixture cannot count on seeing it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return provider.get_backend(name)


@pytest.fixture(scope="module")
def ideal(provider: VQPUProvider) -> VQPUBackend:
    return _quietly(provider, "ibm-fez-ideal")


@pytest.fixture(scope="module")
def fez(provider: VQPUProvider) -> VQPUBackend:
    return _quietly(provider, "ibm-fez")


def _ghz_two_registers() -> QuantumCircuit:
    """GHZ on three qubits into registers a (2 bits) and b (1 bit): outcomes "0 00" and "1 11"."""
    q, a, b = QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b, name="ghz-ab")
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure(0, a[0])
    qc.measure(1, a[1])
    qc.measure(2, b[0])
    return qc


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _x_on(qubits: list[int], name: str) -> QuantumCircuit:
    """Native gates only on qubits 0 and 1, which Fez couples: runs untranspiled."""
    qc = QuantumCircuit(2, 2, name=name)
    for q in qubits:
        qc.x(q)
    qc.measure([0, 1], [0, 1])
    return qc


def _task_ids(stack: LocalStack) -> set[str]:
    with Client(stack.url, stack.keys["user"]) as client:
        return {t.id for t in client.iter_tasks()}


def test_backends_lists_every_device_at_its_current_epoch(provider: VQPUProvider) -> None:
    with warnings.catch_warnings():  # the devices with defects say so; that is not what this test is about
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        backends = provider.backends()
    summaries = {d.device_id: d for d in provider.client.devices()}
    assert sorted(b.name for b in backends) == sorted(summaries)
    assert all(b.epoch == summaries[b.name].epoch and b.pinned_epoch is None for b in backends)
    assert all(b.target.num_qubits == summaries[b.name].num_qubits for b in backends)


def test_a_transpiled_ghz_on_the_ideal_twin_gives_aers_ideal_outcomes_with_register_spaces(
    ideal: VQPUBackend,
) -> None:
    circuit = _ghz_two_registers()
    isa = transpile(circuit, ideal, seed_transpiler=1)
    job = ideal.run(isa, shots=400, seed_simulator=5)
    result = job.result(timeout=WAIT_S)
    counts = result.get_counts()
    aer = AerSimulator().run(circuit, shots=400, seed_simulator=5).result().get_counts()
    assert set(counts) == set(aer) == {"0 00", "1 11"}
    assert sum(counts.values()) == 400 and 150 < counts["1 11"] < 250  # 5 standard deviations of a fair coin
    assert result.get_counts(isa) == counts and result.results[0].header["name"] == "ghz-ab"
    assert job.status() is JobStatus.DONE
    assert job.provenance() == [TaskProvenance(job.job_id(), ideal.epoch, ideal.snapshot.sha256(), 5)]
    assert result.results[0].metadata["epoch"] == ideal.epoch


def test_backend_sampler_v2_reads_every_shot_exactly_as_the_backends_memory(
    stack: LocalStack, ideal: VQPUBackend
) -> None:
    isa = transpile(_ghz_two_registers(), ideal, seed_transpiler=1)
    sampler = BackendSamplerV2(backend=ideal, options={"seed_simulator": 9, "default_shots": 300})
    data = sampler.run([(isa,)]).result()[0].data
    a, b = data.a.get_bitstrings(), data.b.get_bitstrings()
    assert set(data.a.get_counts()) == {"00", "11"} and set(data.b.get_counts()) == {"0", "1"}  # not all zeros
    assert all(x == y * 2 for x, y in zip(a, b, strict=True))  # one GHZ state per shot, across both registers
    # The same seed replays the same task: the sampler's shots are the backend's memory, in order.
    memory = ideal.run(isa, shots=300, seed_simulator=9, memory=True).result(timeout=WAIT_S).get_memory(0)
    assert memory == [f"{y} {x}" for x, y in zip(a, b, strict=True)]
    # Several PUBs are one task (backend.run of a list, with memory): each PUB's shots, in order, as its own run.
    before = _task_ids(stack)
    both = sampler.run([(isa,), (isa,)]).result()
    assert len(_task_ids(stack) - before) == 1
    assert both[0].data.a.get_bitstrings() == a and both[0].data.b.get_bitstrings() == b


def test_on_noisy_fez_the_counts_differ_from_ideal_but_stay_close(fez: VQPUBackend) -> None:
    isa = transpile(_bell(), fez, seed_transpiler=1)
    counts = fez.run(isa, shots=2000, seed_simulator=3).result(timeout=WAIT_S).get_counts()
    wrong = counts.get("01", 0) + counts.get("10", 0)
    assert 0 < wrong < 0.15 * 2000, counts
    assert abs(counts.get("00", 0) - counts.get("11", 0)) < 0.2 * 2000, counts


def test_noise_options_pass_through_and_the_result_says_what_was_applied(fez: VQPUBackend) -> None:
    isa = transpile(_bell(), fez, seed_transpiler=1)
    result = fez.run(isa, shots=500, seed_simulator=3, noise={"disable": ["gate_1q", "gate_2q", "readout"]}).result(
        timeout=WAIT_S
    )
    assert set(result.get_counts()) == {"00", "11"}
    assert result.results[0].metadata["noise_empty"] is True
    assert result.results[0].metadata["noise"]["disable"] == ["gate_1q", "gate_2q", "readout"]


def test_a_list_of_circuits_is_one_task_in_order_with_consecutive_seeds(ideal: VQPUBackend) -> None:
    circuits = [_x_on([], "none"), _x_on([0], "q0"), _x_on([0, 1], "both")]
    job = ideal.run(circuits, shots=50, seed_simulator=100)
    ids = job.task_ids()
    assert len(ids) == 1 and job.job_id() == ids[0]
    result = job.result(timeout=WAIT_S)
    assert result.get_counts() == [{"00": 50}, {"01": 50}, {"11": 50}]
    assert result.get_counts("q0") == {"01": 50}
    assert [p.seed for p in job.provenance()] == [100, 101, 102]
    assert [(t.kind, t.pubs, t.shots) for t in job.tasks()] == [("sampler", 3, 150)]


def test_a_pinned_epoch_backend_replays_the_old_calibration_that_the_current_epoch_refuses(
    stack: LocalStack, provider: VQPUProvider
) -> None:
    circuit = QuantumCircuit(2, 2, name="sx-cz")
    circuit.sx(0)
    circuit.cz(0, 1)
    circuit.measure([0, 1], [0, 1])
    old = provider.get_backend("line-16")
    with Client(stack.url, stack.keys["admin"]) as admin:
        new_epoch = admin.patch_device("line-16", {"qubits": [{"index": 1, "status": "OFFLINE"}]}).epoch
    assert new_epoch == old.epoch + 1

    with pytest.warns(DeviceDefectsWarning, match="OFFLINE"):
        current = provider.get_backend("line-16")
    assert current.epoch == new_epoch and not current.target.instruction_supported("sx", (1,))
    before = _task_ids(stack)
    with pytest.raises(errors.NotAdmissibleError, match=r"circuit 0 \('sx-cz'\).*transpile\(circuit, backend\)") as e:
        current.run(circuit, shots=100)
    assert any(v["code"] == "QUBIT_OFFLINE" for v in e.value.violations)
    assert _task_ids(stack) == before

    pinned = provider.get_backend("line-16", epoch=old.epoch)
    assert (pinned.epoch, pinned.pinned_epoch) == (old.epoch, old.epoch)
    assert pinned.target.instruction_supported("sx", (1,))
    job = pinned.run(circuit, shots=200, seed_simulator=4)
    counts = job.result(timeout=WAIT_S).get_counts()
    assert set(counts) == {"00", "01"} and sum(counts.values()) == 200  # sx on q0; cz changes no population
    assert job.provenance() == [TaskProvenance(job.job_id(), old.epoch, old.snapshot.sha256(), 4)]
    assert [(t.epoch, t.bound_epoch) for t in job.tasks()] == [(old.epoch, old.epoch)]


def test_unknown_or_invalid_run_options_are_refused_before_anything_is_sent(
    stack: LocalStack, ideal: VQPUBackend
) -> None:
    before = _task_ids(stack)
    circuit = _x_on([0], "x")
    with pytest.raises(RunOptionsError, match="meas_level 1 is not available"):
        ideal.run(circuit, meas_level=1)
    with pytest.raises(RunOptionsError, match="vqpu_noise_model"):
        ideal.run(circuit, vqpu_noise_model="made-up")
    with pytest.raises(RunOptionsError, match=r"cannot take an Aer NoiseModel.*vqpu_noise_model"):
        ideal.run(circuit, noise_model="relaxation")
    with pytest.raises(RunOptionsError, match="noise"):
        ideal.run(circuit, noise={"scale": {"gate_3q": 2.0}})
    with pytest.raises(RunOptionsError, match="shots"):
        ideal.run(circuit, shots=0)
    with pytest.raises(RunOptionsError, match="method"):
        ideal.run(circuit, method=None)
    with pytest.raises(RunOptionsError, match="per-shot memory is limited"):
        ideal.run(circuit, shots=200_000, memory=True)
    with pytest.raises(RunOptionsError, match="no run option 'optimization_level'"):
        ideal.set_options(optimization_level=3)
    assert _task_ids(stack) == before
    assert ideal.options.shots == 1024


def test_ibms_standard_run_options_are_accepted_and_job_tags_become_the_tasks_tags(ideal: VQPUBackend) -> None:
    standard = {"meas_level": 2, "meas_return": "single", "rep_delay": None, "init_qubits": True, "noise_model": None}
    job = ideal.run(_x_on([0], "x0"), shots=20, job_tags=["rb", "q0"], **standard)
    assert job.result(timeout=WAIT_S).get_counts() == {"01": 20}
    assert [t.tags for t in job.tasks()] == [["rb", "q0"]]


@pytest.mark.parametrize("doc", EXAMPLES, ids=lambda p: p.name)
def test_the_qiskit_example_in_the_docs_runs_as_written_and_prints_bell_counts(stack: LocalStack, doc: Path) -> None:
    """The block after the marker in docs/qiskit.md and in the README, with the stack's URL and a user
    key put in for the placeholders, run by a fresh interpreter as a user who copied it would run it."""
    text = doc.read_text(encoding="utf-8")
    assert text.count(EXAMPLE_MARKER) == 1
    found = re.match(r"\s*```python\n(.*?)\n```", text.split(EXAMPLE_MARKER, 1)[1], re.DOTALL)
    assert found is not None, f"no ```python block follows {EXAMPLE_MARKER!r} in {doc}"
    script = found.group(1)
    assert script.count("http://localhost:8000") == 1 and script.count("YOUR-USER-KEY") == 1
    script = script.replace("http://localhost:8000", stack.url).replace("YOUR-USER-KEY", stack.keys["user"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    counts = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert sum(counts.values()) == 1000 and set(counts) <= {"00", "01", "10", "11"}
    assert counts.get("00", 0) + counts.get("11", 0) > 850, counts
