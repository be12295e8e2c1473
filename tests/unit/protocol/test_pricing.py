"""The price of a task: method, memory, worst counts size and run time, from the circuit's statistics.

Aer's own memory check (`max_memory_mb`) is the reference for the state's memory: see
tests/unit/runner/test_pricing_agrees_with_aer.py. Here: the formulas' shape, the caps, the contract.
"""

from __future__ import annotations

import json
import math

import pytest

from device_registry import Snapshot, calibration, topologies
from device_registry.admissibility import Checker, CircuitStats
from vqpu_protocol import pricing
from vqpu_protocol.limits import MAX_COUNTS_CHARS
from vqpu_protocol.pricing import Price, is_noisy, plan_method, price
from vqpu_protocol.rundir import RunOptions

IDEAL = RunOptions()


def stats(
    n: int, *, ops: int = 10, clbits: int | None = None, registers: int = 1, dynamic: bool = False
) -> CircuitStats:
    return CircuitStats(
        expanded_ops=ops,
        two_qubit_ops=0,
        active_qubits=frozenset(range(n)),
        clbits=n if clbits is None else clbits,
        classical_registers=registers,
        dynamic=dynamic,
        crossings=(0,) * max(n - 1, 0),
    )


def options(**given: object) -> RunOptions:
    return RunOptions.model_validate(given)


def test_an_ideal_statevector_costs_sixteen_bytes_per_amplitude_and_single_precision_half(
    fez_ideal: Snapshot,
) -> None:
    double = price(stats(20), fez_ideal, IDEAL, 100)
    single = price(stats(20), fez_ideal, options(precision="single"), 100)
    assert (double.method, double.noisy) == ("statevector", False)
    assert double.state_bytes == 2**20 * 16
    assert single.state_bytes == 2**20 * 8
    assert double.memory_bytes - double.state_bytes == single.memory_bytes - single.state_bytes > 0


def test_a_thirty_qubit_ideal_statevector_is_priced_at_sixteen_gibibytes(fez_ideal: Snapshot) -> None:
    assert price(stats(30), fez_ideal, IDEAL, 1).state_bytes == 16 * 2**30


def test_a_small_noisy_circuit_is_a_density_matrix_of_four_to_the_n_elements(fez: Snapshot) -> None:
    priced = price(stats(8), fez, IDEAL, 1000)
    assert (priced.method, priced.noisy, priced.per_shot) == ("density_matrix", True, False)
    assert priced.state_bytes == 4**8 * 16


def test_a_wide_noisy_circuit_is_simulated_shot_by_shot_and_each_shot_costs(fez: Snapshot) -> None:
    few = price(stats(14), fez, IDEAL, 100)
    many = price(stats(14), fez, IDEAL, 10_000)
    assert (few.method, few.per_shot) == ("statevector", True)
    one = price(stats(14), fez, IDEAL, 1)
    per_shot = few.estimated_simulate_s - one.estimated_simulate_s
    assert many.estimated_simulate_s - few.estimated_simulate_s == pytest.approx(100 * per_shot)


def test_an_ideal_circuit_is_simulated_once_and_shots_are_only_sampled(fez_ideal: Snapshot) -> None:
    few = price(stats(20, ops=1000), fez_ideal, IDEAL, 100)
    many = price(stats(20, ops=1000), fez_ideal, IDEAL, 10_000)
    dynamic = price(stats(20, ops=1000, dynamic=True), fez_ideal, IDEAL, 10_000)
    assert not few.per_shot and dynamic.per_shot
    assert many.estimated_simulate_s < 2 * few.estimated_simulate_s
    assert dynamic.estimated_simulate_s > 1000 * few.estimated_simulate_s


def test_a_whole_device_statevector_is_capped_and_still_valid_json(fez_ideal: Snapshot) -> None:
    priced = price(stats(156, ops=10**8), fez_ideal, options(method="density_matrix"), 10**7)
    assert priced.memory_bytes == priced.state_bytes == pricing.MAX_PRICED_BYTES
    assert priced.estimated_runtime_s == pricing.MAX_PRICED_SECONDS
    again = Price.model_validate(json.loads(priced.model_dump_json()))
    assert again == priced
    assert all(math.isfinite(v) for v in (again.estimated_runtime_s, again.estimated_simulate_s))


