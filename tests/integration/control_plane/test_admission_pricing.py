"""Admission prices a task before storing it: each case the issue measured on the landed code is refused
at submit, naming its limit and showing its price, and nothing is stored; what fits is admitted with
the price that viability shows. Over SQLite and PostgreSQL, through the real ASGI app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.conftest import served
from vqpu_service.config import Settings

GiB = 1024**3


def qasm2(width: int, body: str) -> str:
    return f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{width}];\ncreg c[{width}];\n{body}measure q -> c;\n'


LAYERED_20 = qasm2(20, "sx q;\n" * 50)
"""20 noisy Fez qubits, 50 layers of `sx q;`: about 1.5 s a shot on the landed runner."""
WIDE_30 = qasm2(30, "sx q;\n")
"""An ideal 30-qubit statevector: 16 GiB of amplitudes."""
WIDE_156 = qasm2(156, "sx q;\n")


@pytest.fixture
def priced(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The server with its default limits (a 1 MiB circuit fits the body)."""
    settings = Settings(database_url=database_url, keys_file=tmp_path / "keys.json", event_poll_s=0.2)
    with served(settings) as api:
        yield api


def submit(api: Api, device_id: str, circuit: str, shots: int, **options: Any) -> Any:
    body = {"device": device_id, "circuit": circuit, "dialect": "qasm2", "shots": shots, "options": options}
    return api.call("POST", "/v1/tasks", "alice", json=body)


def refused(response: Any, code: str, limit: str) -> dict[str, Any]:
    err = error(response)
    assert (response.status_code, err["code"], err["detail"]["limit"]) == (422, code, limit), err
    return err


def declare_slots(api: Api, memory_bytes: int, gpu_memory_bytes: int | None = None, agent: str = "site-a") -> None:
    capacity = {"memory_bytes": memory_bytes, "gpu_memory_bytes": gpu_memory_bytes}
    r = api.call(
        "POST",
        "/v1/agent/claim",
        "agent",
        json={"agent_id": agent, "devices": ["ibm-fez-ideal"], "capacity": capacity},
    )
    assert r.status_code in (200, 204), r.text


def test_ten_million_shots_of_a_noisy_20_qubit_circuit_are_refused_with_their_estimate(priced: Api) -> None:
    err = refused(submit(priced, "ibm-fez", LAYERED_20, 10_000_000), "TOO_LONG", "max_runtime_s")
    estimate = err["detail"]["estimate"]
    assert estimate["method"] == "statevector" and estimate["noisy"] and estimate["active_qubits"] == 20
    assert estimate["expanded_ops"] == 50 * 20 + 20
    assert err["detail"]["limit_s"] == 3600.0 and estimate["estimated_runtime_s"] > 30 * 24 * 3600  # months
    assert priced.count() == 0


def test_viability_shows_the_price_a_submission_stores(priced: Api) -> None:
    view = priced.call(
        "POST", "/v1/devices/ibm-fez/viability", json={"circuit": LAYERED_20, "dialect": "qasm2", "shots": 2}
    ).json()
    assert view["admissible"] and view["refusal"] is None
    task = submit(priced, "ibm-fez", LAYERED_20, 2).json()
    assert task["estimate"] == view["price"]
    assert task["options"]["max_runtime_s"] == 3600.0
    too_many = priced.call(
        "POST", "/v1/devices/ibm-fez/viability", json={"circuit": LAYERED_20, "dialect": "qasm2", "shots": 10**7}
    ).json()
    assert not too_many["admissible"] and too_many["refusal"]["code"] == "TOO_LONG" and too_many["violations"] == []
    assert too_many["price"]["estimated_runtime_s"] > task["estimate"]["estimated_runtime_s"] * 10**6 / 2


