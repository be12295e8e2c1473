"""Primitive unified blocs (PUBs): a task of Sampler or Estimator PUBs, and their results (docs/api.md).

A PUB task is one claim, one flow run and one runner execution however many circuits, parameter bindings
and observables it holds: what Qiskit's `SamplerV2` and `EstimatorV2` are given, as documents.

Parameters: a PUB's circuit is OpenQASM 3 that declares its free parameters as `input float[64] name;`
(what `qiskit.qasm3.dumps` writes for a parameterised circuit). Each row of `parameter_values` gives one
value per input, **in the order the inputs are declared in the source**; `shape` is the shape of the array
of bindings (Qiskit's `BindingsArray.shape`), the rows being that array flattened in C order.

Observables (Estimator): each a sum of Pauli terms on the circuit's (physical) qubits, flattened in C order
with `observables_shape`; the results have the broadcast of `observables_shape` and `shape`, as Qiskit's.

Everything here is pure and linear in the size of the document. Whether a PUB fits its device (qubits,
inputs, price) is admission's; executing it is the runner's.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from pydantic import Field, model_validator

from vqpu_protocol.limits import MAX_CIRCUIT_BYTES, MAX_MEMORY_CHARS, MAX_MEMORY_SHOTS, MAX_SHOTS
from vqpu_protocol.shapes import broadcast, size
from vqpu_protocol.wire import Document, SafeStr

MAX_PUBS = 10_000
"""Most PUBs (circuits) one task holds."""
MAX_PUB_BINDINGS = 100_000
"""Most parameter bindings (rows) one PUB holds, and most elements of an Estimator PUB's broadcast shape."""
MAX_PUB_PARAMETERS = 10_000
"""Most `input` parameters one PUB circuit declares."""
MAX_PUB_VALUES = 1_000_000
"""Most parameter values (rows times inputs) one task holds in all."""
MAX_OBSERVABLE_TERMS = 100_000
"""Most Pauli terms one task's observables hold in all."""
MAX_TERM_QUBITS = 1_024
"""Most qubits one Pauli term acts on."""
MAX_SHAPE_DIMS = 8
ESTIMATOR_TRAJECTORIES = 1024
"""Shots (trajectories) an estimator PUB averages over where each shot is simulated on its own (gate noise
on a statevector, or a circuit that measures): Aer's default shots, which its `EstimatorV2` runs with."""
SAMPLED_SHOT_BYTES = 128
"""Memory a sampler holds per shot it samples: Aer's `SamplerV2` always asks for every shot's outcome
(a string of its own in Aer's result), measured at 50-100 bytes; priced as this."""

Value = Annotated[float, Field(allow_inf_nan=False)]
Shape = Annotated[list[Annotated[int, Field(ge=0, le=MAX_PUB_BINDINGS)]], Field(max_length=MAX_SHAPE_DIMS)]
PubCircuit = Annotated[SafeStr, Field(min_length=1, max_length=MAX_CIRCUIT_BYTES, description="OpenQASM source")]
Rows = Annotated[list[Annotated[list[Value], Field(max_length=MAX_PUB_PARAMETERS)]], Field(max_length=MAX_PUB_BINDINGS)]


class PauliTerm(Document):
    """One term of an observable: `coeff` times the Pauli operators `paulis[k]` on qubits `qubits[k]`
    (Qiskit's `SparsePauliOp.to_sparse_list`); qubits are the circuit's, which for a circuit transpiled to
    the device (`observable.apply_layout(isa.layout)`) are the device's."""

    paulis: Annotated[str, Field(pattern=r"^[IXYZ]*$", max_length=MAX_TERM_QUBITS)]
    qubits: Annotated[list[Annotated[int, Field(ge=0, le=MAX_TERM_QUBITS * 1024)]], Field(max_length=MAX_TERM_QUBITS)]
    coeff: Value

    @model_validator(mode="after")
    def _one_qubit_per_pauli(self) -> PauliTerm:
        if len(self.paulis) != len(self.qubits):
            raise ValueError(f"{len(self.paulis)} Pauli operator(s) on {len(self.qubits)} qubit(s)")
        if len(set(self.qubits)) != len(self.qubits):
            raise ValueError("a Pauli term names a qubit twice")
        return self


Observable = Annotated[list[PauliTerm], Field(max_length=MAX_OBSERVABLE_TERMS)]


