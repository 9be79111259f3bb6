"""Rates written the way people say them: `5/s`, `300/min`."""

from __future__ import annotations


def parse_rate(text: str) -> float:
    """`5/s`, `300/min`, `1000/h` or a bare number per second -> requests per second."""
    count, _, unit = str(text).partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        value = float(count) / per if per else None
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise ValueError(f"rate {text!r}: use a positive N/s, N/min or N/h")
    return value
