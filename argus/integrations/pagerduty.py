"""PagerDuty through the Events API v2 (`POST /v2/enqueue`), with httpx.

PagerDuty dedupes on `dedup_key` itself: a trigger for an open alert with the same key adds to it
instead of opening a second incident, and acknowledge/resolve address it by that key. ARGUS uses
`argus:<incident id>` for notifications (so every step of one incident lands on one PagerDuty
incident) and `argus:<ticket key>` for tickets. The routing key is a secret that travels in the body:
bodies are never logged, and errors quote only PagerDuty's message.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import Field

from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, new_client, send
from argus.models import Delivery, Notification, NotificationKind, TicketRef, TicketRequest, TicketUpdate
from argus.models.common import Model

SEVERITIES = {"critical", "error", "warning", "info"}
_DEDUP_MAX = 255


class EventAction(StrEnum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class EventPayload(Model):
    summary: str = Field(max_length=1024)
    source: str
    severity: str
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] = Field(default_factory=dict)


class EventLink(Model):
    href: str
    text: str = ""


class Event(Model):
    routing_key: str
    event_action: EventAction
    dedup_key: str = Field(max_length=_DEDUP_MAX)
    payload: EventPayload | None = None
    links: list[EventLink] | None = None
    client: str | None = None
    client_url: str | None = None


# What each notification kind does to the PagerDuty incident; None: not sent (PagerDuty pages
# people, it is not a chat: approval prompts and documents go to other channels).
DEFAULT_ACTIONS: dict[NotificationKind, EventAction | None] = {
    NotificationKind.OPENED: EventAction.TRIGGER,
    NotificationKind.ESCALATION: EventAction.TRIGGER,
    NotificationKind.REOPENED: EventAction.TRIGGER,
    NotificationKind.RESOLVED: EventAction.RESOLVE,
    NotificationKind.ACKNOWLEDGED: EventAction.ACKNOWLEDGE,
}


def dedup_key(value: str) -> str:
    key = f"argus:{value}"
    return key if len(key) <= _DEDUP_MAX else "argus:sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    errors = body.get("errors") or []
    return "; ".join([str(body.get("message") or body.get("status") or ""), *map(str, errors)]).strip("; ")


class PagerDutyEvents:
    """Sends one event; no retries here."""

    def __init__(
        self,
        routing_key: str,
        *,
        base_url: str = "https://events.pagerduty.com",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        source: str = "argus",
        client_name: str = "ARGUS",
        client_url: str | None = None,
    ) -> None:
        if len(routing_key) != 32:
            raise ValueError("pagerduty: a routing (integration) key has 32 characters")
        self.routing_key = routing_key
        self.source = source
        self.client_name = client_name
        self.client_url = client_url
        self.http = new_client(base_url=base_url.rstrip("/"), timeout=timeout)

    def enqueue(self, event: Event) -> str:
        body = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        response = send(
            self.http,
            "POST",
            "/v2/enqueue",
            "pagerduty",
            f"{event.event_action} event",
            _error_message,
            json=body,
        )
        return str(response.json().get("dedup_key") or event.dedup_key)

    def event(
        self,
        action: EventAction,
        key: str,
        *,
        summary: str = "",
        severity: str = "warning",
        component: str | None = None,
        details: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> Event:
        payload = None
        if action == EventAction.TRIGGER:
            payload = EventPayload(
                summary=summary[:1024] or key,
                source=self.source,
                severity=severity if severity in SEVERITIES else "warning",
                timestamp=datetime.now(UTC).isoformat(),
                component=component,
                custom_details=details or {},
            )
        return Event(
            routing_key=self.routing_key,
            event_action=action,
            dedup_key=key,
            payload=payload,
            links=[EventLink(href=url, text=name) for name, url in (links or {}).items()]
            if payload and links
            else None,
            client=self.client_name if payload else None,
            client_url=self.client_url if payload else None,
        )


class PagerDutyChannel:
    """`Channel`: trigger / resolve the incident's PagerDuty alert per notification kind.

    Secret: `routing_key` (the service's Events API v2 integration key).
    """

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        *,
        base_url: str = "https://events.pagerduty.com",
        actions: dict[NotificationKind, EventAction | None] | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        source: str = "argus",
        client_url: str | None = None,
    ) -> None:
        self.events = PagerDutyEvents(
            routing_key, base_url=base_url, timeout=timeout, source=source, client_url=client_url
        )
        self.actions = DEFAULT_ACTIONS if actions is None else actions
        self.sent = sent or SentKeys()

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        action = self.actions.get(notification.kind)
        if action is None:
            return Delivery(
                channel=self.name, key=notification.key, ok=True, detail=f"skipped: {notification.kind}"
            )
        key = dedup_key(notification.incident_id or notification.key)
        event = self.events.event(
            action,
            key,
            summary=notification.subject,
            severity=notification.severity,
            component=notification.service,
            details={
                "body": notification.body,
                "incident": notification.incident_id,
                "kind": str(notification.kind),
            },
            links=notification.links,
        )
        returned = self.events.enqueue(event)
        delivery = Delivery(
            channel=self.name,
            key=notification.key,
            ok=True,
            detail=f"{action} {returned}",
            at=datetime.now(UTC),
        )
        return remember_delivery(self.sent, delivery)

    def acknowledge(self, incident_id: str) -> str:
        return self.events.enqueue(self.events.event(EventAction.ACKNOWLEDGE, dedup_key(incident_id)))


class PagerDutyTickets:
    """`TicketSystem` where a ticket is a triggered alert keyed by `dedup_key`.

    The Events API is write-only: `get` answers from the local record of what this worker sent,
    and comments are not supported (notes need the REST API and a user token): they are recorded
    locally and reported in the returned ref's state only.
    """

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        *,
        base_url: str = "https://events.pagerduty.com",
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        source: str = "argus",
        incident_url: str = "",
    ) -> None:
        self.events = PagerDutyEvents(routing_key, base_url=base_url, timeout=timeout, source=source)
        self.sent = sent or SentKeys()
        self.incident_url = incident_url

    def create(self, request: TicketRequest) -> TicketRef:
        known = self.get(request.key)
        if known is not None:
            return known
        key = dedup_key(request.key)
        # Even without the local record (a new worker) PagerDuty folds a repeated trigger into the
        # open alert with the same dedup_key, so this stays one incident.
        self.events.enqueue(
            self.events.event(
                EventAction.TRIGGER,
                key,
                summary=request.title,
                severity=request.severity,
                component=request.service,
                details={
                    "description": request.description,
                    "incident": request.incident_id,
                    "labels": request.labels,
                },
            )
        )
        ref = TicketRef(system=self.name, key=key, url=self.incident_url, state="triggered")
        self.sent.put("pagerduty:ticket", request.key, ref.model_dump(mode="json"))
        return ref

    def get(self, key: str) -> TicketRef | None:
        """By idempotency key or by dedup_key, from the local record (the Events API cannot read)."""
        value = self.sent.get("pagerduty:ticket", key)
        if value is None and key.startswith("argus:"):
            value = self.sent.get("pagerduty:ticket", key.removeprefix("argus:"))
        return None if value is None else TicketRef.model_validate(value)

    def update(self, update: TicketUpdate) -> TicketRef:
        done = self.sent.get("pagerduty:update", update.key)
        if done is not None:
            return TicketRef.model_validate(done)
        state = (update.state or "").strip().lower()
        if not state and update.resolution:
            state = "resolved"
        action = {
            "resolved": EventAction.RESOLVE,
            "resolve": EventAction.RESOLVE,
            "closed": EventAction.RESOLVE,
            "acknowledged": EventAction.ACKNOWLEDGE,
            "acknowledge": EventAction.ACKNOWLEDGE,
            "reopened": EventAction.TRIGGER,
            "reopen": EventAction.TRIGGER,
        }.get(state)
        ref = update.ticket
        if action is not None:
            summary = update.comment or f"Reopened by ARGUS: {update.ticket.key}"
            self.events.enqueue(self.events.event(action, update.ticket.key, summary=summary))
            new_state = {"resolve": "resolved", "acknowledge": "acknowledged", "trigger": "triggered"}[action]
            ref = ref.model_copy(update={"state": new_state})
            for request_key in self._request_keys(update.ticket.key):
                self.sent.put("pagerduty:ticket", request_key, ref.model_dump(mode="json"))
        self.sent.put("pagerduty:update", update.key, ref.model_dump(mode="json"))
        return ref

    def _request_keys(self, ticket_key: str) -> list[str]:
        # dedup_key is derived from the request key; the reverse needs only the prefix stripped.
        if ticket_key.startswith("argus:") and not ticket_key.startswith("argus:sha256:"):
            return [ticket_key.removeprefix("argus:")]
        return []
