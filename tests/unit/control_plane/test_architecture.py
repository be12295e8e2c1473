"""The control plane's layering, as issue 18 (must-have 6) states it: every API call goes through a
service, never to the store directly; the SQL adapter stores what the domain decided and mints nothing."""

from __future__ import annotations

import re
from pathlib import Path

import vqpu_service

PACKAGE = Path(vqpu_service.__file__).parent


def test_no_api_module_reaches_the_store_but_through_a_service() -> None:
    reaching = [
        f"{path.name}:{n}"
        for path in sorted((PACKAGE / "api").glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.store\b|\bStore\b", line)
    ]
    assert reaching == []


def test_the_sql_adapter_mints_no_secret_and_builds_no_event() -> None:
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((PACKAGE / "adapters" / "sql").glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bsecrets\b|\bNewEvent\(|\btask_event\(|\bEventType\.", line)
    ]
    assert found == []


POLICY = "|".join(
    [
        r"claim_order",
        r"at_cap",
        r"max_running",
        r"recheck",
        r"fail_unbindable",
        r"mark_stale",
        r"QueueFull\(",
        r"\.attempt <",
        r"vqpu_service\.services",
    ]
)
"""What deciding looks like: the claim order and caps, the re-check, staleness and auto-requeue, the QUEUED cap."""


def test_the_sql_adapter_holds_no_claim_liveness_or_quota_policy() -> None:
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((PACKAGE / "adapters" / "sql").glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(POLICY, line)
    ]
    assert found == []


def test_the_store_port_offers_units_of_work_and_reads_not_decisions() -> None:
    from vqpu_service.ports import Store

    deciding = {"submit", "claim", "report", "cancel", "requeue", "force_fail", "heartbeat", "sweep_liveness"}
    deciding |= {"register_device", "new_epoch"}
    assert deciding & Store.__abstractmethods__ == set()
    assert {"unit", "claiming"} <= Store.__abstractmethods__
