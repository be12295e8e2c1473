"""`options.noise` through the real runner on ibm-fez, and at the control plane's door.

Each circuit isolates one channel (the others disabled) so the outcome has a closed form: depolarizing
channels commute with the gates and compose into one, readout flips a fixed state, and relaxation
decays |1> as exp(-t/T1). The density-matrix method makes these probabilities exact, so the counts
differ from them by sampling alone; the tolerance is five binomial standard deviations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_registry import Snapshot
from harness.circuits import qasm2
from runner.cli import main
from tests.conftest import MakeRunDir
from tests.integration.control_plane.api_client import Api, error
from tests.integration.served_api import claim_one, complete, served_api
from vqpu_protocol.limits import MAX_NOISE_SCALE
from vqpu_protocol.rundir import ResultDocument, materialise, read_outcome

SHOTS = 8192
BELL = qasm2("sx q[0];\ncz q[0],q[1];\nsx q[1];\nmeasure q -> c;")
CZ_CHAIN = 20
SX_CHAIN = 40
IDLES = 200


def _known(value: float | None) -> float:
    """A calibration value the test relies on (ibm-fez has every one of them)."""
    assert value is not None
    return value


def _run(make_run_dir: MakeRunDir, circuit: str, snapshot: Snapshot, **options: Any) -> dict[str, Any]:
    run_dir = make_run_dir(circuit, snapshot, shots=SHOTS, seed=21, options=options)
    assert main([str(run_dir)]) == 0, (run_dir / "error.json").read_text()
    result: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
    return result


def _probability(result: dict[str, Any], key: str) -> float:
    return float(result["counts"].get(key, 0)) / float(result["shots"])


def _close(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= 5 * math.sqrt(max(expected * (1 - expected), 1e-4) / SHOTS)


@pytest.mark.parametrize("scale", [1, 2])
def test_gate_2q_scales_the_error_of_a_cz_chain_as_depolarizing_predicts(
    make_run_dir: MakeRunDir, fez: Snapshot, scale: int
) -> None:
    circuit = qasm2("cz q[0],q[1];\n" * CZ_CHAIN + "measure q -> c;")
    result = _run(make_run_dir, circuit, fez, noise={"scale": {"gate_2q": scale}, "disable": ["gate_1q", "readout"]})
    lam = scale * 4 * _known(fez.couplings()[(0, 1)].error) / 3
    survives = (1 - lam) ** CZ_CHAIN
    assert _close(_probability(result, "00"), survives + (1 - survives) / 4)


def test_doubling_gate_2q_measurably_raises_a_cz_chain_error(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    circuit = qasm2("cz q[0],q[1];\n" * CZ_CHAIN + "measure q -> c;")
    calibrated = 1 - _probability(_run(make_run_dir, circuit, fez), "00")
    doubled = 1 - _probability(_run(make_run_dir, circuit, fez, noise={"scale": {"gate_2q": 2}}), "00")
    disabled = 1 - _probability(_run(make_run_dir, circuit, fez, noise={"disable": ["gate_2q"]}), "00")
    assert disabled < calibrated < doubled
    assert doubled - calibrated > 0.05  # ~20 standard deviations at 8192 shots


@pytest.mark.parametrize("scale", [1, 3])
def test_gate_1q_scales_the_error_of_an_sx_chain_as_depolarizing_predicts(
    make_run_dir: MakeRunDir, fez: Snapshot, scale: int
) -> None:
    circuit = qasm2("sx q[0];\n" * SX_CHAIN + "measure q[0] -> c[0];", qubits=1)
    result = _run(make_run_dir, circuit, fez, noise={"scale": {"gate_1q": scale}, "disable": ["readout"]})
    lam = scale * 2 * _known(fez.qubits[0].error_1q)
    survives = (1 - lam) ** SX_CHAIN
    assert _close(_probability(result, "0"), survives + (1 - survives) / 2)


@pytest.mark.parametrize("scale", [0, 1, 3])
def test_readout_scales_the_flip_probability_of_a_measured_zero(
    make_run_dir: MakeRunDir, fez: Snapshot, scale: int
) -> None:
    result = _run(make_run_dir, qasm2("measure q[0] -> c[0];", qubits=1), fez, noise={"scale": {"readout": scale}})
    flip = scale * _known(fez.qubits[0].readout_error)
    if scale == 0:
        assert result["counts"] == {"0": SHOTS}
    assert _close(_probability(result, "1"), flip)


def test_disabling_readout_makes_a_measured_zero_read_exactly_zero(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    circuit = qasm2("measure q -> c;")
    assert _run(make_run_dir, circuit, fez)["counts"]["00"] < SHOTS
    assert _run(make_run_dir, circuit, fez, noise={"disable": ["readout"]})["counts"] == {"00": SHOTS}


@pytest.mark.parametrize("scale", [1, 5])
def test_relaxation_scales_the_decay_of_an_excited_idle_qubit_as_t1_predicts(
    make_run_dir: MakeRunDir, fez: Snapshot, scale: int
) -> None:
    q = fez.qubits[0]
    circuit = qasm2("x q[0];\n" + "id q[0];\n" * IDLES + "measure q[0] -> c[0];", qubits=1)
    result = _run(
        make_run_dir,
        circuit,
        fez,
        noise_model="relaxation",
        noise={"scale": {"relaxation": scale}, "disable": ["gate_1q", "readout"]},
    )
    elapsed = q.gate_durations["x"] + IDLES * q.gate_durations["id"]
    assert _close(_probability(result, "1"), math.exp(-scale * elapsed / _known(q.t1)))


def test_every_channel_disabled_on_fez_replays_the_ideal_twin_and_says_so(
    make_run_dir: MakeRunDir, fez: Snapshot, fez_ideal: Snapshot
) -> None:
    everything = ["gate_1q", "gate_2q", "readout", "relaxation"]
    silenced = _run(make_run_dir, BELL, fez, noise_model="relaxation", noise={"disable": everything})
    ideal = _run(make_run_dir, BELL, fez_ideal, noise_model="relaxation")
    assert silenced["counts"] == ideal["counts"]
    assert len(silenced["counts"]) == 4  # not a trivial distribution
    p = silenced["provenance"]
    assert (p["noise_empty"], p["noise_channels"]) == (True, 0)
    assert p["noise"] == {"scale": {}, "disable": everything}


def test_provenance_records_the_noise_asked_for_and_the_channels_applied(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    calibrated = _run(make_run_dir, BELL, fez)["provenance"]
    asked = {"scale": {"gate_2q": 1.5}, "disable": ["readout"]}
    tuned = _run(make_run_dir, BELL, fez, noise=asked)["provenance"]
    assert calibrated["noise"] == {"scale": {}, "disable": []} and calibrated["noise_empty"] is False
    assert tuned["noise"] == asked and tuned["noise_empty"] is False
    assert tuned["noise_channels"] == calibrated["noise_channels"] - 2  # one readout channel per measured qubit


# --- at the door ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with served_api(tmp_path_factory.mktemp("noise-api")) as served:
        yield served


REFUSED = {
    "unknown channel": {"noise": {"scale": {"crosstalk": 2}}},
    "negative scale": {"noise": {"scale": {"gate_1q": -1}}},
    "scale past the maximum": {"noise": {"scale": {"gate_2q": MAX_NOISE_SCALE + 1}}},
    "scaled and disabled": {"noise": {"scale": {"readout": 2}, "disable": ["readout"]}},
    "disabled twice": {"noise": {"disable": ["gate_2q", "gate_2q"]}},
    "relaxation under paper": {"noise_model": "paper", "noise": {"disable": ["relaxation"]}},
    "a scale given as text": {"noise": {"scale": {"readout": "2"}}},
}


@pytest.mark.parametrize("options", REFUSED.values(), ids=REFUSED.keys())
def test_bad_noise_options_are_refused_at_submit_and_nothing_is_stored(api: Api, options: dict[str, Any]) -> None:
    before = api.count()
    r = api.submit(device="ibm-fez", circuit=BELL, dialect="qasm2", shots=10, options=options)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_OPTIONS")
    assert any(p["loc"][:2] == ["body", "options"] for p in error(r)["detail"])
    assert api.count() == before


@pytest.mark.parametrize("options", REFUSED.values(), ids=REFUSED.keys())
def test_bad_noise_options_are_refused_by_the_viability_check(api: Api, options: dict[str, Any]) -> None:
    body = {"circuit": BELL, "dialect": "qasm2", "options": options}
    r = api.call("POST", "/v1/devices/ibm-fez/viability", json=body)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_OPTIONS")


def test_good_noise_options_are_admitted_and_kept_on_the_task(api: Api) -> None:
    options = {"noise_model": "relaxation", "noise": {"scale": {"relaxation": 2.5, "gate_2q": 0}}}
    viable = api.call(
        "POST", "/v1/devices/ibm-fez/viability", json={"circuit": BELL, "dialect": "qasm2", "options": options}
    )
    assert viable.status_code == 200 and viable.json()["admissible"] is True
    r = api.submit(device="ibm-fez", circuit=BELL, dialect="qasm2", shots=10, options=options)
    assert r.status_code == 201
    task = api.call("GET", f"/v1/tasks/{r.json()['id']}").json()
    assert task["options"]["noise"] == {"scale": {"relaxation": 2.5, "gate_2q": 0.0}, "disable": []}
    api.call("POST", f"/v1/tasks/{r.json()['id']}/cancel")


def test_noise_options_travel_from_submit_through_the_claim_to_the_runners_provenance(api: Api, tmp_path: Path) -> None:
    noise = {"scale": {"gate_1q": 2.0}, "disable": ["readout"]}
    r = api.submit(device="ibm-fez", circuit=BELL, dialect="qasm2", shots=64, seed=4, options={"noise": noise})
    assert r.status_code == 201
    claimed = claim_one(api)
    assert claimed.task.id == r.json()["id"]
    run_dir = materialise(tmp_path / "run", claimed)
    assert main([str(run_dir)]) == 0
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ResultDocument)
    assert outcome.provenance.noise.model_dump() == noise
    assert complete(api, claimed, outcome.model_dump(mode="json", by_alias=True)).status_code == 200
    served = api.call("GET", f"/v1/tasks/{claimed.task.id}/result").json()
    assert served["provenance"]["noise"] == noise and served["provenance"]["noise_channels"] > 0
