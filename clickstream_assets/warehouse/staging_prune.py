"""Pruning failed loads' staging files, so personal data does not linger in S3.

A Redshift load deletes its run prefix (`<staging>/<schema>/<window>-<load_id>/`) once it
commits and writes a `_FAILED` marker there when it fails. So a prefix with a marker is a
failed run, kept for an operator to look at; a prefix without one is a load in flight (or one
killed outright, which the bucket's lifecycle rule expires). Pruning deletes only marked
prefixes whose marker is older than asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clickstream_assets.warehouse.s3_staging import FAILED_MARKER, S3Staging

DEFAULT_MAX_PREFIXES = 1000  # per invocation; the rest are counted and left for the next
AGE_RE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """`7d`, `36h`, `90m` -> timedelta (at least one minute)."""
    m = AGE_RE.match(text or "")
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"--older-than must look like 7d, 36h or 90m, got {text!r}")
    return timedelta(**{AGE_UNITS[m.group(2)]: int(m.group(1))})


@dataclass
class PruneReport:
    staging: str
    cutoff: datetime
    pruned: list[str] = field(default_factory=list)  # run prefixes deleted (or to delete)
    objects_deleted: int = 0
    failed_recent: int = 0  # failed, but newer than the cutoff: kept
    unmarked: int = 0  # no _FAILED marker (in flight or killed): never pruned here
    over_cap: int = 0  # old failed prefixes left for the next invocation

    def as_dict(self) -> dict:
        return {"staging": self.staging, "cutoff": self.cutoff.isoformat(),
                "pruned": self.pruned, "objects_deleted": self.objects_deleted,
                "failed_recent": self.failed_recent, "unmarked": self.unmarked,
                "over_cap": self.over_cap}


def run_prefix_of(staging: S3Staging, key: str) -> str | None:
    """`<prefix>/<schema>/<run>/...` -> `<prefix>/<schema>/<run>`; None if not laid out so."""
    base = f"{staging.prefix}/" if staging.prefix else ""
    parts = key[len(base):].split("/") if key.startswith(base) else []
    return base + "/".join(parts[:2]) if len(parts) >= 3 else None


def group_runs(staging: S3Staging, objects: list[dict]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for obj in objects:
        run = run_prefix_of(staging, obj["Key"])
        if run is not None:
            runs.setdefault(run, []).append(obj)
    return runs


def prune_failed(staging: S3Staging, older_than: timedelta, now: datetime,
                 dry_run: bool = False, max_prefixes: int = DEFAULT_MAX_PREFIXES) -> PruneReport:
    """Delete failed runs' prefixes whose `_FAILED` marker is older than `now - older_than`."""
    report = PruneReport(staging.url(staging.prefix), now - older_than)
    for run, objects in sorted(group_runs(staging, staging.list_objects(staging.prefix)).items()):
        marker = next((o for o in objects if o["Key"] == f"{run}/{FAILED_MARKER}"), None)
        if marker is None:
            report.unmarked += 1
        elif marker["LastModified"] >= report.cutoff:
            report.failed_recent += 1
        elif len(report.pruned) >= max_prefixes:
            report.over_cap += 1
        else:
            if not dry_run:
                # the marker last: a prefix half-deleted stays marked, so a re-run finishes it
                staging.delete_keys(sorted((o["Key"] for o in objects),
                                           key=lambda k: k == marker["Key"]))
                report.objects_deleted += len(objects)
            report.pruned.append(staging.url(run))
    return report
