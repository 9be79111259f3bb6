"""Which requests are still to do, and whether any is past the legal deadline.

Plain functions over a customer's listed requests and the ids its warehouse has completed
(`_privacy_requests`, via processing.completed_requests): the Dagster asset and check adapt
them. Outcomes carry ids and counts only, never a person's identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from clickstream_assets.privacy.requests import PrivacyRequest
from clickstream_assets.privacy.sources import CustomerRequests, RequestProblem

DEFAULT_DEADLINE = timedelta(days=30)
MAX_IDS_SHOWN = 20  # request ids listed in metadata; the counts are always complete


def pending_requests(requests: Sequence[PrivacyRequest],
                     completed: Mapping[str, datetime]) -> list[PrivacyRequest]:
    """Requests the warehouse has not completed, oldest first (the order they are honoured
    in: a later unsuppress wins over an earlier suppress)."""
    return sorted((r for r in requests if r.request_id not in completed),
                  key=lambda r: (r.received_at, r.request_id))


def _days(age: timedelta) -> float:
    return round(age.total_seconds() / 86400, 2)


@dataclass(frozen=True)
class DeadlineOutcome:
    passed: bool
    deadline: timedelta
    pending: int  # valid requests not completed
    overdue_ids: list[str] = field(default_factory=list)  # pending or invalid, past deadline
    oldest_pending_days: float | None = None
    invalid_ids: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        limit = f"{_days(self.deadline):g} days"
        invalid = (f"; {len(self.invalid_ids)} invalid (cannot be honoured as given: "
                   f"{', '.join(self.invalid_ids[:5])})" if self.invalid_ids else "")
        if not self.passed:
            return (f"{len(self.overdue_ids)} privacy requests older than {limit} are not "
                    f"completed (oldest {self.oldest_pending_days:g} days){invalid}")
        if self.pending:
            return (f"{self.pending} privacy requests pending, oldest "
                    f"{self.oldest_pending_days:g} days (deadline {limit}){invalid}")
        return f"every privacy request is completed (deadline {limit}){invalid}"

    def metadata(self) -> dict:
        return {"overdue": len(self.overdue_ids), "pending": self.pending,
                "oldest_pending_days": self.oldest_pending_days,
                "deadline_days": _days(self.deadline), "invalid": len(self.invalid_ids),
                "overdue_request_ids": self.overdue_ids[:MAX_IDS_SHOWN],
                "invalid_request_ids": self.invalid_ids[:MAX_IDS_SHOWN]}


def deadline_status(listed: CustomerRequests, completed: Mapping[str, datetime],
                    now: datetime, deadline: timedelta = DEFAULT_DEADLINE) -> DeadlineOutcome:
    """Fails when any request received more than `deadline` ago is not completed. An invalid
    request with a readable receivedAt counts too: it will never complete by itself."""
    waiting: list[tuple[datetime, str]] = [
        (r.received_at, r.request_id) for r in pending_requests(listed.requests, completed)]
    invalid: list[RequestProblem] = [p for p in listed.problems
                                     if p.request_id not in completed]
    dated = waiting + [(p.received_at, p.request_id) for p in invalid if p.received_at]
    overdue = sorted((t, rid) for t, rid in dated if now - t > deadline)
    oldest = min((t for t, _ in dated), default=None)
    return DeadlineOutcome(
        passed=not overdue, deadline=deadline, pending=len(waiting),
        overdue_ids=[rid for _, rid in overdue],
        oldest_pending_days=_days(now - oldest) if oldest else None,
        invalid_ids=[p.request_id for p in invalid])
