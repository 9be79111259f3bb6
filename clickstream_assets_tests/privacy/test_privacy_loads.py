"""Never back: after a delete, reloads and backfills of the person's hours (the real load
path: files in the event store, load_window) drop their events, linked anonymous ids
included, and count them as `suppressed`; unsuppress lets new events in; a request completed
while a load normalizes cannot let the person's rows in. On every warehouse."""

from __future__ import annotations

from datetime import timedelta

import orjson

from clickstream_assets.load.checks import reconcile
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.privacy.processing import process_requests
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.privacy.test_privacy_deletion import (
    CUSTOMER,
    H0,
    H0_EVENTS,
    H1,
    H1_EVENTS,
    H1_RAW,
    SCHEMA,
    belongs_to_alice,
    contents,
    ev,
    request,
)
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403

H2 = H1 + timedelta(hours=1)
ALICE_EVENTS = sum(1 for e in H0_EVENTS + H1_EVENTS
                   if {e.get("userId"), e.get("anonymousId"), e.get("previousId")}
                   & {"alice", "anon-a1", "anon-a2"})


def write(store, hour, lines, name="f.json") -> None:
    store.write(f"acme/{hour:%Y/%m/%d/%H}/{name}",
                b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines))


def seeded(tmp_path) -> LocalEventStore:
    store = LocalEventStore(tmp_path / "events")
    write(store, H0, H0_EVENTS)
    write(store, H1, H1_EVENTS + H1_RAW)
    return store


def stable(wh) -> dict:
    """The tables without the load-time columns a reload rewrites."""
    return {t: sorted((repr(sorted((k, v) for k, v in r.items()
                                   if k not in ("loaded_at", "uuid_ts"))) for r in rows))
            for t, rows in contents(wh).items()}


def audit_counts(wh) -> list[tuple]:
    return wh.query('SELECT "read", "loaded", "duplicates", "rejected", "filtered", '
                    '"suppressed" FROM "acme"."_clickstream_loads" ORDER BY "finished_at"')


def test_a_backfill_does_not_bring_the_person_back(wh, tmp_path):
    store = seeded(tmp_path)
    _, first = load_window(store, wh, CUSTOMER, H0, H2)
    assert first.counts.suppressed == 0
    process_requests(wh, CUSTOMER, [request("req-1")])
    after_delete = stable(wh)
    # the newest load's tables now hold fewer rows than it wrote: the privacy audit says why
    assert reconcile(wh, SCHEMA).passed, reconcile(wh, SCHEMA).description
    _, again = load_window(store, wh, CUSTOMER, H0, H2)  # the backfill of alice's hours
    c = again.counts
    assert c.suppressed == ALICE_EVENTS + 1  # her events, the identify-linked and aliased
    assert c.rejected == 2 and c.balanced()  # anonymous ids' ones, and her rejected line
    assert stable(wh) == after_delete  # nothing of hers came back, nothing else changed
    assert not any(belongs_to_alice(t, r) for t, rows in contents(wh).items() for r in rows)
    read, loaded, dup, rej, filt, supp = audit_counts(wh)[-1]
    assert supp == c.suppressed and read == loaded + dup + rej + filt + supp
    _, one_hour = load_window(store, wh, CUSTOMER, H1, H2)  # a reload of one hour too
    assert one_hour.counts.suppressed == 3 and stable(wh) == after_delete
    assert reconcile(wh, SCHEMA).passed, reconcile(wh, SCHEMA).description


def test_unsuppress_lets_new_events_in(wh, tmp_path):
    store = seeded(tmp_path)
    load_window(store, wh, CUSTOMER, H0, H2)
    process_requests(wh, CUSTOMER, [request("req-1")])
    write(store, H2, [ev("track", "n1", H2, 1, userId="alice", event="Viewed"),
                      ev("page", "n2", H2, 2, anonymousId="anon-a1", name="Home")])
    _, blocked = load_window(store, wh, CUSTOMER, H2, H2 + timedelta(hours=1))
    assert blocked.counts.suppressed == 2 and blocked.counts.loaded == 0
    process_requests(wh, CUSTOMER, [request("req-2", "unsuppress", minute=10)])
    _, back = load_window(store, wh, CUSTOMER, H2, H2 + timedelta(hours=1))
    assert back.counts.suppressed == 0 and back.counts.loaded == 2
    assert wh.query('SELECT count(*) FROM "acme"."viewed" WHERE "user_id" = \'alice\'') == [(1,)]


class RequestMidLoad(LocalEventStore):
    """An event store during whose reads a privacy request completes (once): the race of a
    load that normalized with the old suppression list."""

    def __init__(self, root, wh):
        super().__init__(root)
        self.wh, self.fired = wh, False

    def open(self, key):
        if not self.fired and "/11/" in key:
            self.fired = True
            process_requests(self.wh, CUSTOMER, [request("req-race")])
        return super().open(key)


def test_a_request_completed_mid_load_keeps_the_person_out(wh, tmp_path):
    load_window(seeded(tmp_path), wh, CUSTOMER, H0, H2)  # her links are in the warehouse
    store = RequestMidLoad(tmp_path / "events", wh)
    _, result = load_window(store, wh, CUSTOMER, H0, H2)  # a backfill, raced by the request
    assert store.fired and result.counts.suppressed == ALICE_EVENTS + 1
    assert not any(belongs_to_alice(t, r) for t, rows in contents(wh).items() for r in rows)
    assert result.counts.balanced()
