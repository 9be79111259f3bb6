"""The privacy sensor's memory: which requests were already handed to a run, per customer.

Why: the sensor must request runs for exactly the customers with new requests without asking
every customer's warehouse what it completed on every tick. It remembers a short digest of
each request id it handed to a run (ids of requests still listed by the source only, so the
state is as large as the source's list, ~13 bytes a request), and a tick requests a run for
each customer with a listed request it has not handed yet. The run itself asks the
warehouse which requests are completed. Until a requested run is seen to succeed its key
stays awaited; when it failed, the customer's requests are handed again (a new run).
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
    # customer -> run key of its last requested run, until that run is seen to succeed
    awaiting: dict[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        handed = {c: "".join(sorted(t)) for c, t in sorted(self.by_customer.items())}
        return json.dumps({"h": handed, "a": dict(sorted(self.awaiting.items()))},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> "HandedState":
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({c: frozenset(s[i:i + TOKEN_CHARS] for i in range(0, len(s), TOKEN_CHARS))
                    for c, s in raw.get("h", {}).items()}, dict(raw.get("a", {})))

    def after_runs(self, failed: Iterable[str], succeeded: Iterable[str]) -> "HandedState":
        """Customers whose awaited run failed get their requests handed again (the next plan
        sees them as new); those whose run succeeded are awaited no more."""
        failed, done = set(failed), set(failed) | set(succeeded)
        return HandedState({c: t for c, t in self.by_customer.items() if c not in failed},
                           {c: k for c, k in self.awaiting.items() if c not in done})


@dataclass(frozen=True)
class TickPlan:
    runs: dict[str, list[str]]  # customer -> request ids not handed to a run before
    state: HandedState  # what to remember after this tick
    unknown_customers: list[str]  # listed by the source, not in this code location
    invalid: int  # requests that cannot be honoured as given (reported, not run)


def run_key(customer_id: str, request_ids: Iterable[str], generation: int) -> str:
    """Names the requests handed and the sensor state's generation: a tick repeated after a
    lost cursor requests nothing new; a request handed again after a failed run gets a new
    key (Dagster launches a run key once)."""
    ids = "\0".join(sorted(request_ids))
    return f"privacy:{customer_id}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}:{generation}"


def plan_tick(batch: RequestBatch, customer_ids: Iterable[str], previous: HandedState,
              generation: int = 0) -> TickPlan:
    """Customers (of `customer_ids`) with a listed request not handed to a run yet; their run
    keys are remembered as awaited until the runs are seen to succeed."""
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
    awaiting = {c: k for c, k in previous.awaiting.items() if c in ours}
    awaiting.update({cid: run_key(cid, ids, generation) for cid, ids in runs.items()})
    invalid = len(batch.problems) + sum(len(c.problems) for cid, c in batch.by_customer.items()
                                        if cid in ours)
    return TickPlan(runs, HandedState(state, awaiting),
                    sorted(c for c in batch.by_customer if c not in ours), invalid)
