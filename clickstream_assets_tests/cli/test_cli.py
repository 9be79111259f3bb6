"""The `clickstream` command: `load` summary, and the demo on embedded defaults."""

from __future__ import annotations

import json
from pathlib import Path

from clickstream_assets.cli import main
from clickstream_assets.warehouse import DuckDBWarehouse


def load(capsys, *argv) -> dict:
    assert main(["load", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_load_prints_a_balanced_summary_and_is_idempotent(tmp_path, store, sample_hour, capsys):
    files = [str(store.root / k) for k in sample_hour]
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    summary = load(capsys, "--customer", "acme", "--warehouse", url, *files)
    assert summary["files"] == 2 and summary["events_read"] > 100
    assert summary["events_read"] == (summary["loaded"] + summary["duplicates"]
                                      + summary["rejected"] + summary["filtered"])
    assert summary["duplicates"] > 0 and summary["rejected"] == 2
    assert summary["rows_written"]["tracks"] > 0
    counts = DuckDBWarehouse(tmp_path / "wh.duckdb").row_counts("acme")

    again = load(capsys, "--customer", "acme", "--warehouse", url, *files)
    assert again["loaded"] == summary["loaded"]
    recount = DuckDBWarehouse(tmp_path / "wh.duckdb").row_counts("acme")
    assert {t: n for t, n in recount.items() if t != "_clickstream_loads"} == {
        t: n for t, n in counts.items() if t != "_clickstream_loads"}


def test_load_reports_a_missing_file_clearly(tmp_path, capsys):
    code = main(["load", "--customer", "acme", "--warehouse", f"duckdb://{tmp_path}/w.duckdb",
                 str(tmp_path / "nope.json")])
    assert code == 2 and "not a file" in capsys.readouterr().err


def test_bad_warehouse_url_is_a_clear_error(tmp_path, store, sample_hour, capsys):
    code = main(["load", "--customer", "acme", "--warehouse", "mysql://x",
                 str(store.root / sample_hour[0])])
    assert code == 2 and "unsupported warehouse URL scheme" in capsys.readouterr().err


def test_demo_loads_several_customers_and_reruns_unchanged(tmp_path: Path, capsys, monkeypatch):
    for var in ("CLICKSTREAM_EVENTS_URL", "CLICKSTREAM_WAREHOUSE_URL", "CLICKSTREAM_CUSTOMERS_FILE"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    assert main(["demo", "--home", str(home), "--hours", "2", "--events-per-hour", "80"]) == 0
    first = capsys.readouterr().out
    assert "acme" in first and "globex" in first
    counts = DuckDBWarehouse(home / "warehouse.duckdb").row_counts("acme")
    assert counts["tracks"] > 0 and counts["pages"] > 0 and counts["identifies"] > 0
    assert (home / "dagster").is_dir()
    assert main(["demo", "--home", str(home), "--hours", "2", "--events-per-hour", "80"]) == 0
    assert capsys.readouterr().out.split("\n")[2:] == first.split("\n")[2:]


def test_a_warehouse_file_named_like_the_customer_schema_loads(tmp_path, store, sample_hour,
                                                               capsys):
    """DuckDB names a database after its file: `acme.duckdb` + schema `acme` must not clash."""
    files = [str(store.root / k) for k in sample_hour]
    summary = load(capsys, "--customer", "acme", "--warehouse",
                   f"duckdb://{tmp_path / 'acme.duckdb'}", *files)
    assert DuckDBWarehouse(tmp_path / "acme.duckdb").row_counts("acme")["tracks"] \
        == summary["rows_written"]["tracks"] > 0


def test_home_defaults_to_clickstream_home_like_every_setting(tmp_path, monkeypatch):
    from clickstream_assets.cli import build_parser

    monkeypatch.setenv("CLICKSTREAM_HOME", str(tmp_path / "state"))
    for command in ("demo", "status", "ui"):
        assert build_parser().parse_args([command]).home == str(tmp_path / "state")
    assert build_parser().parse_args(["status", "--home", "elsewhere"]).home == "elsewhere"
    monkeypatch.delenv("CLICKSTREAM_HOME")
    assert build_parser().parse_args(["ui"]).home == ".clickstream"
