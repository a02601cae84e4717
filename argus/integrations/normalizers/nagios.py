"""Nagios (and Icinga 1, Naemon) notifications, sent as JSON by a notification command.

Nagios has no webhook; its notification commands run a shell line with macros. ARGUS
documents one (docs/monitoring.md) that posts:

    {"notification_type": "$NOTIFICATIONTYPE$", "host_name": "$HOSTNAME$",
     "host_address": "$HOSTADDRESS$", "service_description": "$SERVICEDESC$",
     "state": "$SERVICESTATE$", "output": "$SERVICEOUTPUT$", "timestamp": "$TIMET$",
     "hostgroup": "$HOSTGROUPNAME$", "attempt": "$SERVICEATTEMPT$"}

Host notifications leave out `service_description` and send `$HOSTSTATE$`/`$HOSTOUTPUT$`.
`attempt`, when given, must be a whole number from 1; it is kept as the annotation
`nagios_attempt` (not a label: it changes between notifications of one problem).
Identity: `alertname` is the service description (or `HostDown` for host checks), `host` the
host, `instance` its address, `service` the host group (else the host), `severity` from the
state (CRITICAL/DOWN critical, WARNING/UNKNOWN/UNREACHABLE warning).

PROBLEM fires; RECOVERY resolves. Because severity is a label, a WARNING→CRITICAL change is a
different alert: the notification also resolves the other severity, so the WARNING alert does
not linger. ACKNOWLEDGEMENT, FLAPPING*, DOWNTIME* and CUSTOM notifications carry no state
change; they are accepted, counted, and ignored with that reason in the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from argus.models import Alert, AlertStatus

from .common import PayloadError, problems_from
from .fields import timestamp

_SEVERITY = {
    "CRITICAL": "critical",
    "DOWN": "critical",
    "WARNING": "warning",
    "UNKNOWN": "warning",
    "UNREACHABLE": "warning",
    "OK": None,
    "UP": None,
}
_NO_STATE_CHANGE = {
    "ACKNOWLEDGEMENT",
    "FLAPPINGSTART",
    "FLAPPINGSTOP",
    "FLAPPINGDISABLED",
    "DOWNTIMESTART",
    "DOWNTIMEEND",
    "DOWNTIMECANCELLED",
    "CUSTOM",
}


def _str(payload: dict, key: str, problems: list[str], required: bool = False) -> str:
    v = payload.get(key)
    if v is None or v == "":
        if required:
            problems.append(f"{key}: field required")
        return ""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        problems.append(f"{key}: must be a string, got {type(v).__name__}")
        return ""
    return v.strip()


def _attempt(value: Any, problems: list[str]) -> int | None:
    """`$SERVICEATTEMPT$` (or `$HOSTATTEMPT$`): a whole number from 1; empty means not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"attempt: must be a whole number from 1 ($SERVICEATTEMPT$), got {value!r}")
        return None
    return value


def normalise(payload: Any, now: datetime) -> tuple[list[Alert], str | None]:
    """The alerts of one notification, and why it was ignored if it carries none."""
    if not isinstance(payload, dict):
        raise PayloadError(["body: must be a JSON object from the Nagios notification command"])
    problems: list[str] = []
    kind = _str(payload, "notification_type", problems, required=True).upper()
    host = _str(payload, "host_name", problems, required=True)
    service_desc = _str(payload, "service_description", problems)
    state = _str(payload, "state", problems, required=True).upper()
    address = _str(payload, "host_address", problems)
    group = _str(payload, "hostgroup", problems)
    output = _str(payload, "output", problems)
    at = timestamp(payload.get("timestamp"), "timestamp", problems) or now
    attempt = _attempt(payload.get("attempt"), problems)
    if kind and kind not in _NO_STATE_CHANGE and kind not in ("PROBLEM", "RECOVERY"):
        problems.append(f"notification_type: unknown Nagios notification type {kind!r}")
    if state and state not in _SEVERITY:
        problems.append(f"state: must be one of {sorted(_SEVERITY)}, got {state!r}")
    elif kind == "PROBLEM" and state in ("OK", "UP"):
        problems.append(f"state: a PROBLEM notification cannot have state {state}")
    if problems:
        raise PayloadError(problems)
    if kind in _NO_STATE_CHANGE:
        return [], f"{kind} notifications carry no state change"
    labels = {"alertname": service_desc or "HostDown", "host": host, "service": group or host}
    if address:
        labels["instance"] = address
    annotations = {"summary": f"{service_desc or 'host'} on {host} is {state}"}
    if output:
        annotations["description"] = output
    if attempt is not None:
        annotations["nagios_attempt"] = str(attempt)
    severity = _SEVERITY[state] if kind == "PROBLEM" else None
    out = []
    try:
        for level in ("critical", "warning"):
            firing = level == severity
            out.append(
                Alert(
                    labels={**labels, "severity": level},
                    annotations=annotations,
                    status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
                    starts_at=at,
                    ends_at=None if firing else at,
                    source="nagios",
                )
            )
    except ValidationError as exc:
        raise PayloadError(problems_from(exc)) from exc
    return out, None


def from_nagios(payload: Any, now: datetime) -> list[Alert]:
    return normalise(payload, now)[0]
