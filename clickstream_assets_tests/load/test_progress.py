"""Progress of long loads: the pipeline's reports, their throttle, a range run's log lines, and
`clickstream load`'s bar on a terminal (quiet otherwise)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import timedelta

from dagster import DagsterInstance, materialize

from clickstream_assets.cli import main
from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.definitions import build_resources
from clickstream_assets.defs.factory import PARTITION_FORMAT, build_customer_assets
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.load.progress import Progress, throttled
from clickstream_assets_tests.conftest import HOUR

HOURS = [HOUR + timedelta(hours=i) for i in range(3)]


def write_hours(store, files_per_hour: int = 4) -> list[str]:
    return [k for hour in HOURS
            for k in write_sample_hour(store, "acme", "acme", hour, 40, files=files_per_hour)]


def test_load_window_reports_files_events_and_hours_as_it_goes(store, warehouse, customer):
    keys = write_hours(store)
    reports: list[Progress] = []
    _, result = load_window(store, warehouse, customer, HOURS[0], HOURS[-1] + timedelta(hours=1),
                            progress=reports.append)
    assert len(reports) > len(HOURS)  # more than one report per hour: it reports as it goes
    assert [r.done for r in reports] == [False] * (len(reports) - 1) + [True]
    final = reports[-1]
    assert final.files == final.files_total == len(keys)
    assert final.events == result.counts.read and final.rejected == result.counts.rejected
    assert (final.hour, final.hours_started, final.hours_total) == (HOURS[-1], 3, 3)
    assert all(a.files <= b.files and a.events <= b.events for a, b in zip(reports, reports[1:]))
    assert {r.hour for r in reports if r.hour} == set(HOURS)
    assert "done: 12/12 files, hour" in final.describe()


def test_throttled_reports_every_n_files_or_seconds_and_always_the_last():
    now = [0.0]
    seen: list[int] = []
    report = throttled(lambda p: seen.append(p.files), every_files=3, every_seconds=60,
                       clock=lambda: now[0])

    def progress(files: int, done: bool = False) -> Progress:
        return Progress(files, 10, files * 5, 0, 1.0, None, 0, 0, done)

    for files in range(1, 11):
        report(progress(files))
    assert seen == [3, 6, 9]
    now[0] = 61.0  # a minute without a report: the next new file is reported
    report(progress(10))
    report(progress(10))  # nothing new since: quiet
    report(progress(10, done=True))
    assert seen == [3, 6, 9, 10, 10]


def test_a_range_run_logs_its_progress(store, settings, customer):
    write_hours(store)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        build_customer_assets(customer), instance=instance, resources=build_resources(settings),
        tags={"dagster/asset_partition_range_start": HOURS[0].strftime(PARTITION_FORMAT),
              "dagster/asset_partition_range_end": HOURS[-1].strftime(PARTITION_FORMAT)})
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    progress = [m for m in messages if "events/s" in m]
    assert progress and progress[-1].startswith("acme: done: 12/12 files, hour ")
    assert "(3/3)" in progress[-1]


def test_load_is_quiet_on_stderr_when_it_is_not_a_terminal(store, tmp_path, capsys):
    files = [str(store.root / k) for k in write_hours(store)]
    assert main(["load", "--customer", "acme", "--warehouse",
                 f"duckdb://{tmp_path / 'wh.duckdb'}", *files]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["files"] == len(files) and out.err == ""


def test_load_draws_a_progress_bar_on_a_terminal(store, tmp_path):
    files = [str(store.root / k) for k in write_hours(store)]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 cols
    proc = subprocess.run(
        [sys.executable, "-m", "clickstream_assets.cli", "load", "--customer", "acme",
         "--warehouse", f"duckdb://{tmp_path / 'wh.duckdb'}", *files],
        stdout=subprocess.PIPE, stderr=follower, timeout=120, env=os.environ.copy())
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty is closed once its output is read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert proc.returncode == 0 and json.loads(proc.stdout)["files"] == len(files)
    text = drawn.decode(errors="replace")
    assert f"{len(files)}/{len(files)}" in text and "events/s" in text