class _Pub(Document):
    circuit: PubCircuit
    parameter_values: Rows = Field(
        default_factory=list,
        description="one row per binding, one value per `input` in declaration order; [] with no parameters",
    )
    shape: Shape | None = Field(
        None, description="the bindings' shape (rows are it flattened, C order); absent: [rows] or [] without rows"
    )

    @model_validator(mode="after")
    def _rows_fill_the_shape(self) -> _Pub:
        widths = {len(row) for row in self.parameter_values}
        if len(widths) > 1:
            raise ValueError(f"parameter_values rows differ in length ({', '.join(map(str, sorted(widths)))})")
        if self.shape is not None and size(self.shape) != self.bindings:
            raise ValueError(
                f"shape {self.shape} holds {size(self.shape)} bindings; parameter_values gives {self.bindings}"
            )
        if self.bindings > MAX_PUB_BINDINGS:
            raise ValueError(f"{self.bindings} bindings; a PUB holds at most {MAX_PUB_BINDINGS}")
        return self

    @property
    def bindings(self) -> int:
        """How many parameter bindings the PUB runs: its rows, or 1 without any."""
        return len(self.parameter_values) or (size(self.shape) if self.shape is not None else 1)

    @property
    def bindings_shape(self) -> list[int]:
        if self.shape is not None:
            return list(self.shape)
        return [len(self.parameter_values)] if self.parameter_values else []

    @property
    def num_parameters(self) -> int:
        return len(self.parameter_values[0]) if self.parameter_values else 0


class SamplerPub(_Pub):
    """A circuit, its parameter bindings and its shots: each binding is run `shots` times."""

    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)] | None = Field(
        None, description="shots per binding; absent: the task's `shots` (the sampler's default)"
    )


class EstimatorPub(_Pub):
    """A circuit, observables, parameter bindings and a target precision (Aer's EstimatorV2: expectation
    values computed exactly, then, for a precision above 0, drawn from a normal distribution of that width)."""

    observables: Annotated[list[Observable], Field(min_length=1, max_length=MAX_PUB_BINDINGS)]
    observables_shape: Shape | None = Field(None, description="the observables' shape; absent: [len(observables)]")
    precision: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None = Field(
        None, description="standard error asked of each expectation value; absent: 0 (exact)"
    )

    @model_validator(mode="after")
    def _observables_broadcast(self) -> EstimatorPub:
        if self.observables_shape is not None and size(self.observables_shape) != len(self.observables):
            raise ValueError(
                f"observables_shape {self.observables_shape} holds {size(self.observables_shape)} observables; "
                f"{len(self.observables)} given"
            )
        shape = broadcast(self.obs_shape, self.bindings_shape)
        if shape is None:
            raise ValueError(
                f"observables of shape {self.obs_shape} and bindings of shape {self.bindings_shape} do not broadcast"
            )
        if size(shape) > MAX_PUB_BINDINGS:
            raise ValueError(f"the results' shape {shape} holds {size(shape)} values; at most {MAX_PUB_BINDINGS}")
        return self

    @property
    def obs_shape(self) -> list[int]:
        return list(self.observables_shape) if self.observables_shape is not None else [len(self.observables)]

    @property
    def result_shape(self) -> list[int]:
        shape = broadcast(self.obs_shape, self.bindings_shape)
        assert shape is not None  # checked at validation
        return shape


class _Totals:
    """What every kind of PUB list is bounded by, checked once for the whole task."""

    @staticmethod
    def check(pubs: list[SamplerPub] | list[EstimatorPub]) -> None:
        values = sum(p.bindings * p.num_parameters for p in pubs)
        if values > MAX_PUB_VALUES:
            raise ValueError(f"{values} parameter values in all; a task holds at most {MAX_PUB_VALUES}")


class SamplerPubs(Document):
    kind: Literal["sampler"] = "sampler"
    pubs: Annotated[list[SamplerPub], Field(min_length=1, max_length=MAX_PUBS)]

    @model_validator(mode="after")
    def _bounded(self) -> SamplerPubs:
        _Totals.check(self.pubs)
        return self


class EstimatorPubs(Document):
    kind: Literal["estimator"] = "estimator"
    pubs: Annotated[list[EstimatorPub], Field(min_length=1, max_length=MAX_PUBS)]

    @model_validator(mode="after")
    def _bounded(self) -> EstimatorPubs:
        _Totals.check(self.pubs)
        terms = sum(len(obs) for p in self.pubs for obs in p.observables)
        if terms > MAX_OBSERVABLE_TERMS:
            raise ValueError(f"{terms} Pauli terms in all; a task holds at most {MAX_OBSERVABLE_TERMS}")
        return self


Pubs = Annotated[SamplerPubs | EstimatorPubs, Field(discriminator="kind")]


def sampled_shots(pubs: SamplerPubs | EstimatorPubs, default_shots: int | None) -> int:
    """Shots a PUB task samples in all (its `shots` as stored): each sampler PUB's shots times its
    bindings; 0 for an estimator task, which samples none."""
    if isinstance(pubs, EstimatorPubs):
        return 0
    return sum((p.shots or default_shots or 0) * p.bindings for p in pubs.pubs)


# --- results ---------------------------------------------------------------------------------

Bitstring = Annotated[str, Field(pattern=r"^[01]+( [01]+)*$", max_length=65_536)]


