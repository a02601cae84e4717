"""Solicitor: asks people for approval on their channels.

Every request carries per-person signed links (approve / reject) to the gateway's confirm
page, and the CLI command; richer channels (Teams bot card, Slack buttons) add in-place
buttons that end in the same workflow update.
"""

from __future__ import annotations

from temporalio import activity

from argus.integrations.signed_links import LinkSigner
from argus.models import Delivery, Notification, NotificationKind
from argus.models.agents import SolicitRequest

from .notifier import Notifier


class Solicitor:
    def __init__(
        self, notifier: Notifier, signer: LinkSigner, public_url: str, link_ttl_seconds: int
    ) -> None:
        self.notifier = notifier
        self.signer = signer
        self.public_url = public_url
        self.link_ttl = link_ttl_seconds

    def compose(self, req: SolicitRequest) -> Notification:
        p = req.proposal
        links: dict[str, str] = {}
        for person in req.recipients or ["anyone"]:
            for decision in ("approve", "reject"):
                token = self.signer.token(req.incident_id, decision, p.hash, person, self.link_ttl)
                links[f"{decision}:{person}"] = self.signer.url(self.public_url, token)
        steps = "\n".join(
            f"  {i}. {s.name}: {s.run.type} {s.run.action} {s.run.args}" for i, s in enumerate(p.steps, 1)
        )
        kind = NotificationKind.APPROVAL_REQUEST if req.reminder == 0 else NotificationKind.REMINDER
        prefix = "" if req.reminder == 0 else f"Reminder {req.reminder}: "
        if req.escalation_level:
            prefix = f"[escalated to {req.escalation_level}] " + prefix
        body = (
            f"{req.title}\nService: {req.service}  Severity: {req.severity}\n\n"
            f"Proposed remediation ({p.risk.value} risk): {p.summary}\n{steps}\n\n"
            f"Approve or reject from the links below, or with the CLI:\n"
            f"  argus approve {req.number or req.incident_id}\n  argus reject {req.number or req.incident_id}\n"
        )
        return Notification(
            key=req.key,
            kind=kind,
            incident_id=req.incident_id,
            subject=f"{prefix}Approval needed for {req.number or req.incident_id}: {p.summary}",
            body=body,
            severity=req.severity,
            service=req.service,
            recipients=req.recipients,
            channels=req.channels,
            links=links,
            actions=["approve", "reject"],
            proposal_hash=p.hash,
        )

    @activity.defn(name="solicit_approval")
    async def solicit(self, req: SolicitRequest) -> list[Delivery]:
        return await self.notifier.notify(self.compose(req))
