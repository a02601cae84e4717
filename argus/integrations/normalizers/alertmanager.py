"""Alertmanager's two shapes: the v2 alerts API (what Prometheus posts) and the webhook (v4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, clean_labels, parse_time, problems_from, string_map, time_range


def _build(
    raw: Any, where: str, now: datetime, problems: list[str], source: str, status_field: bool
) -> Alert | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: each alert must be an object")
        return None
    before = len(problems)
    labels = string_map(raw.get("labels"), f"{where}.labels", problems, required=True)
    if len(problems) == before:
        labels = clean_labels(labels, f"{where}.labels", problems)
    annotations = string_map(raw.get("annotations"), f"{where}.annotations", problems)
    starts = parse_time(raw.get("startsAt"), f"{where}.startsAt", problems)
    ends = parse_time(raw.get("endsAt"), f"{where}.endsAt", problems)
    starts = time_range(starts, ends, where, now, problems)
    generator = raw.get("generatorURL")
    if generator is not None and not isinstance(generator, str):
        problems.append(f"{where}.generatorURL: must be a string")
        generator = None
    if status_field:
        st = raw.get("status", "firing")
        if st not in ("firing", "resolved"):
            problems.append(f"{where}.status: must be 'firing' or 'resolved', got {st!r}")
            return None
        status = AlertStatus(st)
    else:
        # v2 API: an alert whose end time has passed is a resolution.
        status = AlertStatus.RESOLVED if ends is not None and ends <= now else AlertStatus.FIRING
    if len(problems) > before:
        return None
    try:
        return Alert(
            labels=labels,
            annotations=annotations,
            status=status,
            starts_at=starts,
            ends_at=ends,
            generator_url=generator,
            source=source,
        )
    except ValidationError as exc:
        problems.extend(problems_from(exc, where))
        return None


def from_v2(payload: Any, now: datetime) -> list[Alert]:
    """`POST /api/v2/alerts`: a JSON array of postable alerts."""
    if not isinstance(payload, list):
        raise PayloadError(["body: must be a JSON array of alerts (Alertmanager v2 API)"])
    problems: list[str] = []
    alerts = [
        _build(a, f"[{i}]", now, problems, "prometheus", status_field=False) for i, a in enumerate(payload)
    ]
    if problems:
        raise PayloadError(problems)
    return [a for a in alerts if a is not None]


def from_webhook(payload: Any, now: datetime) -> list[Alert]:
    """Alertmanager's webhook receiver payload, version 4."""
    if not isinstance(payload, dict):
        raise PayloadError(["body: must be an Alertmanager webhook object"])
    problems: list[str] = []
    version = payload.get("version")
    if version is not None and str(version) != "4":
        problems.append(f"version: unsupported webhook version {version!r} (expected '4')")
    raw = payload.get("alerts")
    if not isinstance(raw, list):
        problems.append("alerts: field required (a list)")
        raise PayloadError(problems)
    alerts = [
        _build(a, f"alerts[{i}]", now, problems, "alertmanager", status_field=True) for i, a in enumerate(raw)
    ]
    if problems:
        raise PayloadError(problems)
    return [a for a in alerts if a is not None]
