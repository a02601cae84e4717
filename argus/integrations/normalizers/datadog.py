"""Datadog webhooks (Integrations > Webhooks).

Datadog posts whatever payload template the webhook is given, filled with its `$VARIABLES`.
ARGUS documents this template (docs/monitoring.md) and reads these fields:

    {"id": "$ID", "alert_id": "$ALERT_ID", "title": "$EVENT_TITLE", "alert_title": "$ALERT_TITLE",
     "transition": "$ALERT_TRANSITION", "alert_type": "$ALERT_TYPE", "priority": "$ALERT_PRIORITY",
     "metric": "$ALERT_METRIC", "scope": "$ALERT_SCOPE", "tags": "$TAGS", "date": "$DATE",
     "hostname": "$HOSTNAME", "link": "$LINK", "body": "$EVENT_MSG"}

Identity: `alertname` is the monitor's title (`alert_title`, else `title` without Datadog's
`[Triggered]`-style prefix), `datadog_monitor_id` the monitor id, plus the labels of the
alert's scope (`host:web-1,service:checkout` → `host`, `service`), so a multi-alert monitor
gives one ARGUS alert per group. A scope tag named `alertname` or `datadog_monitor_id` is kept
as `exported_alertname` (`fields.merge_exported`). `tags` become annotations only: they may change between
notifications and must not change the fingerprint. `tags` must be a string or a list of
strings; a tag key given more than once keeps all its values (`fields.tag_labels`). An
optional `value` (Datadog's webhook variables include none for the metric's value; a payload
may add one) is read as a number; left as an unexpanded `$VARIABLE` it counts as no value.
`transition` Recovered (or alert_type success) resolves; Triggered, Re-Triggered, Warn,
Renotify, No Data fire. Severity comes from `priority` (P1..P5) or else `alert_type`. `date`
is epoch milliseconds.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, problems_from
from .fields import merge_exported, number, tag_labels, timestamp

_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*")
_UNEXPANDED = re.compile(r"\$[A-Z][A-Z0-9_]*")
_RESOLVED = {"recovered", "resolved"}
_FIRING = {"triggered", "re-triggered", "retriggered", "warn", "renotify", "no data", "no_data", "alert"}
_TYPE_SEVERITY = {"error": "critical", "warning": "warning", "info": "info", "success": "info"}
_PRIORITY_SEVERITY = {"p1": "critical", "p2": "error", "p3": "warning", "p4": "info", "p5": "info"}


def _text(raw: dict, key: str, problems: list[str]) -> str | None:
    v = raw.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        problems.append(f"{key}: must be a string, got {type(v).__name__}")
        return None
    return v


def _one(raw: Any, where: str, now: datetime, problems: list[str]) -> Alert | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    p: list[str] = []
    text = {
        k: _text(raw, k, p)
        for k in (
            "id",
            "alert_id",
            "title",
            "alert_title",
            "transition",
            "alert_type",
            "priority",
            "metric",
            "scope",
            "hostname",
            "link",
            "body",
        )
    }
    name = text["alert_title"] or (_PREFIX.sub("", text["title"]) if text["title"] else None)
    if not name:
        p.append("alert_title: field required (or title): the monitor's name")
    transition = (text["transition"] or "").strip().lower()
    alert_type = (text["alert_type"] or "").strip().lower()
    if not transition and not alert_type:
        p.append("transition: field required ($ALERT_TRANSITION), or alert_type")
    elif transition and transition not in _RESOLVED | _FIRING:
        p.append(f"transition: unknown Datadog transition {text['transition']!r}")
    if alert_type and alert_type not in _TYPE_SEVERITY:
        p.append(f"alert_type: must be one of {sorted(_TYPE_SEVERITY)}, got {text['alert_type']!r}")
    starts = timestamp(raw.get("date"), "date", p) or now
    raw_value = raw.get("value")
    if isinstance(raw_value, str) and _UNEXPANDED.fullmatch(raw_value.strip()):
        raw_value = None  # a variable this Datadog site does not fill in: no value
    value = number(raw_value)
    if raw_value not in (None, "") and value is None:
        p.append(f"value: must be a number, got {raw_value!r}")
    tags = raw.get("tags")
    if tags is not None and not isinstance(tags, str | list):
        p.append(f'tags: must be a string ("$TAGS") or a list of strings, got {type(tags).__name__}')
    elif isinstance(tags, list):
        p.extend(
            f"tags[{i}]: must be a string, got {type(t).__name__}"
            for i, t in enumerate(tags)
            if not isinstance(t, str)
        )
    problems.extend(f"{where}.{x}" if where else x for x in p)
    if p:
        return None
    resolved = transition in _RESOLVED or (not transition and alert_type == "success")
    # the monitor's name and id win over scope tags of the same names, which are kept as
    # `exported_alertname`, ...
    own = {"alertname": name} | ({"datadog_monitor_id": text["alert_id"]} if text["alert_id"] else {})
    labels = merge_exported(own, tag_labels(text["scope"] or ""))  # type: ignore[arg-type]
    if "host" not in labels and text["hostname"]:
        labels["host"] = text["hostname"]
    severity = _PRIORITY_SEVERITY.get((text["priority"] or "").lower()) or _TYPE_SEVERITY.get(alert_type)
    if severity and "severity" not in labels:
        labels["severity"] = severity
    annotations = {
        k: v
        for k, v in (
            ("summary", text["title"]),
            ("description", text["body"]),
            ("datadog_metric", text["metric"]),
            ("datadog_event_id", text["id"]),
            ("datadog_transition", text["transition"]),
        )
        if v
    }
    for key, val in tag_labels(tags or "").items():
        annotations.setdefault(f"tag_{key}", val)
    try:
        return Alert(
            labels=labels,
            annotations=annotations,
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            starts_at=starts,
            ends_at=starts if resolved else None,
            generator_url=text["link"],
            source="datadog",
            value=value,
        )
    except ValidationError as exc:
        problems.extend(problems_from(exc, where))
        return None


def from_datadog(payload: Any, now: datetime) -> list[Alert]:
    """One notification object, or `{"alerts": [...]}` for batched senders."""
    if isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
        items, prefix = payload["alerts"], "alerts"
    elif isinstance(payload, dict):
        items, prefix = [payload], ""
    else:
        raise PayloadError(["body: must be a Datadog webhook object"])
    problems: list[str] = []
    alerts = [_one(item, f"{prefix}[{i}]" if prefix else "", now, problems) for i, item in enumerate(items)]
    if problems:
        raise PayloadError(problems)
    return [a for a in alerts if a is not None]
