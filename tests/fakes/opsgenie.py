"""Fake Opsgenie Alert API v2, per docs/integrations.md §8.

`Authorization: GenieKey <key>`; every write → 202 `{"result":"Request will be processed","took","requestId"}`
and is processed asynchronously: `GET /v2/alerts/requests/{id}` is 404 ("might not be processed, yet")
for the first `pending_polls` polls, then 200 with `{"data": {"success", "action", "status", "alertId",
"alias"}}`. Open alerts dedupe by alias (count + 1); a create on a closed alias opens a new alert.
Actions address alerts with `?identifierType=alias|id`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply


def _body(status: int, message: str, **extra: Any) -> Reply:
    return Reply(status, json={"message": message, "took": 0.002, "requestId": str(uuid.uuid4()), **extra})


class FakeOpsgenie(FakeServer):
    vendor = "opsgenie"

    def __init__(self, api_key: str = "genie-key", *, pending_polls: int = 0) -> None:
        super().__init__()
        self.api_key = api_key
        self.pending_polls = pending_polls
        self.alerts: list[dict[str, Any]] = []
        self.notes: dict[str, list[str]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}  # requestId -> data
        self.polls: dict[str, int] = {}
        self.route("POST", r"/v2/alerts", self._create)
        self.route("GET", r"/v2/alerts/requests/(?P<rid>[\w-]+)", self._request_status)
        self.route("GET", r"/v2/alerts/(?P<ident>[^/]+)", self._get)
        self.route("POST", r"/v2/alerts/(?P<ident>[^/]+)/(?P<action>acknowledge|close|notes)", self._act)

    def error_body(self, status: int) -> Any:
        return {"message": f"Injected failure {status}", "took": 0.0, "requestId": str(uuid.uuid4())}

    def authenticate(self, request: Recorded) -> Reply | None:
        if request.headers.get("authorization") == f"GenieKey {self.api_key}":
            return None
        return _body(401, "Could not authenticate")

    def _find(self, ident: str, kind: str) -> dict[str, Any] | None:
        field = {"alias": "alias", "id": "id", "tiny": "tinyId"}.get(kind, "id")
        found = [a for a in self.alerts if a[field] == ident]
        open_ = [a for a in found if a["status"] == "open"]
        return (open_ or found or [None])[-1]

    def _accepted(self, data: dict[str, Any]) -> Reply:
        request_id = str(uuid.uuid4())
        self.outcomes[request_id] = data
        return Reply(
            202, json={"result": "Request will be processed", "took": 0.107, "requestId": request_id}
        )

    def _create(self, request: Recorded, match: re.Match[str]) -> Reply:
        body = request.json() or {}
        if not body.get("message"):
            return _body(
                422,
                "Request body is not processable. Please check the errors.",
                errors={"message": "Message can not be empty."},
            )
        alias = body.get("alias") or str(uuid.uuid4())
        existing = self._find(alias, "alias")
        if existing is not None and existing["status"] == "open":
            existing["count"] += 1
            return self._accepted(
                {
                    "success": True,
                    "action": "Create",
                    "status": "Alert already exists",
                    "alertId": existing["id"],
                    "alias": alias,
                    "isSuccess": True,
                }
            )
        alert = {
            "id": str(uuid.uuid4()),
            "tinyId": str(len(self.alerts) + 1),
            "alias": alias,
            "message": body["message"][:130],
            "description": body.get("description", ""),
            "priority": body.get("priority", "P3"),
            "tags": body.get("tags", []),
            "responders": body.get("responders", []),
            "details": body.get("details", {}),
            "status": "open",
            "acknowledged": False,
            "count": 1,
        }
        self.alerts.append(alert)
        return self._accepted(
            {
                "success": True,
                "action": "Create",
                "status": "Created alert",
                "alertId": alert["id"],
                "alias": alias,
                "isSuccess": True,
            }
        )

    def _request_status(self, request: Recorded, match: re.Match[str]) -> Reply:
        rid = match["rid"]
        self.polls[rid] = self.polls.get(rid, 0) + 1
        if rid not in self.outcomes or self.polls[rid] <= self.pending_polls:
            return _body(404, "Request not found. It might not be processed, yet.")
        return Reply(
            json={
                "data": {
                    "processedAt": "2026-11-26T10:02:00.000Z",
                    "integrationId": "int-1",
                    **self.outcomes[rid],
                },
                "took": 0.003,
                "requestId": rid,
            }
        )

    def _get(self, request: Recorded, match: re.Match[str]) -> Reply:
        alert = self._find(match["ident"], request.param("identifierType", "id") or "id")
        if alert is None:
            return _body(404, "Alert does not exist")
        return Reply(json={"data": alert, "took": 0.004, "requestId": str(uuid.uuid4())})

    def _act(self, request: Recorded, match: re.Match[str]) -> Reply:
        alert = self._find(match["ident"], request.param("identifierType", "id") or "id")
        action = match["action"]
        names = {"acknowledge": "Acknowledge", "close": "Close", "notes": "AddNote"}
        if alert is None:  # accepted, then fails asynchronously, as Opsgenie does
            return self._accepted(
                {
                    "success": False,
                    "action": names[action],
                    "status": "Alert does not exist",
                    "isSuccess": False,
                }
            )
        body = request.json() or {}
        if action == "acknowledge":
            alert["acknowledged"] = True
        elif action == "close":
            alert["status"] = "closed"
        if body.get("note"):
            self.notes.setdefault(alert["id"], []).append(body["note"])
        return self._accepted(
            {
                "success": True,
                "action": names[action],
                "status": f"{names[action]} done",
                "alertId": alert["id"],
                "alias": alert["alias"],
                "isSuccess": True,
            }
        )


def start_opsgenie_fake(api_key: str = "genie-key", **kwargs: Any) -> FakeOpsgenie:
    fake = FakeOpsgenie(api_key, **kwargs)
    fake.start()
    return fake
