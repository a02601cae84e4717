"""Fake PagerDuty Events API v2 (`POST /v2/enqueue`), per docs/integrations.md §6.

No auth header (the routing key is in the body). 202 `{"status":"success","message":"Event processed",
"dedup_key"}`; 400 `{"status":"invalid event","message":"Event object is invalid","errors":[...]}`.
It models alerts by dedup_key: a trigger on an open alert folds into it; on none or a resolved one it
opens a new incident (`incidents` counts them).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply

SEVERITIES = {"critical", "error", "warning", "info"}


def _invalid(*errors: str) -> Reply:
    return Reply(
        400, json={"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
    )


class FakePagerDuty(FakeServer):
    vendor = "pagerduty"

    def __init__(self) -> None:
        super().__init__()
        self.alerts: dict[str, dict[str, Any]] = {}  # dedup_key -> {"status", "events", "incidents"}
        self.incidents = 0
        self.route("POST", r"/v2/enqueue", self._enqueue)

    def error_body(self, status: int) -> Any:
        if status == 429:
            return {
                "status": "throttle exceeded",
                "message": "Requests for this service are arriving too quickly. Please retry later.",
            }
        return {"status": "error", "message": f"Injected failure {status}"}

    def _enqueue(self, request: Recorded, match: re.Match[str]) -> Reply:
        try:
            event = request.json()
        except ValueError:
            return Reply(
                400,
                json={
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["Invalid JSON"],
                },
            )
        errors = []
        if len(event.get("routing_key") or "") != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append(
                "'event_action' is invalid (must be one of the following: "
                "'trigger', 'acknowledge' or 'resolve')"
            )
        key = event.get("dedup_key")
        if key is not None and len(key) > 255:
            errors.append("'dedup_key' is too long (max 255 characters)")
        if action == "trigger":
            payload = event.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") and payload["severity"] not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of the following: "
                    "'critical', 'warning', 'error' or 'info')"
                )
        elif not key:
            errors.append("'dedup_key' is missing or blank")
        if errors:
            return _invalid(*errors)
        key = key or uuid.uuid4().hex
        alert = self.alerts.get(key)
        if action == "trigger":
            if alert is None or alert["status"] == "resolved":
                self.incidents += 1
                alert = self.alerts[key] = {
                    "status": "triggered",
                    "events": [],
                    "incidents": (alert or {}).get("incidents", 0) + 1,
                }
            alert["events"].append(event)
        elif alert is not None and alert["status"] != "resolved":
            alert["status"] = "acknowledged" if action == "acknowledge" else "resolved"
            alert["events"].append(event)
        return Reply(202, json={"status": "success", "message": "Event processed", "dedup_key": key})


def start_pagerduty_fake() -> FakePagerDuty:
    fake = FakePagerDuty()
    fake.start()
    return fake
