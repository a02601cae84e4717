"""Solicitor: asks people for approval on their channels.

Every request carries per-person signed links (approve / reject) to the gateway's confirm page
(added by the Notifier at send time) and the CLI command; richer channels (Teams bot card,
Slack buttons) add in-place buttons. Every path ends in the same `decide` workflow update.
Recipients may be people, `group:<name>` or `oncall:<schedule>`: who is on call is resolved
when the request goes out, and the result names the people reached (they may decide).
"""

from __future__ import annotations

from temporalio import activity

from argus.models import Notification, NotificationKind
from argus.models.agents import SolicitRequest
from argus.models.tickets import NotifyResult

from .notifier import Notifier


def compose(req: SolicitRequest, workflow_id: str | None = None) -> Notification:
    p = req.proposal
    steps = "\n".join(
        f"  {i}. {s.name}: {s.run.type} {s.run.action} {s.run.args}" for i, s in enumerate(p.steps, 1)
    )
    kind = NotificationKind.APPROVAL_REQUEST if req.reminder == 0 else NotificationKind.REMINDER
    prefix = "" if req.reminder == 0 else f"Reminder {req.reminder}: "
    if req.escalation_level:
        prefix = f"[escalated to {req.escalation_level}] " + prefix
    ref = req.number or req.incident_id
    body = (
        f"{req.title}\nService: {req.service}  Severity: {req.severity}\n\n"
        f"Proposed remediation ({p.risk.value} risk): {p.summary}\n{steps}\n\n"
        f"Approve or reject with the buttons or links, or with the CLI:\n"
        f"  argus approve {ref}\n  argus reject {ref}\n"
    )
    return Notification(
        key=req.key,
        kind=kind,
        incident_id=req.incident_id,
        subject=f"{prefix}Approval needed for {ref}: {p.summary}",
        body=body,
        severity=req.severity,
        service=req.service,
        recipients=req.recipients,
        channels=req.channels,
        links={"incident": req.incident_id},
        actions=["approve", "reject"],
        proposal_hash=p.hash,
        workflow_id=workflow_id or req.incident_id,
    )


class Solicitor:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name="solicit_approval")
    async def solicit(self, req: SolicitRequest) -> NotifyResult:
        workflow_id = activity.info().workflow_id if activity.in_activity() else None
        n = compose(req, workflow_id)
        result = await self.notifier.deliver(n)
        result.notification = n.model_copy(update={"recipients": result.recipients})
        return result
