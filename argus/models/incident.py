"""The incident: workflow input, the signals it accepts, and the state it exposes by query."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from .alert import Alert, Severity
from .common import Model, UtcDateTime
from .config import Policy
from .rca import RcaReport
from .remediation import ActionResult, ApprovalDecision, Proposal, Recommendation, RemediationOutcome
from .routing import RouteDecision
from .tickets import TicketRef


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    INVESTIGATING = "investigating"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TimelineEntry(Model):
    at: UtcDateTime
    kind: str
    message: str
    actor: str = "argus"
    data: dict[str, Any] = Field(default_factory=dict)


class IncidentInput(Model):
    """Start input of an IncidentWorkflow. The workflow id is derived from `group_key`."""

    incident_id: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    scope: str = "default"
    receiver: str = "default"
    backfill: bool = False
    decisions: list[RouteDecision] = Field(default_factory=list)
    decisions_dropped: int = 0  # earlier ones the router did not keep (too many at once)
    monitoring_workflow_id: str | None = None
    firing_count: int | None = None  # see AlertsSignal.firing_count
    policy: Policy = Field(default_factory=Policy)


class AlertsSignal(Model):
    alerts: list[Alert]
    decisions: list[RouteDecision] = Field(default_factory=list)
    decisions_dropped: int = 0  # see IncidentInput
    # How many alerts of the group still fire: a large group sends only a sample of its
    # alerts, so the incident learns "all resolved" from this count, not from the sample.
    firing_count: int | None = None


class Acknowledge(Model):
    by: str
    comment: str = ""
    via: str = "cli"


class CommentSignal(Model):
    by: str
    text: str
    via: str = "cli"


class ResolveSignal(Model):
    by: str
    reason: str = ""
    via: str = "cli"


class TicketStateSignal(Model):
    """A ticket resolved or reopened in the ticket system (two-way sync)."""

    system: str
    key: str
    state: str
    by: str = ""


class IncidentState(Model):
    """What the `status` query returns and what the archive stores when the incident closes."""

    incident_id: str
    number: str = ""
    title: str
    service: str
    severity: Severity
    environment: str = "production"
    group_key: str
    status: IncidentStatus = IncidentStatus.TRIGGERED
    opened_at: UtcDateTime
    acknowledged_at: UtcDateTime | None = None
    acknowledged_by: str | None = None
    resolved_at: UtcDateTime | None = None
    closed_at: UtcDateTime | None = None
    alerts: list[Alert] = Field(default_factory=list)
    tickets: list[TicketRef] = Field(default_factory=list)
    rca: RcaReport | None = None
    recommendations: list[Recommendation] = Field(default_factory=list)
    proposal: Proposal | None = None
    decision: ApprovalDecision | None = None
    actions: list[ActionResult] = Field(default_factory=list)
    outcome: RemediationOutcome = RemediationOutcome.NONE
    backfill: bool = False
    escalation_level: int = 0
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @property
    def firing_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]


class IncidentSummary(Model):
    """One row of `argus incidents list` (from visibility or the archive)."""

    incident_id: str
    number: str = ""
    title: str = ""
    service: str = ""
    severity: str = ""
    status: str = ""
    opened_at: UtcDateTime | None = None
    closed_at: UtcDateTime | None = None
    outcome: str = ""
    source: str = "temporal"
