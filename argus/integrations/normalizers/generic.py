"""ARGUS's documented generic JSON alert (for scripts and tools with no native format).

    POST /api/v1/alerts
    {"alerts": [{"name": "DiskFull",                 # or labels.alertname
                 "labels": {"service": "db", "severity": "critical"},
                 "annotations": {"summary": "..."},
                 "status": "firing" | "resolved",     # default firing
                 "startsAt": "RFC 3339" | unix seconds,  # default: now
                 "endsAt": ...,                        # optional
                 "value": 0.97,                        # optional
                 "source": "my-script"}]}              # optional, a string
A single alert object without the "alerts" wrapper is accepted too.

Label and annotation values must be JSON strings, as on the Alertmanager endpoints: a number is
refused (422), not converted, because 1, 1.0 and 1e0 would be three fingerprints of one alert.
Label names must match `[a-zA-Z_][a-zA-Z0-9_]*` (no mapping here); an empty label value means
no label, as in Alertmanager. `endsAt` may not be before `startsAt`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, clean_labels, parse_time, problems_from, string_map, time_range


def from_generic(payload: Any, now: datetime) -> list[Alert]:
    if isinstance(payload, dict) and "alerts" in payload:
        items, base = payload["alerts"], "alerts"
        if not isinstance(items, list):
            raise PayloadError(["alerts: must be a list"])
    elif isinstance(payload, dict):
        items, base = [payload], "alert"
    else:
        raise PayloadError(["body: must be an object with an 'alerts' list, or one alert object"])
    problems: list[str] = []
    out = []
    for i, raw in enumerate(items):
        where = f"{base}[{i}]" if base == "alerts" else base
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        before = len(problems)
        labels = string_map(raw.get("labels"), f"{where}.labels", problems)
        name = raw.get("name")
        if name is not None:
            if not isinstance(name, str) or not name:
                problems.append(f"{where}.name: must be a non-empty string")
            elif labels.get("alertname") not in (None, "", name):
                problems.append(
                    f"{where}.name: {name!r} differs from labels.alertname {labels['alertname']!r}; give one"
                )
            else:
                labels["alertname"] = name
        if len(problems) == before:
            missing = f"{where}: give 'name' or labels.alertname (a non-empty string)"
            labels = clean_labels(labels, f"{where}.labels", problems, missing)
        status = raw.get("status", "firing")
        if status not in ("firing", "resolved"):
            problems.append(f"{where}.status: must be 'firing' or 'resolved', got {status!r}")
        value = raw.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{where}.value: must be a number")
        source = raw.get("source")
        if source is not None and not isinstance(source, str):
            problems.append(f"{where}.source: must be a string, got {type(source).__name__}")
        starts = parse_time(raw.get("startsAt"), f"{where}.startsAt", problems)
        ends = parse_time(raw.get("endsAt"), f"{where}.endsAt", problems)
        starts = time_range(starts, ends, where, now, problems)
        annotations = string_map(raw.get("annotations"), f"{where}.annotations", problems)
        if len(problems) > before:
            continue
        try:
            out.append(
                Alert(
                    labels=labels,
                    annotations=annotations,
                    status=AlertStatus(status),
                    starts_at=starts,
                    ends_at=ends,
                    value=value,
                    source=source or "generic",
                )
            )
        except ValidationError as exc:
            problems.extend(problems_from(exc, where))
    if problems:
        raise PayloadError(problems)
    return out
