"""Opsgenie alerts (REST v2) as tickets and as a channel, with httpx.

Opsgenie answers every write with **202** and a `requestId`: the outcome comes later from
`GET /v2/alerts/requests/{id}` (404 until processed). ARGUS polls that briefly (`confirm_timeout`)
so a refused request surfaces as an error; if it is still pending, the alias is known anyway and
every later call addresses the alert by alias.

Exactly-once: the alias is `argus:<key>`. Opsgenie dedupes open alerts by alias on its own; ARGUS
also looks the alias up first, so a closed alert is not re-created by a retried create.
Note: Opsgenie sales ended 2025-06-04 and support ends 2027-04-05 (integrations.md §8).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, json_error_message, new_client, send
from argus.models import Delivery, Notification, NotificationKind, TicketRef, TicketRequest, TicketUpdate
from argus.models.common import Model

DEFAULT_PRIORITIES = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
_ALIAS_MAX = 512
_MESSAGE_MAX = 130


class Responder(Model):
    type: str = "team"  # team | user | escalation | schedule
    name: str | None = None
    id: str | None = None
    username: str | None = None


class AlertRequest(Model):
    message: str = Field(max_length=_MESSAGE_MAX)
    alias: str = Field(max_length=_ALIAS_MAX)
    description: str = ""
    responders: list[Responder] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    details: dict[str, str] = Field(default_factory=dict)
    entity: str | None = None
    source: str = "ARGUS"
    priority: str = "P3"


class RequestStatus(Model):
    """The processed outcome of one asynchronous write."""

    success: bool
    action: str = ""
    status: str = ""
    alert_id: str | None = None
    alias: str | None = None


def alias_for(key: str) -> str:
    alias = f"argus:{key}"
    return alias if len(alias) <= _ALIAS_MAX else "argus:sha256:" + hashlib.sha256(key.encode()).hexdigest()


_error_message = json_error_message("errors", "message")


class OpsgenieApi:
    """Alert calls with `GenieKey` auth; writes can wait for their asynchronous outcome."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.opsgenie.com",  # EU: https://api.eu.opsgenie.com
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        confirm_timeout: float = 2.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.http = new_client(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"Authorization": f"GenieKey {api_key}"}
        )
        self.confirm_timeout = confirm_timeout
        self.poll_interval = poll_interval

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        return send(self.http, method, path, "opsgenie", operation, _error_message, **kwargs)

    def create(self, alert: AlertRequest) -> RequestStatus | None:
        body = alert.model_dump(mode="json", exclude_none=True)
        response = self._send("POST", "/v2/alerts", "create alert", json=body)
        return self.confirm(response.json().get("requestId"), "create alert")

    def act(self, alias: str, action: str, *, note: str = "", user: str = "ARGUS") -> RequestStatus | None:
        """`acknowledge`, `close` or `notes` on the alert with this alias."""
        body: dict[str, Any] = {"user": user, "source": "ARGUS"}
        if note:
            body["note"] = note
        path = f"/v2/alerts/{quote(alias, safe='')}/{action}"
        response = self._send("POST", path, f"{action} alert", json=body, params={"identifierType": "alias"})
        return self.confirm(response.json().get("requestId"), f"{action} alert")

    def get(self, alias: str) -> dict[str, Any] | None:
        path = f"/v2/alerts/{quote(alias, safe='')}"
        try:
            response = self._send("GET", path, "get alert", params={"identifierType": "alias"})
        except PermanentError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return response.json().get("data")

    def confirm(self, request_id: str | None, operation: str) -> RequestStatus | None:
        """Poll the request's outcome; None if still unprocessed when `confirm_timeout` runs out."""
        if not request_id or self.confirm_timeout <= 0:
            return None
        deadline = time.monotonic() + self.confirm_timeout
        while True:
            try:
                response = self.http.get(f"/v2/alerts/requests/{request_id}")
            except httpx.TransportError as exc:  # timeouts included
                raise IntegrationError(
                    f"opsgenie {operation}: status check failed ({type(exc).__name__})"
                ) from None
            if response.status_code == 200:
                data = response.json().get("data") or {}
                status = RequestStatus(
                    success=bool(data.get("success", data.get("isSuccess"))),
                    action=str(data.get("action", "")),
                    status=str(data.get("status", "")),
                    alert_id=data.get("alertId"),
                    alias=data.get("alias"),
                )
                if not status.success:
                    raise PermanentError(f"opsgenie {operation}: refused: {status.status}")
                return status
            if response.status_code != 404:  # 404: not processed yet
                send(
                    self.http,
                    "GET",
                    f"/v2/alerts/requests/{request_id}",
                    "opsgenie",
                    "request status",
                    _error_message,
                )
            if time.monotonic() + self.poll_interval > deadline:
                return None
            time.sleep(self.poll_interval)


def _state_of(alert: dict[str, Any] | None) -> str:
    if alert is None:
        return "pending"
    if alert.get("status") == "closed":
        return "closed"
    return "acknowledged" if alert.get("acknowledged") else "open"


