"""Helpers shared by the normalisers: error collection and timestamp parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from argus.models.alert import LABEL_NAME

ZERO_TIME_YEAR = 1  # Alertmanager's "0001-01-01T00:00:00Z" means "not set"


class PayloadError(ValueError):
    """A payload that cannot be accepted; `problems` are "location: message" strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def problems_from(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        loc = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        out.append(f"{loc.lstrip('.') or 'body'}: {err['msg']}")
    return out


# RFC 3339 date-times (ISO 8601's extended calendar form): a full date, `T` (or `t`, or the
# space RFC 3339 allows), hours and minutes, optional seconds and fraction, optional offset.
# Week dates (`2026-W01-1`), ordinal dates, date-only strings and the basic form
# (`20260101T100000`) are refused, though Python's `fromisoformat` would take them.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_time(value: Any, where: str, problems: list[str]) -> datetime | None:
    """RFC 3339 string or unix seconds → aware UTC; None for missing or zero time."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            dt = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str):
            m = _RFC3339.fullmatch(value.strip())
            if m is None:
                raise ValueError
            day, clock, fraction, offset = m.groups()
            # Go prints up to nine fractional digits; Python takes six.
            fraction = f".{fraction[:6].ljust(6, '0')}" if fraction else ""
            offset = "+00:00" if offset in ("Z", "z") else offset or ""
            dt = datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        problems.append(f"{where}: invalid timestamp {value!r} (use RFC 3339, e.g. 2026-01-01T00:00:00Z)")
        return None
    if dt.tzinfo is None:
        # No offset: read as UTC, as Alertmanager's API parser (go-openapi strfmt) does too,
        # and what Prometheus, Alertmanager and most webhooks mean.
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if dt.year <= ZERO_TIME_YEAR:
        return None
    return dt


def clean_labels(
    labels: dict[str, str], where: str, problems: list[str], missing: str | None = None
) -> dict[str, str]:
    """Labels as Alertmanager stores them: empty values dropped (its removeEmptyLabels, so the
    same alert relayed by its webhook, which carries none, gets the same fingerprint), then a
    non-empty `alertname` required and every name checked against `[a-zA-Z_][a-zA-Z0-9_]*`.
    `where` is the labels' location, `missing` the problem to report without an alertname;
    `Alert` applies the same rules to every other source."""
    if "" in labels.values():
        labels = {k: v for k, v in labels.items() if v != ""}
    if "alertname" not in labels:
        problems.append(missing or f"{where}.alertname: label 'alertname' is required (a non-empty string)")
    for name in labels:
        if not LABEL_NAME.fullmatch(name):
            problems.append(f"{where}: invalid label name {name!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
    return labels


def end_before_start(where: str, starts: datetime, ends: datetime) -> str:
    return (
        f"{where}.endsAt: {ends.isoformat()} is before startsAt {starts.isoformat()}"
        " (start time must be before end time)"
    )


def time_range(
    starts: datetime | None, ends: datetime | None, where: str, now: datetime, problems: list[str]
) -> datetime:
    """The start to keep: `starts`, else `now` (or `ends` if that is earlier: a resolution
    posted without its start, as Alertmanager's v2 API takes it). An end before the start is
    refused, as Alertmanager refuses it ("start time must be before end time")."""
    if starts is None:
        return min(now, ends) if ends is not None else now
    if ends is not None and ends < starts:
        problems.append(end_before_start(where, starts, ends))
    return starts


def string_map(value: Any, where: str, problems: list[str], required: bool = False) -> dict[str, str]:
    """An object of string values (Alertmanager's LabelSet). Any other value is refused, a number
    too: 1, 1.0 and 1e0 would be three spellings of one label, so three fingerprints."""
    if value is None:
        if required:
            problems.append(f"{where}: field required")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object of string values, got {type(value).__name__}")
        return {}
    out = {}
    for k, v in value.items():
        if type(v) is not str:
            problems.append(f"{where}.{k}: must be a string, got {type(v).__name__}")
            continue
        out[k] = v
    return out
