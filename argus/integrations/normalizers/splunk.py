"""Splunk's webhook alert action.

Splunk posts the first result row of the triggering search, all values strings:

    {"result": {"host": "web-1", "service": "checkout", "count": "8", "_time": "1767225600", ...},
     "sid": "scheduler__admin__search__RMD5...", "results_link": "http://splunk:8000/app/search/@go?sid=...",
     "search_name": "Checkout errors", "owner": "admin", "app": "search"}

Identity: `alertname` is the saved search's name; of the result's fields only the ones that
name where the problem is become labels (`service`, `host`, `instance`, `environment`/`env`,
`severity`, `component`, `namespace`, `pod`, `region`), so counts in the row do not change the
fingerprint. Every other field is kept as an annotation `result_<field>` (fields whose names
map to the same one all stay, see `_annotations`). When `env` and `environment` are both given
and differ, both stay labels; otherwise `env` becomes `environment`. `_time` gives the start
(unix seconds or RFC 3339); `count` is the value. Splunk never sends a resolution: the alert
resolves after `routing.resolve_timeout` without a new notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert

from .common import PayloadError, problems_from
from .fields import label_name, number, timestamp

IDENTITY_FIELDS = (
    "service",
    "host",
    "instance",
    "environment",
    "env",
    "severity",
    "component",
    "namespace",
    "pod",
    "region",
)


def _annotations(fields: dict[str, str]) -> dict[str, str]:
    """`result_<field>` for every field, its name mapped (`fields.label_name`, a leading `_`
    dropped: `_time` → `result_time`). Fields whose names map to the same one (`a-b`, `a_b`,
    `a.b`) all stay, whatever their order in the row: the field already spelt that way gets
    `result_a_b`, then one spelt so after leading `_`s, then the others in sorted order get
    `result_a_b_2`, `result_a_b_3`, ..."""

    def base(key: str) -> str:
        return label_name(key.lstrip("_"))

    out: dict[str, str] = {}
    for key in sorted(fields, key=lambda k: (base(k) != k.lstrip("_"), base(k) != k, k)):
        name, n = f"result_{base(key)}", 2
        while name in out:
            name, n = f"result_{base(key)}_{n}", n + 1
        out[name] = fields[key]
    return out


def from_splunk(payload: Any, now: datetime) -> list[Alert]:
    if not isinstance(payload, dict):
        raise PayloadError(["body: must be a Splunk webhook object"])
    problems: list[str] = []
    name = payload.get("search_name")
    if not isinstance(name, str) or not name.strip():
        problems.append("search_name: field required (the saved search's name)")
    result = payload.get("result")
    if result is None:
        result = {}
    if not isinstance(result, dict):
        problems.append(f"result: must be an object, got {type(result).__name__}")
        result = {}
    for key in ("sid", "results_link", "owner", "app"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            problems.append(f"{key}: must be a string, got {type(payload[key]).__name__}")
    labels: dict[str, str] = {}
    fields: dict[str, str] = {}
    for key, value in result.items():
        if isinstance(value, list):  # multivalue fields
            value = ",".join(str(v) for v in value)
        if isinstance(value, dict) or isinstance(value, bool):
            problems.append(f"result.{key}: must be a string, got {type(value).__name__}")
            continue
        text = "" if value is None else str(value)
        if key in IDENTITY_FIELDS and text:
            labels[key] = text
        elif not key.startswith("__"):
            fields[key] = text
    starts = timestamp(result.get("_time"), "result._time", problems) if "_time" in result else None
    if problems:
        raise PayloadError(problems)
    # `env` is `environment` spelt short; when both are given and differ, both stay (nothing
    # is dropped, and the alert is the same one every time the search gives the same row).
    if "env" in labels and labels.get("environment", labels["env"]) == labels["env"]:
        labels["environment"] = labels.pop("env")
    annotations = _annotations(fields)
    labels["alertname"] = str(name).strip()
    if isinstance(payload.get("sid"), str):
        annotations["splunk_sid"] = payload["sid"]
    annotations.setdefault("summary", f"Splunk alert {labels['alertname']}")
    try:
        return [
            Alert(
                labels=labels,
                annotations=annotations,
                starts_at=starts or now,
                generator_url=payload.get("results_link") or None,
                source="splunk",
                value=number(result.get("count")),
            )
        ]
    except ValidationError as exc:
        raise PayloadError(problems_from(exc)) from exc
