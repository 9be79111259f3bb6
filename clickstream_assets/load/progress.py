"""Progress of a long load: files read, events so far, rate, and which hour.

Why: a range run over hundreds of hours, or `clickstream load` over hundreds of files, is
otherwise silent until it ends. The pipeline reports after every chunk it normalizes; the
caller decides how often that is worth showing (`throttled`: every N files or T seconds for a
run's log; a terminal progress bar throttles itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Iterator, Sequence

from clickstream_assets.load_batch import NormalizedBatch

DEFAULT_EVERY_FILES = 50
DEFAULT_EVERY_SECONDS = 15.0


@dataclass(frozen=True)
class Progress:
    files: int  # files opened so far (a file's events follow its opening)
    files_total: int
    events: int  # events read so far
    rejected: int
    elapsed_seconds: float
    hour: datetime | None  # the hour of the file being read (None: ad-hoc files)
    hours_started: int  # hours whose files have begun, of hours_total
    hours_total: int
    done: bool = False

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def describe(self) -> str:
        where = (f", hour {self.hour:%Y-%m-%d %H:00} ({self.hours_started}/{self.hours_total})"
                 if self.hour is not None else "")
        state = "done: " if self.done else ""
        return (f"{state}{self.files}/{self.files_total} files{where}, {self.events:,} events "
                f"({self.rejected:,} rejected), {self.events_per_second:,.0f} events/s")


ProgressCallback = Callable[[Progress], None]


def track(chunks: Iterable[NormalizedBatch], file_hours: Sequence[datetime | None],
          progress: ProgressCallback,
          clock: Callable[[], float] = time.monotonic) -> Iterator[NormalizedBatch]:
    """Pass `chunks` through, reporting after each one and once more (done) at the end.
    `file_hours` holds each file's hour in the order the chunks open them."""
    began = clock()
    files = events = rejected = 0
    started = _hours_started(file_hours)

    def report(done: bool = False) -> None:
        seen = min(files, len(file_hours))
        hour = file_hours[seen - 1] if seen else None
        progress(Progress(files, len(file_hours), events, rejected, clock() - began, hour,
                          started[seen], started[-1], done))

    for chunk in chunks:
        files += chunk.counts.files
        events += chunk.counts.read
        rejected += chunk.counts.rejected
        yield chunk
        report()
    report(done=True)


def _hours_started(file_hours: Sequence[datetime | None]) -> list[int]:
    """[k] = distinct hours among the first k files (files come hour by hour)."""
    out, seen = [0], set()
    for hour in file_hours:
        seen.add(hour)
        out.append(len(seen))
    return out


def throttled(callback: ProgressCallback, every_files: int = DEFAULT_EVERY_FILES,
              every_seconds: float = DEFAULT_EVERY_SECONDS,
              clock: Callable[[], float] = time.monotonic) -> ProgressCallback:
    """`callback` only every `every_files` files or `every_seconds`, whichever comes first,
    and always for the final report: a 720-hour run logs a few dozen lines, not thousands."""
    last = {"files": 0, "at": clock()}

    def maybe(p: Progress) -> None:
        due = (p.files - last["files"] >= every_files
               or (clock() - last["at"] >= every_seconds and p.files > last["files"]))
        if due or p.done:
            last.update(files=p.files, at=clock())
            callback(p)

    return maybe