def test_a_30_qubit_statevector_is_refused_where_a_slot_holds_less_than_16_gib_and_admitted_where_it_fits(
    priced: Api,
) -> None:
    err = refused(submit(priced, "ibm-fez-ideal", WIDE_30, 100), "TOO_LARGE", "memory")
    assert err["detail"]["needed"] >= 16 * GiB and err["detail"]["allowed"] == 8 * GiB
    assert "VQPU_DEFAULT_SLOT_MEMORY_BYTES" in err["message"]  # no agent has said what its slots hold
    declare_slots(priced, 12 * GiB)
    err = refused(submit(priced, "ibm-fez-ideal", WIDE_30, 100), "TOO_LARGE", "memory")
    assert err["detail"]["allowed"] == 12 * GiB and "declared by the agents" in err["message"]
    assert priced.count() == 0
    declare_slots(priced, 32 * GiB)
    r = submit(priced, "ibm-fez-ideal", WIDE_30, 100)
    assert r.status_code == 201, r.text
    assert r.json()["estimate"]["memory_bytes"] >= 16 * GiB


def test_a_gpu_task_is_held_to_the_gpu_memory_of_a_slot_and_a_cpu_task_to_host_memory(priced: Api) -> None:
    declare_slots(priced, 12 * GiB, 40 * GiB, agent="gpu-site")
    declare_slots(priced, 14 * GiB, agent="cpu-site")
    err = refused(submit(priced, "ibm-fez-ideal", WIDE_30, 100, device="CPU"), "TOO_LARGE", "memory")
    assert err["detail"]["allowed"] == 14 * GiB and "host memory" in err["message"]
    view = priced.call(
        "POST",
        "/v1/devices/ibm-fez-ideal/viability",
        json={"circuit": WIDE_30, "dialect": "qasm2", "shots": 100, "options": {"device": "CPU"}},
    ).json()
    assert not view["admissible"] and view["refusal"]["detail"]["allowed"] == 14 * GiB
    assert priced.count() == 0
    for device in ("GPU", "auto"):  # auto runs on the GPU wherever there is one
        r = submit(priced, "ibm-fez-ideal", WIDE_30, 100, device=device)
        assert r.status_code == 201, r.text
    wider = qasm2(32, "sx q;\n")  # 64 GiB: more than any GPU here
    err = refused(submit(priced, "ibm-fez-ideal", wider, 100, device="GPU"), "TOO_LARGE", "memory")
    assert err["detail"]["allowed"] == 40 * GiB and "GPU memory" in err["message"]
    assert priced.count() == 2


def test_the_counts_of_156_wide_mps_shots_are_refused_before_anything_runs(priced: Api) -> None:
    err = refused(submit(priced, "ibm-fez", WIDE_156, 100_000, method="matrix_product_state"), "TOO_LARGE", "counts")
    assert err["detail"]["needed"] > 16_000_000 and err["detail"]["allowed"] == 2_000_000
    assert priced.count() == 0


def test_a_1_mib_broadcast_circuit_is_refused_by_its_expanded_size(priced: Api) -> None:
    head = qasm2(156, "")
    layers = (1024 * 1024 - len(head)) // len("sx q;\n")
    circuit = qasm2(156, "sx q;\n" * layers)
    assert len(circuit) <= 1024 * 1024
    err = refused(submit(priced, "ibm-fez", circuit, 10), "TOO_LARGE", "expanded_ops")
    assert err["detail"]["needed"] == 156 * (layers + 1) and err["detail"]["allowed"] == 5_000_000
    assert priced.count() == 0


def test_a_wall_time_limit_above_the_key_ceiling_is_refused_rather_than_lowered(priced: Api) -> None:
    r = submit(priced, "ibm-fez", LAYERED_20, 2, max_runtime_s=7200)
    err = error(r)
    assert (r.status_code, err["code"]) == (400, "INVALID_OPTIONS")
    assert "VQPU_MAX_RUNTIME_S" in err["message"]
    asked = submit(priced, "ibm-fez", LAYERED_20, 2, max_runtime_s=60).json()
    assert asked["options"]["max_runtime_s"] == 60.0