class Register(Document):
    name: Annotated[SafeStr, Field(min_length=1, max_length=256)]
    num_bits: Annotated[int, Field(ge=1)]


class SamplerPubResult(Document):
    """One Sampler PUB's outcomes: per binding (C order over `shape`), the counts of the joint outcome of
    every register, keyed as a circuit's counts are (`registers` last first, separated by spaces)."""

    shape: Shape
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)]
    registers: Annotated[list[Register], Field(max_length=65_536)] = Field(
        description="the circuit's classical registers in declaration order: the V2 result's bit arrays"
    )
    counts: Annotated[list[dict[Bitstring, Annotated[int, Field(ge=0)]]], Field(max_length=MAX_PUB_BINDINGS)]
    memory: Annotated[list[list[Bitstring]], Field(max_length=MAX_MEMORY_SHOTS)] | None = Field(
        None,
        description="per binding, every shot's outcome in order (each a key of that binding's counts); only "
        "when options.memory asked",
    )

    @model_validator(mode="after")
    def _counts_add_up(self) -> SamplerPubResult:
        if len(self.counts) != size(self.shape):
            raise ValueError(f"{len(self.counts)} counts for a shape of {size(self.shape)} bindings")
        for i, counts in enumerate(self.counts):
            total = sum(counts.values())
            if total != self.shots:
                raise ValueError(f"counts of binding {i} add up to {total}, not to the {self.shots} shots")
        if self.memory is not None:
            if len(self.memory) != len(self.counts):
                raise ValueError(f"memory of {len(self.memory)} bindings for {len(self.counts)} counts")
            for memory, counts in zip(self.memory, self.counts, strict=True):
                check_memory(memory, counts, self.shots)
        return self


class EstimatorPubResult(Document):
    """One Estimator PUB's expectation values and standard errors, flattened in C order over `shape`."""

    shape: Shape
    evs: Annotated[list[Value], Field(max_length=MAX_PUB_BINDINGS)]
    stds: Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]], Field(max_length=MAX_PUB_BINDINGS)]
    precision: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(description="the precision asked")

    @model_validator(mode="after")
    def _sized(self) -> EstimatorPubResult:
        if not len(self.evs) == len(self.stds) == size(self.shape):
            raise ValueError(f"{len(self.evs)} evs and {len(self.stds)} stds for a shape of {size(self.shape)}")
        return self


class SamplerPubResults(Document):
    kind: Literal["sampler"] = "sampler"
    pubs: Annotated[list[SamplerPubResult], Field(max_length=MAX_PUBS)]

    def memory_chars(self) -> int:
        """Characters of every PUB's per-shot memory (held to MAX_MEMORY_CHARS as a circuit's is)."""
        return sum(len(key) for pub in self.pubs for shots in pub.memory or [] for key in shots)


def check_memory(memory: list[str], counts: dict[str, int], shots: int) -> None:
    """Memory is the counts unfolded: one entry per shot, tallying to them exactly. Linear."""
    if len(memory) != shots:
        raise ValueError(f"memory holds {len(memory)} shots, not the {shots} shots")
    chars = sum(map(len, memory))
    if chars > MAX_MEMORY_CHARS:
        raise ValueError(f"memory holds {chars} characters; the limit is {MAX_MEMORY_CHARS}")
    tally = Counter(memory)
    if dict(tally) != {key: n for key, n in counts.items() if n}:
        wrong = next(k for k in sorted(set(tally) | set(counts)) if tally.get(k, 0) != counts.get(k, 0))
        raise ValueError(
            f"memory does not tally to counts: {wrong!r} is {tally.get(wrong, 0)} in memory, "
            f"{counts.get(wrong, 0)} in counts"
        )


class EstimatorPubResults(Document):
    kind: Literal["estimator"] = "estimator"
    pubs: Annotated[list[EstimatorPubResult], Field(max_length=MAX_PUBS)]


PubResults = Annotated[SamplerPubResults | EstimatorPubResults, Field(discriminator="kind")]


def resolved(pubs: SamplerPubs | EstimatorPubs, default_shots: int | None) -> SamplerPubs | EstimatorPubs:
    """The PUBs as stored and run: every sampler PUB's shots and every estimator PUB's precision given
    (the task's `shots`; 0, exact). Raises ValueError for a sampler PUB left without shots."""
    if isinstance(pubs, EstimatorPubs):
        return EstimatorPubs(pubs=[p.model_copy(update={"precision": p.precision or 0.0}) for p in pubs.pubs])
    missing = [i for i, p in enumerate(pubs.pubs) if p.shots is None]
    if missing and default_shots is None:
        raise ValueError(f"sampler PUB {missing[0]} gives no shots and the task gives no default `shots`")
    return SamplerPubs(pubs=[p.model_copy(update={"shots": p.shots or default_shots}) for p in pubs.pubs])
