"""The privacy sensor's memory: which requests were already handed to a run, per customer.

Why: the sensor must request runs for exactly the customers with new requests without asking
every customer's warehouse what it completed on every tick. It remembers a short digest of
each request id it handed to a run (ids of requests still listed by the source only, so the
state is as large as the source's list, ~13 bytes a request), and a tick requests a run for
each customer with a listed request it has not handed yet. The run itself asks the
warehouse which requests are completed, so a request handed to a failed run is picked up by
the customer's next run, and the deadline check reports it meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable

from clickstream_assets.privacy.sources import RequestBatch

TOKEN_CHARS = 12  # 48 bits of sha256: a collision within one customer's requests is ~never


def request_token(customer_id: str, request_id: str) -> str:
    return hashlib.sha256(f"{customer_id}\0{request_id}".encode()).hexdigest()[:TOKEN_CHARS]


@dataclass
class HandedState:
    by_customer: dict[str, frozenset[str]] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({c: "".join(sorted(t)) for c, t in sorted(self.by_customer.items())},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> "HandedState":
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({c: frozenset(s[i:i + TOKEN_CHARS] for i in range(0, len(s), TOKEN_CHARS))
                    for c, s in raw.items()})


@dataclass(frozen=True)
class TickPlan:
    runs: dict[str, list[str]]  # customer -> request ids not handed to a run before
    state: HandedState  # what to remember after this tick
    unknown_customers: list[str]  # listed by the source, not in this code location
    invalid: int  # requests that cannot be honoured as given (reported, not run)

    def run_key(self, customer_id: str) -> str:
        """Names the requests handed: a repeated tick (lost cursor) requests nothing new."""
        ids = "\0".join(sorted(self.runs[customer_id]))
        return f"privacy:{customer_id}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}"


def plan_tick(batch: RequestBatch, customer_ids: Iterable[str],
              previous: HandedState) -> TickPlan:
    """Customers (of `customer_ids`) with a listed request not handed to a run yet."""
    ours = set(customer_ids)
    runs: dict[str, list[str]] = {}
    state: dict[str, frozenset[str]] = {}
    for cid, listed in batch.by_customer.items():
        if cid not in ours:
            continue
        tokens = {request_token(cid, r.request_id): r.request_id for r in listed.requests}
        handed = previous.by_customer.get(cid, frozenset())
        new = sorted(rid for token, rid in tokens.items() if token not in handed)
        if new:
            runs[cid] = new
        if tokens:
            state[cid] = frozenset(tokens)  # forget ids the source no longer lists
    invalid = len(batch.problems) + sum(len(c.problems) for cid, c in batch.by_customer.items()
                                        if cid in ours)
    return TickPlan(runs, HandedState(state),
                    sorted(c for c in batch.by_customer if c not in ours), invalid)
