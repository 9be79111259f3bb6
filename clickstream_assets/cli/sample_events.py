"""Realistic analytics.js events for demos, tests and benchmarks (seeded, reproducible).

Payloads look like analytics-next's: `_metadata`, `context.userAgentData` with arrays,
`integrations` maps, ISO timestamps with offsets; a few client retries (duplicate
messageIds) and a few broken lines, so every path of the loader is exercised.
"""

from __future__ import annotations

import gzip
import random
from datetime import datetime, timedelta, timezone
from typing import Iterator

import orjson

from clickstream_assets.stores.event_store import EventStore, hour_prefix

TRACK_EVENTS = {
    "Product Viewed": lambda r: {"productId": f"p-{r.randint(1, 500)}", "price": round(
        r.uniform(3, 300), 2), "currency": "USD", "category": r.choice(["shoes", "hats", "bags"])},
    "Order Completed": lambda r: {"orderId": f"o-{r.randint(1, 10**6)}", "revenue": round(
        r.uniform(10, 900), 2), "products": [{"productId": f"p-{r.randint(1, 500)}",
                                                "quantity": r.randint(1, 3)}],
        "coupon": r.choice([None, "WINTER10"])},
    "Signed Up": lambda r: {"plan": r.choice(["free", "pro", "team"]), "referrer": {
        "type": r.choice(["ad", "friend"]), "campaign": {"name": "launch"}}},
    "Debug Ping": lambda r: {"seq": r.randint(1, 10)},
}
PAGES = [("/", "Home"), ("/pricing", "Pricing"), ("/docs/start", "Getting Started"),
         ("/blog/launch", "Launch Post")]


def _context(r: random.Random, path: str) -> dict:
    return {
        "ip": f"203.0.113.{r.randint(1, 254)}",
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "locale": r.choice(["en-US", "de-DE", "fr-FR"]),
        "page": {"path": path, "url": f"https://example.com{path}", "title": "Example",
                 "referrer": ""},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0",
        "userAgentData": {"brands": [{"brand": "Chromium", "version": "130"}], "mobile": False,
                          "platform": "Linux"},
        "timezone": "Europe/Berlin",
        "campaign": {"source": r.choice(["google", "newsletter"]), "medium": "cpc"},
    }


def make_event(r: random.Random, customer_id: str, hour: datetime, seq: int) -> dict:
    """One event of a realistic mix, received within `hour`."""
    received = hour + timedelta(seconds=r.randint(0, 3599), microseconds=r.randint(0, 999999))
    skew = timedelta(seconds=r.randint(-90, 90))
    sent = received - timedelta(milliseconds=r.randint(20, 900))
    original = sent - timedelta(milliseconds=r.randint(0, 3000)) + skew
    user = r.randint(1, 60)
    path, title = r.choice(PAGES)
    base = {
        "messageId": f"{customer_id}-{hour:%Y%m%d%H}-{seq}",
        "anonymousId": f"anon-{user}",
        "userId": f"user-{user}" if r.random() < 0.7 else None,
        "receivedAt": received.isoformat().replace("+00:00", "Z"),
        "sentAt": sent.isoformat(),
        "timestamp": original.isoformat().replace("+00:00", "Z"),
        "context": _context(r, path),
        "integrations": {"All": True, "Mixpanel": False},
        "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
        "version": 2,
    }
    kind = r.choices(["track", "page", "screen", "identify", "group", "alias"],
                     weights=[55, 25, 5, 9, 4, 2])[0]
    base["type"] = kind
    if kind == "track":
        name = r.choice(list(TRACK_EVENTS))
        base.update(event=name, properties=TRACK_EVENTS[name](r))
    elif kind in ("page", "screen"):
        base.update(name=title, category=r.choice(["Marketing", "Docs"]),
                    properties={"path": path, "title": title, "url": f"https://example.com{path}"})
    elif kind == "identify":
        base["userId"] = f"user-{user}"
        base["traits"] = {"email": f"user{user}@example.com", "plan": r.choice(["free", "pro"]),
                          "createdAt": "2026-01-15T10:00:00.000000+00:00",
                          "address": {"city": "Berlin", "country": "DE"}, "logins": r.randint(1, 99)}
    elif kind == "group":
        base.update(groupId=f"org-{r.randint(1, 8)}",
                    traits={"name": "Example Org", "employees": r.randint(5, 5000), "plan": "team"})
    else:
        base.update(previousId=f"anon-{user}", userId=f"user-{user}")
    return base


def hour_lines(customer_id: str, hour: datetime, n_events: int, seed: int = 0,
               bad_lines: bool = True) -> Iterator[bytes]:
    """n_events lines for a customer-hour, with a few retries and (optionally) broken lines."""
    r = random.Random(f"{seed}:{customer_id}:{hour.isoformat()}")
    previous = None
    for seq in range(n_events):
        event = make_event(r, customer_id, hour, seq)
        yield orjson.dumps(event)
        if previous is not None and r.random() < 0.02:  # a client retry
            yield orjson.dumps(previous)
        previous = event
    if bad_lines:
        yield b'{"type": "track", "messageId": "broken-' + customer_id.encode() + b'", '
        yield b'{"type": "launch", "messageId": "x"}'


def write_sample_hour(store: EventStore, prefix: str, customer_id: str, hour: datetime,
                      n_events: int, files: int = 2, seed: int = 0) -> list[str]:
    """Write one customer-hour as `files` files (the last one gzipped); returns keys."""
    lines = list(hour_lines(customer_id, hour, n_events, seed))
    keys, per_file = [], -(-len(lines) // files)
    for i in range(files):
        chunk = b"\n".join(lines[i * per_file:(i + 1) * per_file]) + b"\n"
        name = f"events-{hour:%Y%m%d%H}-{i:03d}.json"
        if i == files - 1:
            chunk, name = gzip.compress(chunk, mtime=0), name + ".gz"
        key = hour_prefix(prefix, hour) + name
        store.write(key, chunk)
        keys.append(key)
    return keys


def recent_hours(n: int, now: datetime | None = None) -> list[datetime]:
    """The n complete hours before `now` (UTC), oldest first."""
    now = (now or datetime.now(timezone.utc)).replace(minute=0, second=0, microsecond=0)
    return [now - timedelta(hours=i) for i in range(n, 0, -1)]