def test_worst_counts_are_one_key_per_shot_up_to_every_outcome(fez_ideal: Snapshot) -> None:
    assert price(stats(3), fez_ideal, IDEAL, 1000).counts_chars == 2**3 * (3 + 12)
    assert price(stats(20), fez_ideal, IDEAL, 1000).counts_chars == 1000 * (20 + 12)
    two_registers = stats(4, clbits=6, registers=2)
    assert price(two_registers, fez_ideal, IDEAL, 1000).counts_chars == 2**6 * (6 + 1 + 12)


def test_a_whole_device_mps_with_many_shots_has_counts_over_the_limit(fez: Snapshot) -> None:
    priced = price(stats(156), fez, options(method="matrix_product_state"), 100_000)
    assert priced.counts_chars == 100_000 * (156 + 12) > MAX_COUNTS_CHARS


def test_a_matrix_product_state_is_priced_by_the_entanglement_its_cuts_can_hold(fez_ideal: Snapshot) -> None:
    mps = options(method="matrix_product_state")
    chain = CircuitStats(
        expanded_ops=200, two_qubit_ops=99, active_qubits=frozenset(range(100)), clbits=100,
        classical_registers=1, dynamic=False, crossings=(1,) * 99,
    )  # fmt: skip
    deep = CircuitStats(
        expanded_ops=2000, two_qubit_ops=1000, active_qubits=frozenset(range(100)), clbits=100,
        classical_registers=1, dynamic=False, crossings=(10,) * 99,
    )  # fmt: skip
    ghz = price(chain, fez_ideal, mps, 1000)
    assert ghz.state_bytes == (2 * 2 * 2 + 98 * 2 * 2 * 2) * 16  # end sites 2x1x2, inner ones 2x2x2
    assert price(deep, fez_ideal, mps, 1000).state_bytes > 1000 * ghz.state_bytes


@pytest.mark.parametrize(
    ("given", "n", "noisy", "method"),
    [
        ({}, 30, False, "statevector"),
        ({}, 10, True, "density_matrix"),
        ({}, 11, True, "statevector"),
        ({"method": "matrix_product_state"}, 5, True, "matrix_product_state"),
        ({"method": "statevector"}, 5, True, "statevector"),
    ],
)
def test_the_method_follows_noise_and_size_unless_one_is_asked(
    given: dict[str, object], n: int, noisy: bool, method: str
) -> None:
    chosen, reason = plan_method(options(**given), n, noisy)
    assert chosen == method
    assert reason


def test_an_ideal_device_or_removed_channels_make_no_noise(fez: Snapshot, fez_ideal: Snapshot) -> None:
    qubits = frozenset({0, 1, 2})
    assert not is_noisy(fez_ideal, qubits, IDEAL)
    assert is_noisy(fez, qubits, IDEAL)
    off = options(noise={"disable": ["gate_1q", "gate_2q", "readout"]})
    assert not is_noisy(fez, qubits, off)
    assert is_noisy(
        fez, qubits, options(noise_model="relaxation", noise={"disable": ["gate_1q", "gate_2q", "readout"]})
    )


def test_the_admission_path_prices_a_sixty_byte_whole_register_circuit_at_the_state_it_needs(
    fez_ideal: Snapshot,
) -> None:
    source = "OPENQASM 2.0;\nqreg q[30];\ncreg c[30];\nsx q;\nmeasure q -> c;\n"
    checker = Checker(source, "qasm2", fez_ideal, 100)
    assert checker.run() == []
    priced = price(checker.stats, fez_ideal, IDEAL, 1000)
    assert (priced.expanded_ops, priced.active_qubits, priced.state_bytes) == (60, 30, 16 * 2**30)


def test_pricing_takes_microseconds(fez: Snapshot) -> None:
    import time

    line = calibration.attach_uniform(topologies.line(20), calibration.Calibration(error_1q=1e-3))
    given = stats(20, ops=1000)
    started = time.perf_counter()
    for _ in range(100):
        price(given, line, IDEAL, 1000)
        price(given, fez, IDEAL, 1000)
    assert (time.perf_counter() - started) / 200 < 1e-3
