"""The user-side tasks' pure parts: submission fingerprints and keys, the connection, batches, retry choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.states import Failed

from flows import tasks
from flows.tasks import ConnectionSettingsError, DuplicateSubmissionError, Submission
from harness.circuits import BELL
from vqpu_client import errors
from vqpu_protocol.rundir import RunOptions

SCOPE = ("flow-run", "0b1c4a36-8d3e-4f7e-9a51-1f2d3c4b5a69")


def _submission(**fields: object) -> Submission:
    return Submission.model_validate({"device": "ibm-fez", "circuit": BELL, "shots": 100, "seed": 1, **fields})


def test_options_given_as_a_dict_or_as_run_options_make_the_same_key() -> None:
    as_dict = _submission(options={"noise_model": "relaxation"})
    as_model = _submission(options=RunOptions.model_validate({"noise_model": "relaxation"}, strict=False))
    assert tasks.idempotency_key(as_dict, SCOPE) == tasks.idempotency_key(as_model, SCOPE)
    # the defaults spelled out are the defaults
    assert tasks.idempotency_key(_submission(options={"noise_model": "paper"}), SCOPE) == tasks.idempotency_key(
        _submission(), SCOPE
    )


@pytest.mark.parametrize(
    "change",
    [{"shots": 101}, {"seed": 2}, {"device": "ibm-fez-ideal"}, {"epoch": 3}, {"label": "again"}, {"tags": ("x",)}],
)
def test_anything_submitted_differently_gets_another_key(change: dict[str, object]) -> None:
    assert tasks.idempotency_key(_submission(**change), SCOPE) != tasks.idempotency_key(_submission(), SCOPE)


def test_a_pub_submission_is_keyed_by_its_pubs_and_is_a_circuit_or_pubs_never_both() -> None:
    """A retried run_pubs submits the same PUBs under the same key (one task); other values, another key."""

    def pubs(value: float) -> dict[str, object]:
        return {"kind": "sampler", "pubs": [{"circuit": BELL, "parameter_values": [[value]]}]}

    def sub(value: float) -> Submission:
        return Submission.model_validate({"device": "ibm-fez", "pubs": pubs(value), "shots": 100})

    assert tasks.idempotency_key(sub(0.5), SCOPE) == tasks.idempotency_key(sub(0.5), SCOPE)
    assert tasks.idempotency_key(sub(0.5), SCOPE) != tasks.idempotency_key(sub(0.25), SCOPE)
    with pytest.raises(ValueError, match="not both"):
        _submission(pubs=pubs(0.5))
    estimator = {"kind": "estimator", "pubs": [{"circuit": BELL, "observables": [[]]}]}
    with pytest.raises(ValueError, match="no `shots`"):
        Submission.model_validate({"device": "ibm-fez", "pubs": estimator, "shots": 100})


def test_the_key_belongs_to_its_run_fits_the_header_and_is_absent_outside_any_run() -> None:
    key = tasks.idempotency_key(_submission(), SCOPE)
    other_run = tasks.idempotency_key(_submission(), ("flow-run", "another"))
    assert key is not None and key != other_run and SCOPE[1] in key and len(key) <= 200
    assert tasks.idempotency_key(_submission(), None) is None
    assert tasks.run_scope() is None  # no flow or task run in a unit test


def test_a_batch_with_the_same_submission_twice_is_refused_unless_labelled() -> None:
    with pytest.raises(DuplicateSubmissionError, match="distinct label"):
        tasks.check_distinct([_submission(), _submission(seed=2), _submission()])
    tasks.check_distinct([_submission(label="trial-1"), _submission(label="trial-2")])


def test_without_a_url_or_a_key_in_the_environment_there_is_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VQPU_URL", raising=False)
    monkeypatch.delenv("VQPU_KEY", raising=False)
    with pytest.raises(ConnectionSettingsError, match="VQPU_URL"):
        tasks.connect()
    with pytest.raises(ConnectionSettingsError, match="VQPU_KEY"):
        tasks.connect("http://127.0.0.1:9")
    monkeypatch.setenv("VQPU_KEY", "k")
    with tasks.connect("http://127.0.0.1:9") as client:  # made, not used: nothing is sent
        assert client.url == "http://127.0.0.1:9"


def test_a_flow_reads_its_key_from_a_private_file_and_refuses_one_others_can_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VQPU_KEY", raising=False)
    key_file = tmp_path / "user.key"
    key_file.write_text("from-the-file\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("VQPU_KEY_FILE", str(key_file))
    with tasks.connect("http://127.0.0.1:9") as client:  # made, not used: nothing is sent
        assert client.url == "http://127.0.0.1:9"
    monkeypatch.setenv("VQPU_KEY", "k")
    with pytest.raises(ConnectionSettingsError, match="both VQPU_KEY and VQPU_KEY_FILE"):
        tasks.connect("http://127.0.0.1:9")
    monkeypatch.delenv("VQPU_KEY")
    key_file.chmod(0o644)
    with pytest.raises(errors.UsageError, match="0644"):
        tasks.connect("http://127.0.0.1:9")


def test_only_failures_another_attempt_can_fix_are_retried() -> None:
    def retried(exc: Exception) -> bool:
        return tasks.retry_if_transient(None, None, Failed(data=exc))  # type: ignore[arg-type]

    assert retried(errors.TransportError("connection refused"))
    assert retried(errors.UnavailableError("UNAVAILABLE", "draining", status=503))
    assert not retried(errors.NotAdmissibleError("NOT_ADMISSIBLE", "no coupling", status=422))
    assert not retried(errors.AuthenticationError("UNAUTHENTICATED", "no key", status=401))
    assert not retried(DuplicateSubmissionError("twice"))
