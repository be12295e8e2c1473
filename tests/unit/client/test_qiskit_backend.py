"""The Qiskit backend's own behaviour against a fake service (an httpx MockTransport): the standard IBM/Aer
run options it accepts or refuses, what a copy and a pickle of it carry, its `configuration()`, and the
defects warning issued once, at the user's line."""

from __future__ import annotations

import copy
import gc
import itertools
import json
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.result.models import MeasLevel, MeasReturnType
from qiskit_aer.noise import NoiseModel

from device_registry import Snapshot, parse_snapshot, topologies
from device_registry.calibration import attach_uniform
from device_registry.qiskit_backend import DeviceDefectsWarning
from vqpu_client.errors import KeyFileError, UsageError
from vqpu_client.qiskit import BackendConfiguration, RunOptionsError, VQPUBackend, VQPUProvider
from vqpu_client.qiskit.run_options import CHECKS, DEFAULTS
from vqpu_protocol.limits import MAX_SHOTS

KEY = "vqpu_u_0123456789abcdef"
_urls = itertools.count()
_LIVE: dict[str, FakeService] = {}
"""Each fake service by URL: a pickled transport comes back to the same one, as a reloaded backend reaches
the same real service."""


def _live(url: str) -> FakeService:
    return _LIVE[url]


def _faulty_line() -> Snapshot:
    """A calibrated 4-qubit line whose coupler (2, 3) is UNAVAILABLE."""
    data = attach_uniform(topologies.line(4, device_id="faulty-line")).with_epoch(3).to_json_dict()
    for edge in data["edges"]:
        if (edge["source"], edge["target"]) == (2, 3):
            edge["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


class FakeService:
    """Serves a few devices' snapshots and records every submission; a new URL per instance, so the
    once-per-process defects warning starts afresh for each test."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self.url = f"http://vqpu-{next(_urls)}.test"
        self.snapshots = {s.device_id: s for s in snapshots}
        self.submitted: list[dict[str, Any]] = []
        self.auth: list[str] = []
        _LIVE[self.url] = self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_live, (self.url,))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.auth.append(request.headers["Authorization"])
        path = request.url.path
        if path == "/v1/devices":
            return httpx.Response(200, json={"devices": [self._summary(s) for s in self.snapshots.values()]})
        if found := re.fullmatch(r"/v1/devices/([^/]+)", path):
            return httpx.Response(200, content=self.snapshots[found.group(1)].canonical_json())
        if found := re.fullmatch(r"/v1/devices/([^/]+)/epochs/([0-9]+)", path):
            pinned = self.snapshots[found.group(1)].with_epoch(int(found.group(2)))
            return httpx.Response(200, content=pinned.canonical_json())
        if path == "/v1/tasks" and request.method == "POST":
            body = json.loads(request.content)
            self.submitted.append(body)
            return httpx.Response(201, json=self._task(body, len(self.submitted)))
        return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": path}})

    @staticmethod
    def _summary(s: Snapshot) -> dict[str, Any]:
        return {
            "device_id": s.device_id,
            "epoch": s.epoch,
            "sha256": s.sha256(),
            "created_at": "2026-12-01T00:00:00+00:00",
            "num_qubits": s.num_qubits,
            "native_gates": list(s.native_gates),
            "offline_qubits": 0,
            "unavailable_edges": 0,
        }

    @staticmethod
    def _task(body: dict[str, Any], n: int) -> dict[str, Any]:
        now = "2026-12-01T00:00:00+00:00"
        return {
            **{k: None for k in ("epoch", "bound_epoch", "bound_sha256", "agent_id", "scheduler", "error")},
            **{k: None for k in ("claimed_at", "finished_at", "seed")},
            "id": f"t-{n}",
            "owner": "user",
            "device": body["device"],
            "dialect": body["dialect"],
            "shots": body["shots"],
            "tags": body.get("tags", []),
            "options": body.get("options", {}),
            "state": "QUEUED",
            "attempt": 0,
            "admitted_epoch": 1,
            "cancel_requested": False,
            "stale": False,
            "created_at": now,
            "updated_at": now,
        }


@pytest.fixture
def service() -> FakeService:
    return FakeService(attach_uniform(topologies.line(4, device_id="line-4")), _faulty_line())


@pytest.fixture
def provider(service: FakeService) -> Iterator[VQPUProvider]:
    with VQPUProvider(service.url, KEY, transport=service.transport()) as provider:
        yield provider


@pytest.fixture
def backend(provider: VQPUProvider) -> VQPUBackend:
    return provider.get_backend("line-4")


def _x0() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="x0")
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    return qc


# --- run options --------------------------------------------------------------------------------


HARMLESS: list[dict[str, Any]] = [
    {"meas_level": 2},
    {"meas_level": MeasLevel.CLASSIFIED},
    {"meas_return": "single"},
    {"meas_return": MeasReturnType.AVERAGE},
    {"rep_delay": None},
    {"rep_delay": 250e-6},
    {"rep_time": 1e-3},
    {"init_qubits": True},
    {"use_measure_esp": True},
    {"memory_slots": 2},
    {"memory_slot_size": 100},
    {"parameter_binds": []},
    {"use_fractional_gates": False},
    {"noise_model": None},
    {"job_tags": None},
]


@pytest.mark.parametrize("option", HARMLESS, ids=lambda o: "-".join(f"{k}={v!r}" for k, v in o.items()))
def test_a_harmless_standard_run_option_is_accepted_and_changes_nothing_sent(
    service: FakeService, backend: VQPUBackend, option: dict[str, Any]
) -> None:
    backend.run(_x0(), shots=10, seed_simulator=1)
    backend.run(_x0(), shots=10, seed_simulator=1, **option)
    plain, with_option = service.submitted
    assert with_option == plain


def test_job_tags_become_the_tasks_tags(service: FakeService, backend: VQPUBackend) -> None:
    backend.run([_x0(), _x0()], shots=10, job_tags=["rb", "qubit-0"])  # one PUB task
    backend.run([_x0(), _x0()], shots=10, memory=True, job_tags=["rb"])  # one PUB task, with memory
    assert [body["tags"] for body in service.submitted] == [["rb", "qubit-0"], ["rb"]]


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"meas_level": 1}, r"meas_level 1 is not available: the service returns classified bits only"),
    ({"meas_level": MeasLevel.RAW}, r"meas_level .*0.* is not available.*raw \(0\) and kerneled \(1\)"),
    ({"meas_return": "sometimes"}, r"meas_return must be 'avg' or 'single'"),
    ({"init_qubits": False}, r"init_qubits=False cannot be honoured: every shot .* starts from \|0...0>"),
    ({"rep_delay": -1.0}, r"rep_delay must be None or a number of seconds at least 0"),
    ({"parameter_binds": [{"theta": [0.1]}]}, r"parameter_binds is not supported: bind the parameters"),
    ({"use_fractional_gates": True}, r"use_fractional_gates=True cannot be honoured"),
    ({"job_tags": "rb"}, r"job_tags must be a list of strings"),
    ({"job_tags": ["x" * 65]}, r"job_tags become the tasks' tags: at most 32, each 1 to 64 characters"),
    ({"noise_model": NoiseModel()}, r"noise_model=<NoiseModel> cannot be honoured.*vqpu_noise_model='paper'"),
    ({"noise_model": "relaxation"}, r"noise_model='relaxation' cannot be honoured.*vqpu_noise_model"),
    ({"vqpu_noise_model": "made-up"}, r"vqpu_noise_model: Input should be 'paper' or 'relaxation'"),
    ({"optimization_level": 3}, r"no run option 'optimization_level'"),
]


@pytest.mark.parametrize(("option", "message"), REFUSED, ids=lambda o: str(o)[:40])
def test_an_option_the_service_cannot_honour_is_refused_naming_it_and_why_before_anything_is_sent(
    service: FakeService, backend: VQPUBackend, option: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunOptionsError, match=message):
        backend.run(_x0(), **option)
    with pytest.raises(RunOptionsError, match=message):
        backend.set_options(**option)
    assert service.submitted == []


def test_every_standard_option_has_a_default_and_a_rule(backend: VQPUBackend) -> None:
    assert CHECKS.keys() == DEFAULTS.keys()
    assert all(rule(DEFAULTS[name]) is None for name, rule in CHECKS.items())
    assert DEFAULTS.keys() <= set(backend.options)


def test_the_noise_model_is_chosen_per_backend_and_sent_as_the_rest_field_noise_model(
    service: FakeService, provider: VQPUProvider
) -> None:
    relaxed = provider.get_backend("line-4", noise_model="relaxation")
    plain = provider.get_backend("line-4")
    assert (relaxed.options.vqpu_noise_model, plain.options.vqpu_noise_model) == ("relaxation", "paper")
    relaxed.run(_x0(), shots=10)
    plain.run(_x0(), shots=10, vqpu_noise_model="relaxation", noise={"scale": {"relaxation": 2.0}})
    plain.set_options(vqpu_noise_model="relaxation")
    plain.run(_x0(), shots=10)
    assert [body.get("options") for body in service.submitted] == [
        {"noise_model": "relaxation"},
        {"noise_model": "relaxation", "noise": {"scale": {"relaxation": 2.0}}},
        {"noise_model": "relaxation"},
    ]
    with pytest.raises(RunOptionsError, match="vqpu_noise_model"):
        provider.get_backend("line-4", noise_model=NoiseModel())  # type: ignore[arg-type]


# --- copies and pickles -------------------------------------------------------------------------


def test_a_deep_copy_shares_the_connection_and_has_options_of_its_own(
    service: FakeService, provider: VQPUProvider, backend: VQPUBackend
) -> None:
    backend.set_options(shots=77, job_tags=["a"])
    twin = copy.deepcopy(backend)
    assert twin is not backend and twin.provider is provider and twin.client is backend.client
    assert (twin.name, twin.epoch, twin.pinned_epoch, twin.options.shots) == ("line-4", backend.epoch, None, 77)
    twin.set_options(shots=5)
    assert backend.options.shots == 77
    twin.run(_x0())
    assert (service.submitted[0]["shots"], service.submitted[0]["tags"]) == (5, ["a"])
    assert copy.copy(provider) is provider


def test_a_pickled_backend_reopens_its_connection_lazily_and_keeps_its_pin_and_options(
    service: FakeService, provider: VQPUProvider
) -> None:
    pinned = provider.get_backend("line-4", epoch=5)
    pinned.set_options(vqpu_noise_model="relaxation", shots=12)
    loaded = pickle.loads(pickle.dumps(pinned))
    assert loaded.provider is not provider and loaded.provider._client is None  # nothing opened yet
    assert (loaded.pinned_epoch, loaded.options.vqpu_noise_model, loaded.options.shots) == (5, "relaxation", 12)
    assert loaded.target.num_qubits == 4 and loaded.snapshot == pinned.snapshot
    loaded.run(_x0())
    assert service.submitted[-1]["epoch"] == 5 and service.auth[-1] == f"Bearer {KEY}"
    both = pickle.loads(pickle.dumps([pinned, provider.get_backend("line-4")]))
    assert both[0].provider is both[1].provider  # one connection, as before pickling
    opened = loaded.client
    del loaded, both
    gc.collect()
    assert opened._http.is_closed  # nobody holds the loaded provider in a `with` block: collecting it closes it


def test_a_pickle_holds_the_key_only_when_it_was_given_as_a_string(
    service: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VQPU_KEY_FILE", raising=False)
    monkeypatch.setenv("VQPU_KEY", KEY)
    from_env = VQPUProvider(service.url, transport=service.transport())
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    from_file = VQPUProvider(service.url, key_file=key_file, transport=service.transport())
    given = VQPUProvider(service.url, KEY, transport=service.transport())
    assert KEY.encode() not in pickle.dumps(from_env.get_backend("line-4"))
    assert KEY.encode() not in pickle.dumps(from_file.get_backend("line-4"))
    assert KEY.encode() in pickle.dumps(given.get_backend("line-4"))
    assert KEY not in repr(given.connection)

    reloaded = pickle.loads(pickle.dumps(from_file.get_backend("line-4")))
    key_file.chmod(0o644)  # whoever loads it must still hold a private key file
    with pytest.raises(KeyFileError, match="mode 0644"):
        reloaded.run(_x0())
    monkeypatch.delenv("VQPU_KEY")
    with pytest.raises(UsageError, match="VQPU_KEY"):
        _ = pickle.loads(pickle.dumps(from_env)).client


# --- configuration() ----------------------------------------------------------------------------


def test_configuration_is_the_view_mthree_and_qiskit_experiments_read(provider: VQPUProvider) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        faulty = provider.get_backend("faulty-line")
    config = faulty.configuration()
    assert isinstance(config, BackendConfiguration)
    assert (config.backend_name, config.n_qubits, config.num_qubits) == ("faulty-line", 4, 4)
    assert config.basis_gates == sorted(faulty.snapshot.native_gates)
    assert config.coupling_map == [[0, 1], [1, 0], [1, 2], [2, 1]]  # (2, 3) is UNAVAILABLE
    assert config.max_shots == MAX_SHOTS and config.meas_levels == [2] and config.memory
    assert config.simulator is True and config.open_pulse is False
    assert config.dt == faulty.dt
    assert config.to_dict()["n_qubits"] == 4


# --- the defects warning -----------------------------------------------------------------------


def test_the_defects_warning_comes_once_per_device_and_epoch_at_the_users_line(service: FakeService) -> None:
    provider = VQPUProvider(service.url, KEY, transport=service.transport())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        provider.get_backend("faulty-line")
        provider.get_backend("faulty-line")
        provider.backends()
        VQPUProvider(service.url, KEY, transport=service.transport()).get_backend("faulty-line")
        copy.deepcopy(provider.get_backend("faulty-line"))
    (warning,) = caught
    assert issubclass(warning.category, DeviceDefectsWarning) and "1 UNAVAILABLE coupler(s) [(2, 3)]" in str(
        warning.message
    )
    assert warning.filename == __file__


def test_backends_warns_at_the_users_line_for_each_device_with_defects(service: FakeService) -> None:
    provider = VQPUProvider(service.url, KEY, transport=service.transport())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backends = provider.backends()
    assert sorted(b.name for b in backends) == ["faulty-line", "line-4"]
    assert [(w.category, w.filename) for w in caught] == [(DeviceDefectsWarning, __file__)]
