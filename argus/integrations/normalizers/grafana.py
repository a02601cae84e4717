"""Grafana alerting webhooks.

Unified alerting (Grafana 8+, contact point of type webhook, payload `version: "1"`) has
Alertmanager's shape plus Grafana extras:

    {"receiver": "...", "status": "firing", "orgId": 1,
     "alerts": [{"status": "firing", "labels": {"alertname": "...", "grafana_folder": "..."},
                 "annotations": {...}, "startsAt": "2026-01-01T10:00:00+02:00",
                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "...", "fingerprint": "...",
                 "silenceURL": "...", "dashboardURL": "...", "panelURL": "...",
                 "values": {"B": 44.2, "C": 1}, "valueString": "[ var='B' ... ]"}],
     "groupLabels": {...}, "commonLabels": {...}, "externalURL": "...", "version": "1", ...}

Legacy dashboard alerts (before Grafana 8: `ruleName`, `state`, `evalMatches`) are accepted
too: one alert per eval match (or one for the rule), labels from the rule's tags and the
match's tags, resolved when `state` is `ok`.

Label names are mapped to Prometheus names (`fields.label_name`); two that map to the same
name with different values (`team-name`, `team_name`) are refused with both named
(`fields.mapped_labels`). The fingerprint is recomputed from the labels, so an alert that also
reaches ARGUS through Alertmanager gets the same one. The alert's value is the first numeric
entry of `values` (Grafana lists the query and reduce results before the threshold condition);
every entry must be a number, or null (no value, as for NaN). `endsAt` may not be before
`startsAt`. Fields of the wrong type (`dashboardURL: 5`, a legacy `message` that is a list)
are refused, not ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, problems_from, string_map, time_range
from .fields import mapped_labels, merge_exported, timestamp

_LEGACY_FIRING = {"alerting": AlertStatus.FIRING, "no_data": AlertStatus.FIRING, "ok": AlertStatus.RESOLVED}


def _labels(raw: Any, where: str, problems: list[str], required: bool = False) -> dict[str, str]:
    return mapped_labels(string_map(raw, where, problems, required=required), where, problems)


def _text(raw: dict, key: str, where: str, problems: list[str]) -> str | None:
    """An optional string field; None when absent or null, a problem when of another type."""
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(f"{where}{key}: must be a string, got {type(value).__name__}")
    return None


def _number(value: Any, where: str, problems: list[str]) -> float | None:
    """A JSON number, or null for no value; anything else is a problem."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{where}: must be a number, got {type(value).__name__}")
        return None
    return float(value)


def _unified_alert(raw: Any, where: str, now: datetime, problems: list[str]) -> Alert | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: each alert must be an object")
        return None
    before = len(problems)
    labels = _labels(raw.get("labels"), f"{where}.labels", problems, required=True)
    if len(problems) == before and "alertname" not in labels:  # (missing, or empty)
        problems.append(f"{where}.labels.alertname: field required")
    annotations = string_map(raw.get("annotations"), f"{where}.annotations", problems)
    status = raw.get("status", "firing")
    if status not in ("firing", "resolved"):
        problems.append(f"{where}.status: must be 'firing' or 'resolved', got {status!r}")
    starts = timestamp(raw.get("startsAt"), f"{where}.startsAt", problems)
    ends = timestamp(raw.get("endsAt"), f"{where}.endsAt", problems)
    starts = time_range(starts, ends, where, now, problems)
    values = raw.get("values")
    value = None
    if values is not None:
        if not isinstance(values, dict):
            problems.append(f"{where}.values: must be an object of numbers")
        else:
            numbers = [_number(v, f"{where}.values.{k}", problems) for k, v in values.items()]
            value = next((n for n in numbers if n is not None), None)
    for key in ("dashboardURL", "panelURL", "silenceURL"):
        url = _text(raw, key, f"{where}.", problems)
        if url:
            annotations.setdefault(f"grafana_{key[:-3].lower()}_url", url)
    generator = raw.get("generatorURL")
    if generator is not None and not isinstance(generator, str):
        problems.append(f"{where}.generatorURL: must be a string")
    if len(problems) > before:
        return None
    try:
        return Alert(
            labels=labels,
            annotations=annotations,
            status=AlertStatus(status),
            starts_at=starts,
            ends_at=ends,
            generator_url=generator or None,
            source="grafana",
            value=value,
        )
    except ValidationError as exc:
        problems.extend(problems_from(exc, where))
        return None


def _legacy(payload: dict, now: datetime) -> list[Alert]:
    problems: list[str] = []
    name = payload.get("ruleName")
    if not isinstance(name, str) or not name:
        problems.append("ruleName: field required (a non-empty string)")
    state = payload.get("state")
    if state not in _LEGACY_FIRING:
        problems.append(f"state: must be one of {sorted(_LEGACY_FIRING)}, got {state!r}")
    tags = _labels(payload.get("tags"), "tags", problems)
    title = _text(payload, "title", "", problems)
    message = _text(payload, "message", "", problems)
    rule_url = _text(payload, "ruleUrl", "", problems)
    rule_id = payload.get("ruleId")
    if rule_id is not None and (isinstance(rule_id, bool) or not isinstance(rule_id, int | str)):
        problems.append(f"ruleId: must be a number or a string, got {type(rule_id).__name__}")
    matches = payload.get("evalMatches") or []
    if not isinstance(matches, list):
        problems.append("evalMatches: must be a list")
        matches = []
    if problems:
        raise PayloadError(problems)
    annotations = {k: v for k, v in (("summary", title), ("description", message)) if v}
    if rule_id is not None:
        annotations["grafana_rule_id"] = str(rule_id)
    # the rule's name and tags win over a match's tags, as a Prometheus rule's labels win over
    # its series' (a match tag `alertname` must not rename the alert); clashes are kept
    base = merge_exported({"alertname": str(name)}, tags)
    out: list[Alert] = []
    for i, m in enumerate(matches or [None]):
        labels = dict(base)
        value = None
        if m is not None:
            where = f"evalMatches[{i}]"
            if not isinstance(m, dict):
                problems.append(f"{where}: must be an object")
                continue
            before = len(problems)
            labels = merge_exported(labels, _labels(m.get("tags"), f"{where}.tags", problems))
            metric = _text(m, "metric", f"{where}.", problems)
            if metric:
                labels.setdefault("metric", metric)
            # null when Grafana had no data for the match
            value = _number(m.get("value"), f"{where}.value", problems)
            if len(problems) > before:
                continue
        try:
            out.append(
                Alert(
                    labels=labels,
                    annotations=annotations,
                    status=_LEGACY_FIRING[state],
                    starts_at=now,
                    ends_at=now if state == "ok" else None,
                    generator_url=rule_url or None,
                    source="grafana",
                    value=value,
                )
            )
        except ValidationError as exc:
            problems.extend(problems_from(exc, f"evalMatches[{i}]"))
    if problems:
        raise PayloadError(problems)
    return out


def from_grafana(payload: Any, now: datetime) -> list[Alert]:
    if not isinstance(payload, dict):
        raise PayloadError(["body: must be a Grafana webhook object"])
    if "alerts" not in payload and "ruleName" in payload:
        return _legacy(payload, now)
    raw = payload.get("alerts")
    if not isinstance(raw, list):
        raise PayloadError(["alerts: field required (a list); legacy payloads need ruleName and state"])
    problems: list[str] = []
    alerts = [_unified_alert(a, f"alerts[{i}]", now, problems) for i, a in enumerate(raw)]
    if problems:
        raise PayloadError(problems)
    return [a for a in alerts if a is not None]
