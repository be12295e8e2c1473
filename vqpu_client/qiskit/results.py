"""The service's results as a Qiskit `Result`, laid out exactly as Qiskit-Aer lays out its own.

A result document's counts and memory are bitstrings in Qiskit's order with classical registers
separated by spaces (what Aer's `get_counts()` gives on the runner's side). A Qiskit `Result` stores
them as hex (`0x5`) beside a header (`memory_slots`, `creg_sizes`, ...) from which `get_counts()` and
`get_memory()` format them back; `BackendSamplerV2` reads the hex memory itself. Header and data are
built here the way Aer builds them for the same circuit, so all three read the same as under Aer.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit.result import Result

from vqpu_client.qiskit.errors import ResultShapeError
from vqpu_protocol.limits import MAX_SEED
from vqpu_protocol.pubs import SamplerPubResults
from vqpu_protocol.rundir import ResultDocument


@dataclass(frozen=True)
class Experiment:
    """One circuit and what its task returned."""

    circuit: QuantumCircuit
    document: ResultDocument
    task_id: str


def pub_document(document: ResultDocument, pub: int | None, task_id: str) -> ResultDocument:
    """The part of a task's result that belongs to one circuit: the whole of a circuit task's (`pub` None),
    or a sampler PUB task's PUB `pub` (one binding) as a circuit task's result: its counts and shots, the
    task's provenance and timings, and the seed the runner gave that PUB (the task's seed + `pub`), with
    which a circuit task of that circuit alone gives the same counts."""
    if pub is None:
        return document
    pubs = document.pubs
    if not isinstance(pubs, SamplerPubResults) or pub >= len(pubs.pubs):
        found = "no PUB results" if pubs is None else f"{len(pubs.pubs)} {pubs.kind} PUB results"
        raise ResultShapeError(f"task {task_id} was sent sampler PUB {pub} and returned {found}")
    result = pubs.pubs[pub]
    if len(result.counts) != 1:
        raise ResultShapeError(
            f"PUB {pub} of task {task_id} has no parameters yet returned {len(result.counts)} bindings"
        )
    seed = (document.provenance.seed + pub) % (MAX_SEED + 1)
    provenance = document.provenance.model_copy(update={"seed": seed})
    return document.model_copy(
        update={
            "counts": result.counts[0],
            "shots": result.shots,
            "memory": None if result.memory is None else result.memory[0],
            "pubs": None,
            "provenance": provenance,
        }
    )


def experiment_header(circuit: QuantumCircuit) -> dict[str, Any]:
    """The header Aer writes for `circuit` (qiskit_aer.backends.aer_compiler.assemble_circuit)."""
    phase = circuit.global_phase
    unbound = isinstance(phase, ParameterExpression) and bool(phase.parameters)
    return {
        "creg_sizes": [[creg.name, creg.size] for creg in circuit.cregs],
        "global_phase": 0.0 if unbound else float(phase),
        "memory_slots": circuit.num_clbits,
        "n_qubits": circuit.num_qubits,
        "name": circuit.name,
        "qreg_sizes": [[qreg.name, qreg.size] for qreg in circuit.qregs],
        "metadata": dict(circuit.metadata or {}),
    }


def to_hex(bitstring: str, width: int) -> str:
    """`"1 01"` -> `"0x5"`: the register spaces dropped, the bits read as one number, most significant first."""
    bits = bitstring.replace(" ", "")
    if len(bits) != width or bits.strip("01"):
        raise ResultShapeError(f"outcome {bitstring!r} is not {width} bits, one per classical bit of the circuit")
    return hex(int(bits, 2))


def experiment_data(experiment: Experiment, *, memory: bool) -> dict[str, Any]:
    """One entry of `Result.results`, as a dict for `Result.from_dict`."""
    circuit, doc = experiment.circuit, experiment.document
    if doc.provenance.task_id != experiment.task_id:
        raise ResultShapeError(f"the result read for task {experiment.task_id} is task {doc.provenance.task_id}'s")
    width = circuit.num_clbits
    as_hex = {key: to_hex(key, width) for key in doc.counts}
    data: dict[str, Any] = {"counts": {as_hex[key]: n for key, n in doc.counts.items() if n}}
    if memory:
        if doc.memory is None:
            raise ResultShapeError(
                f"task {experiment.task_id} was asked for per-shot memory and returned none "
                "(a runner older than options.memory?)"
            )
        data["memory"] = [as_hex[shot] for shot in doc.memory]
    provenance = doc.provenance.model_dump(mode="json")
    return {
        "shots": doc.shots,
        "success": True,
        "data": data,
        "meas_level": 2,
        "header": experiment_header(circuit),
        "status": "DONE",
        "seed_simulator": doc.provenance.seed,
        "metadata": {**provenance, "timings": doc.timings.model_dump(mode="json")},
        "time_taken": doc.timings.total_s,
    }


def build_result(
    experiments: Sequence[Experiment], *, backend_name: str, backend_version: str, job_id: str, memory: bool
) -> Result:
    """A Qiskit `Result` with one experiment per task, in the order the circuits were given."""
    return Result.from_dict(
        {
            "backend_name": backend_name,
            "backend_version": backend_version,
            "date": datetime.datetime.now(datetime.UTC).isoformat(),
            "header": None,
            "job_id": job_id,
            "qobj_id": "",
            "status": "COMPLETED",
            "success": True,
            "results": [experiment_data(e, memory=memory) for e in experiments],
            "metadata": {"task_ids": [e.task_id for e in experiments]},
        }
    )
