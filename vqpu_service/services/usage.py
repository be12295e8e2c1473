"""The accounting export: per owner, device or agent, what the tasks finished in a period used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from vqpu_service.domain.errors import Forbidden, InvalidRequest
from vqpu_service.domain.model import Principal
from vqpu_service.domain.usage import Grouping, UsageTotals
from vqpu_service.ports import Store


@dataclass(frozen=True)
class UsageExport:
    since: datetime
    until: datetime
    by: Grouping
    rows: list[UsageTotals]


class UsageService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def export(self, who: Principal, since: datetime, until: datetime | None, by: Grouping) -> UsageExport:
        if not who.is_admin:
            raise Forbidden("only admins export usage")
        since, until = period(since, until)
        return UsageExport(since, until, by, self._store.usage(since, until, by))


def moment(text: str, name: str) -> datetime:
    """An ISO 8601 time given by an operator (`since`, `until`); without a zone it is UTC."""
    try:
        return _aware(datetime.fromisoformat(text)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone that moves it out of years 1-9999
        raise InvalidRequest(
            f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T00:00:00Z)", {"field": name}
        ) from None


def period(since: datetime, until: datetime | None) -> tuple[datetime, datetime]:
    """[since, until) as aware datetimes: a time without a zone is UTC; no `until` is now."""
    since = _aware(since)
    until = datetime.now(UTC) if until is None else _aware(until)
    if since >= until:
        raise InvalidRequest(
            f"the period is empty: since ({since.isoformat()}) is not before until ({until.isoformat()})",
            {"since": since.isoformat(), "until": until.isoformat()},
        )
    return since, until


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
