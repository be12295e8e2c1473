"""External reference for noise inside control-flow blocks: the runner on a noisy Fez dynamic circuit
against Qiskit-Aer run in-process (`AerSimulator(noise_model=NoiseModel.from_backend(backend))`) on the
same parsed circuit. Aer applies a noise model's gate errors inside blocks as at top level; the check
that it does: 400 `sx` in an `if` that is always taken depolarise as the same gates at top level.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from device_registry import Snapshot
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from runner.circuit import parse
from runner.cli import main
from tests.conftest import MakeRunDir

SHOTS = 20_000
TOLERANCE = 0.03
"""Two samplings of 20,000 shots over at most 8 outcomes differ by about 0.01 in total variation."""

SX_PAIRS = "sx $0;\n" * 400  # the identity, ideally: what is left is the gates' noise
CIRCUITS = {
    "teleportation": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[3] c;\nrx(1.1) $0;\nh $1;\ncx $1, $2;\n'
    "cx $0, $1;\nh $0;\nc[0] = measure $0;\nc[1] = measure $1;\nif (c[1]) { x $2; }\nif (c[0]) { z $2; }\n"
    "c[2] = measure $2;\n",
    "400 sx in an if always taken": f"OPENQASM 3.0;\nbit[2] c;\nx $1;\nc[1] = measure $1;\nif (c[1]) {{\n{SX_PAIRS}}}\n"
    "c[0] = measure $0;\n",
    "switch with a default": "OPENQASM 3.0;\nbit[2] c;\nbit[1] d;\nsx $0;\nsx $1;\nc[0] = measure $0;\n"
    "c[1] = measure $1;\nswitch (c) { case 0 { x $2; } case 3 { sx $2; } default { } }\nd[0] = measure $2;\n",
}


@pytest.fixture(scope="module")
def reference_noise(fez: Snapshot) -> NoiseModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return NoiseModel.from_backend(SnapshotBackend(fez))


def _ours(make_run_dir: MakeRunDir, source: str, fez: Snapshot) -> dict[str, int]:
    run_dir: Path = make_run_dir(
        source, fez, dialect="qasm3", shots=SHOTS, seed=11, options={"noise_model": "relaxation"}
    )
    assert main([str(run_dir)]) == 0
    counts: dict[str, int] = json.loads((run_dir / "result.json").read_text())["counts"]
    return counts


def _reference(source: str, fez: Snapshot, noise: NoiseModel) -> dict[str, int]:
    # A dynamic run seeds shot i with seed + i: a seed near ours would replay most of our shots.
    simulator = AerSimulator(method="density_matrix", noise_model=noise, seed_simulator=1_000_029)
    counts: dict[str, int] = simulator.run(parse(source, "qasm3", fez), shots=SHOTS).result().get_counts()
    return counts


def _tv(a: dict[str, int], b: dict[str, int]) -> float:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / (2 * SHOTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CIRCUITS))
def test_a_noisy_dynamic_circuit_agrees_with_aer_from_backend(
    make_run_dir: MakeRunDir, fez: Snapshot, reference_noise: NoiseModel, name: str
) -> None:
    source = CIRCUITS[name]
    tv = _tv(_ours(make_run_dir, source, fez), _reference(source, fez, reference_noise))
    assert tv <= TOLERANCE, f"{name}: TV {tv:.4f} against NoiseModel.from_backend"


@pytest.mark.slow
def test_gate_noise_inside_an_if_block_is_the_noise_at_top_level(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    inside = _ours(make_run_dir, CIRCUITS["400 sx in an if always taken"], fez)
    top = _ours(
        make_run_dir, f"OPENQASM 3.0;\nbit[2] c;\nx $1;\nc[1] = measure $1;\n{SX_PAIRS}c[0] = measure $0;\n", fez
    )
    flipped_inside, flipped_top = (sum(n for k, n in c.items() if k[-1] == "1") / SHOTS for c in (inside, top))
    assert flipped_top > 0.1  # the check can see the noise at all: 400 noisy sx flip about a fifth
    assert abs(flipped_inside - flipped_top) < 0.02, (flipped_inside, flipped_top)
