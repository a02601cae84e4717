"""Prometheus-style durations ("30s", "5m", "1h30m", "2d") as a pydantic type."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")  # plain seconds


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds(float(value), value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty duration")
        pos, total = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos == len(text):
            return _seconds(total, value)
        if _NUMBER.fullmatch(text):
            return _seconds(float(text), value)
    raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h30m, 2d")


def _seconds(seconds: float, value: object) -> timedelta:
    # As Prometheus: a duration is never negative (nor infinite).
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: a duration cannot be negative")
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h30m, 2d") from None


def format_duration(td: timedelta) -> str:
    seconds = td.total_seconds()
    if seconds == 0:
        return "0s"
    out, rest = [], seconds
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest > 1e-9:
        out.append(f"{round(rest * 1000)}ms")
    return "".join(out)


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


def parse_moment(text: str, now: datetime) -> datetime:
    """A time a person types: RFC 3339 (a time without a zone is UTC), or `+2h` / `-30m` from now."""
    text = text.strip()
    if text[:1] in ("+", "-"):  # RFC 3339 begins with a year's digits
        offset = parse_duration(text[1:])
        try:
            return now + offset if text[0] == "+" else now - offset
        except OverflowError:
            raise ValueError(f"{text!r} is too far from now") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        example = "RFC 3339 (2026-12-01T22:00:00Z), or +2h / -6h from now"
        raise ValueError(f"{text!r} is not a time: use {example}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
