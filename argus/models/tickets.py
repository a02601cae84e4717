"""Tickets and notifications: what the Ticket Writer/Updater and the Notifier exchange."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .common import Model, UtcDateTime


class TicketRef(Model):
    system: str
    key: str
    url: str = ""
    state: str = "open"


class TicketRequest(Model):
    """Create-or-get a ticket. `key` is the idempotency key (one ticket per incident)."""

    key: str
    incident_id: str
    title: str
    description: str
    service: str
    severity: str
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)  # systems that have them (Jira)
    related: list[str] = Field(default_factory=list)  # ticket keys to link (Jira issue links)
    priority: str | None = None  # overrides the system's severity -> priority map


class TicketUpdate(Model):
    key: str
    ticket: TicketRef
    comment: str = ""
    state: str | None = None
    resolution: str | None = None


class NotificationKind(StrEnum):
    OPENED = "opened"
    APPROVAL_REQUEST = "approval_request"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"
    ESCALATION = "escalation"
    ACTION = "action"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    SILENCE = "silence"
    DOCUMENT = "document"
    INFO = "info"


class Notification(Model):
    """One message to people. `key` dedupes it: one message per incident step, whatever retries."""

    key: str
    kind: NotificationKind
    incident_id: str | None = None
    subject: str
    body: str
    severity: str = "warning"
    service: str | None = None
    recipients: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)
    actions: list[str] = Field(default_factory=list)
    proposal_hash: str | None = None
    workflow_id: str | None = None  # the workflow a decision answers (approval buttons)


class Delivery(Model):
    channel: str
    key: str
    ok: bool
    detail: str = ""
    at: UtcDateTime | None = None
    duplicate: bool = False
    retryable: bool = False  # a failure a later attempt may get past (timeout, 5xx, 429)
    retry_after: float | None = None  # seconds the vendor (or our rate limit) asked to wait


class NotifyResult(Model):
    """What one notification did: per-channel deliveries, and who it reached after resolving
    `group:` and `oncall:` targets (the workflow lets those people decide)."""

    deliveries: list[Delivery] = Field(default_factory=list)
    recipients: list[str] = Field(default_factory=list)
    explanation: list[str] = Field(default_factory=list)
    notification: Notification | None = None  # as composed (no links), for per-channel retries

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]