class OpsgenieTickets:
    """`TicketSystem` over Opsgenie alerts. Secret: `api_key` (an API integration key)."""

    name = "opsgenie"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.opsgenie.com",
        responders: list[Responder] | None = None,
        tags: list[str] | None = None,
        priorities: dict[str, str] | None = None,
        app_url: str = "",
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        confirm_timeout: float = 2.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.api = OpsgenieApi(
            api_key,
            base_url=base_url,
            timeout=timeout,
            confirm_timeout=confirm_timeout,
            poll_interval=poll_interval,
        )
        self.responders = responders or []
        self.tags = tags or ["argus"]
        self.priorities = priorities or DEFAULT_PRIORITIES
        self.app_url = app_url.rstrip("/")  # e.g. https://<org>.app.opsgenie.com
        self.sent = sent or SentKeys()

    def create(self, request: TicketRequest) -> TicketRef:
        alias = alias_for(request.key)
        existing = self.api.get(alias)
        if existing is not None:
            return self._ref(alias, existing)
        alert = AlertRequest(
            message=_short(request.title),
            alias=alias,
            description=f"{request.description}\n\nARGUS incident {request.incident_id}",
            responders=self.responders,
            tags=list(dict.fromkeys([*self.tags, *request.labels])),
            details={
                "incident": request.incident_id,
                "service": request.service,
                "severity": request.severity,
            },
            entity=request.service,
            priority=self.priorities.get(request.severity.lower(), "P3"),
        )
        outcome = self.api.create(alert)
        state = "open" if outcome is not None else "pending"
        return TicketRef(
            system=self.name, key=alias, url=self._url(outcome.alert_id if outcome else None), state=state
        )

    def get(self, key: str) -> TicketRef | None:
        """By idempotency key or by alias."""
        for alias in (alias_for(key), key):
            alert = self.api.get(alias)
            if alert is not None:
                return self._ref(alias, alert)
        return None

    def update(self, update: TicketUpdate) -> TicketRef:
        done = self.sent.get("opsgenie:update", update.key)
        if done is not None:
            return TicketRef.model_validate(done)
        alias = update.ticket.key
        state = (update.state or "").strip().lower()
        if not state and update.resolution:
            state = "resolved"
        note = update.comment
        new_state = update.ticket.state
        if state in ("resolved", "resolve", "closed", "close"):
            self.api.act(
                alias, "close", note=note or f"Resolved by ARGUS ({update.resolution or 'resolved'})"
            )
            new_state = "closed"
        elif state in ("acknowledged", "acknowledge"):
            self.api.act(alias, "acknowledge", note=note)
            new_state = "acknowledged"
        elif state in ("reopened", "reopen", "open"):
            # Opsgenie has no reopen: a create with the alias of a closed alert opens a new one.
            self.api.create(AlertRequest(message=_short(f"Reopened: {alias}"), alias=alias, description=note))
            new_state = "open"
        elif state:
            raise PermanentError(f"opsgenie: ARGUS cannot move an alert to state {update.state!r}")
        elif note:
            self.api.act(alias, "notes", note=note)
        ref = update.ticket.model_copy(update={"state": new_state})
        self.sent.put("opsgenie:update", update.key, ref.model_dump(mode="json"))
        return ref

    def _ref(self, alias: str, alert: dict[str, Any]) -> TicketRef:
        return TicketRef(system=self.name, key=alias, url=self._url(alert.get("id")), state=_state_of(alert))

    def _url(self, alert_id: str | None) -> str:
        return f"{self.app_url}/alert/detail/{alert_id}/details" if self.app_url and alert_id else ""


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


class OpsgenieChannel:
    """`Channel`: opens the incident's alert (alias `argus:<incident>`) and closes it when resolved."""

    name = "opsgenie"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.opsgenie.com",
        responders: list[Responder] | None = None,
        priorities: dict[str, str] | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        confirm_timeout: float = 2.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.api = OpsgenieApi(
            api_key,
            base_url=base_url,
            timeout=timeout,
            confirm_timeout=confirm_timeout,
            poll_interval=poll_interval,
        )
        self.responders = responders or []
        self.priorities = priorities or DEFAULT_PRIORITIES
        self.sent = sent or SentKeys()

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        alias = alias_for(notification.incident_id or notification.key)
        if notification.kind in (
            NotificationKind.OPENED,
            NotificationKind.ESCALATION,
            NotificationKind.REOPENED,
        ):
            self.api.create(
                AlertRequest(
                    message=_short(notification.subject),
                    alias=alias,
                    description=notification.body,
                    responders=self.responders,
                    tags=["argus", str(notification.kind)],
                    details={"incident": notification.incident_id or "", **notification.links},
                    entity=notification.service,
                    priority=self.priorities.get(notification.severity, "P3"),
                )
            )
            detail = f"alert {alias}"
        elif notification.kind == NotificationKind.RESOLVED:
            try:
                self.api.act(alias, "close", note=notification.body)
            except PermanentError as exc:  # never opened here (e.g. below the paging threshold)
                if "does not exist" not in str(exc):
                    raise
            detail = f"closed {alias}"
        elif notification.kind == NotificationKind.ACKNOWLEDGED:
            self.api.act(alias, "acknowledge", note=notification.subject)
            detail = f"acknowledged {alias}"
        else:
            return Delivery(
                channel=self.name, key=notification.key, ok=True, detail=f"skipped: {notification.kind}"
            )
        delivery = Delivery(
            channel=self.name, key=notification.key, ok=True, detail=detail, at=datetime.now(UTC)
        )
        return remember_delivery(self.sent, delivery)
