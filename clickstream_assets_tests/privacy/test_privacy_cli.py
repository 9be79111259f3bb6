"""`clickstream privacy apply` and `purge-raw`, end to end on the embedded defaults: load
files, apply a requests file, reload (the person stays out, counted as suppressed), purge
the raw files, apply again (nothing more deleted)."""

from __future__ import annotations

import json

from clickstream_assets.cli import main
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets_tests.privacy.test_privacy_deletion import H0, H0_EVENTS
from clickstream_assets_tests.privacy.test_privacy_loads import ALICE_EVENTS, write


def run(capsys, *argv, code: int = 0) -> dict:
    assert main(list(argv)) == code
    return json.loads(capsys.readouterr().out)


def test_apply_reload_and_purge(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_HOME", str(tmp_path))
    store = LocalEventStore(tmp_path / "events")
    write(store, H0, H0_EVENTS)
    raw = store.root / f"acme/{H0:%Y/%m/%d/%H}/f.json"
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    first = run(capsys, "load", "--customer", "acme", "--warehouse", url, str(raw))
    assert first["suppressed"] == 0
    requests = tmp_path / "privacy_requests.json"
    requests.write_text(json.dumps({"requests": [
        {"customerId": "acme", "id": "r1", "kind": "delete", "userId": "alice",
         "receivedAt": "2026-11-22T00:00:00Z"},
        {"customerId": "globex", "id": "r9", "kind": "delete", "userId": "bob",
         "receivedAt": "2026-11-22T00:00:00Z"}]}))
    applied = run(capsys, "privacy", "apply", "--customer", "acme", "--requests",
                  str(requests), "--warehouse", url)
    assert applied["completed"] == ["r1"] and applied["requests"] == 1
    assert applied["rows_deleted"]["tracks"] == 2
    again = run(capsys, "load", "--customer", "acme", "--warehouse", url, str(raw))
    alice_h0 = ALICE_EVENTS - 2  # two of her events are in H1
    assert again["suppressed"] == alice_h0 and again["events_read"] == (
        again["loaded"] + again["duplicates"] + again["rejected"] + again["filtered"]
        + again["suppressed"])
    purged = run(capsys, "privacy", "purge-raw", "--customer", "acme", "--warehouse", url,
                 "--events", str(store.root))
    assert purged["files_rewritten"] == 1 and purged["lines_removed"] == alice_h0
    assert b"alice" not in raw.read_bytes() and b'"bob"' in raw.read_bytes()
    twice = run(capsys, "privacy", "apply", "--customer", "acme", "--requests",
                str(requests), "--warehouse", url)
    assert twice["completed"] == [] and twice["already_completed"] == ["r1"]


def test_apply_reports_invalid_entries(tmp_path, capsys):
    requests = tmp_path / "r.yaml"
    requests.write_text("requests:\n  - {id: x, kind: forget, userId: a, "
                        "receivedAt: '2026-11-22T00:00:00Z'}\n")
    out = run(capsys, "privacy", "apply", "--customer", "acme", "--requests", str(requests),
              "--warehouse", f"duckdb://{tmp_path / 'wh.duckdb'}", code=1)
    assert out["invalid"] == 1 and out["completed"] == []


def test_apply_reads_the_configured_requests_file_by_default(tmp_path, capsys, monkeypatch):
    """Without --requests: the file the Dagster layer reads (beside the customers file, here
    the home's), with the same parsing: another customer's entry is not applied."""
    monkeypatch.setenv("CLICKSTREAM_HOME", str(tmp_path))
    (tmp_path / "privacy_requests.json").write_text(json.dumps({"requests": [
        {"customerId": "acme", "id": "r1", "kind": "suppress", "userId": "alice",
         "receivedAt": "2026-11-22T00:00:00Z"},
        {"customerId": "globex", "id": "r9", "kind": "delete", "userId": "bob",
         "receivedAt": "2026-11-22T00:00:00Z"}]}))
    out = run(capsys, "privacy", "apply", "--customer", "acme",
              "--warehouse", f"duckdb://{tmp_path / 'wh.duckdb'}")
    assert out["requests"] == 1 and out["completed"] == ["r1"] and out["invalid"] == 0
