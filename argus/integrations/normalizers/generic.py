"""ARGUS's documented generic JSON alert (for scripts and tools with no native format).

    POST /api/v1/alerts
    {"alerts": [{"name": "DiskFull",                 # or labels.alertname
                 "labels": {"service": "db", "severity": "critical"},
                 "annotations": {"summary": "..."},
                 "status": "firing" | "resolved",     # default firing
                 "startsAt": "RFC 3339" | unix seconds,  # default: now
                 "endsAt": ...,                        # optional
                 "value": 0.97}]}                      # optional
A single alert object without the "alerts" wrapper is accepted too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, parse_time, problems_from, string_map


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
            else:
                labels.setdefault("alertname", name)
        if "alertname" not in labels:
            problems.append(f"{where}: give 'name' or labels.alertname")
        status = raw.get("status", "firing")
        if status not in ("firing", "resolved"):
            problems.append(f"{where}.status: must be 'firing' or 'resolved', got {status!r}")
        value = raw.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{where}.value: must be a number")
        starts = parse_time(raw.get("startsAt"), f"{where}.startsAt", problems) or now
        ends = parse_time(raw.get("endsAt"), f"{where}.endsAt", problems)
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
                    source=str(raw.get("source") or "generic"),
                )
            )
        except ValidationError as exc:
            problems.extend(problems_from(exc, where))
    if problems:
        raise PayloadError(problems)
    return out
