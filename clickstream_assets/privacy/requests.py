"""One privacy request as every source (config API, requests file) hands it over.

A request names a person by `user_id` and/or `anonymous_ids`; nothing else about the person
is kept. `received_at` is when the customer made the request: the deadline check counts from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

RequestKind = Literal["delete", "suppress", "unsuppress"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("delete", "suppress", "unsuppress")


class InvalidPrivacyRequest(ValueError):
    """A request that cannot be honoured as given (no identifier, unknown kind, bad time)."""


@dataclass(frozen=True)
class PrivacyRequest:
    request_id: str
    kind: RequestKind
    user_id: str | None
    anonymous_ids: tuple[str, ...]
    received_at: datetime

    def __post_init__(self) -> None:
        if not self.request_id:
            raise InvalidPrivacyRequest("a privacy request needs an id")
        if self.kind not in REQUEST_KINDS:
            raise InvalidPrivacyRequest(
                f"request {self.request_id}: kind must be one of {', '.join(REQUEST_KINDS)}")
        if not self.user_id and not self.anonymous_ids:
            raise InvalidPrivacyRequest(
                f"request {self.request_id}: needs a user_id or at least one anonymous_id")
        if self.received_at.tzinfo is None:
            raise InvalidPrivacyRequest(f"request {self.request_id}: received_at needs a zone")

    @classmethod
    def from_mapping(cls, raw: dict) -> "PrivacyRequest":
        """From the wire shape shared by the config API and the requests file:
        {"id", "kind", "userId", "anonymousIds", "receivedAt" (ISO-8601)}."""
        try:
            received = datetime.fromisoformat(str(raw["receivedAt"]).replace("Z", "+00:00"))
            return cls(
                request_id=str(raw["id"]),
                kind=raw["kind"],
                user_id=raw.get("userId") or None,
                anonymous_ids=tuple(str(a) for a in raw.get("anonymousIds") or ()),
                received_at=received.astimezone(timezone.utc),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidPrivacyRequest):
                raise
            raise InvalidPrivacyRequest(
                f"request {raw.get('id', '?') if isinstance(raw, dict) else '?'}: "
                f"{type(exc).__name__}: {exc}") from None
