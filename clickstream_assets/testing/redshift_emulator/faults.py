"""Faults for tests: drop a connection before a matching statement reaches the backend, or
after it ran but before its reply reaches the client (a COMMIT whose outcome the client
cannot know), and optionally refuse new connections afterwards (the cluster is gone)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class Fault:
    """Drop the connection at the first statement matching `pattern` (once a statement
    matching `armed_by` ran in that session, if given): `before` it reaches the backend, or
    `after` it ran (its reply never reaches the client). `then_refuse`: refuse every new
    connection afterwards (the cluster is unreachable)."""

    pattern: str
    when: str = "before"
    armed_by: str | None = None
    then_refuse: bool = False
    fired: bool = False


def fire_first(faults: list[Fault], sql: str, history: list[str]) -> Fault | None:
    """The first unfired, armed fault matching `sql`, now marked fired; None if none."""
    for fault in faults:
        armed = fault.armed_by is None or any(
            re.search(fault.armed_by, past, re.I | re.S) for past in history)
        if not fault.fired and armed and re.search(fault.pattern, sql, re.I | re.S):
            fault.fired = True
            return fault
    return None
