"""Enricher: writes what ARGUS learned into the ticket — RCA summary with evidence, runbook
links (the alerts' `runbook_url`s and the runbooks/SOPs in the docs repository) and similar past
incidents with their tickets; where the ticket system links issues (Jira), the past incidents'
tickets are linked to this one as related issues.

Applied once per key: a retried enrichment finds its comment already written (the ticket
systems record update keys) and its links already there (`ensure_links` adds only missing ones).
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.integrations.base import TicketSystem
from argus.integrations.git_docs import GitDocsRepo
from argus.models import TicketRef, TicketUpdate
from argus.models.agents import EnrichRequest

from .errors import call_integration


class Enricher:
    def __init__(
        self,
        tickets: TicketSystem,
        archive: IncidentArchive,
        docs: GitDocsRepo | None,
        docs_url: str | None = None,
    ) -> None:
        self.tickets = tickets
        self.archive = archive
        self.docs = docs
        self.docs_url = docs_url.rstrip("/") if docs_url else None

    def _runbooks(self, services: set[str]) -> list[str]:
        if self.docs is None:
            return []
        out = []
        for rel, front, _ in self.docs.documents():
            if front.get("kind") in ("runbook", "sop") and front.get("service") in services:
                where = f"{self.docs_url}/{rel}" if self.docs_url else f"docs repository: {rel}"
                out.append(f"{front.get('title', rel)}: {where}")
        return out

    def _similar(self, services: set[str], incident_id: str) -> list[tuple[str, list[TicketRef]]]:
        out: list[tuple[str, list[TicketRef]]] = []
        for svc in sorted(services):
            for summary in self.archive.similar(svc, limit=3):
                if summary.incident_id == incident_id:
                    continue
                state = self.archive.get(summary.number or summary.incident_id)
                line = f"{summary.number} {summary.title} (outcome: {summary.outcome})"
                tickets = state.tickets if state else []
                if tickets:
                    line += " — tickets: " + ", ".join(f"{t.system} {t.key}" for t in tickets)
                out.append((line, tickets))
        return out[:5]

    def compose(self, req: EnrichRequest) -> tuple[str, list[str]]:
        """The comment, and the keys of related tickets in this ticket system."""
        lines = [f"ARGUS analysis for {req.number or req.incident_id}"]
        services = {req.service}
        if req.rca and req.rca.hypotheses:
            lines.append("")
            lines.append("Likely root causes:")
            for i, h in enumerate(req.rca.hypotheses[:3], 1):
                services.add(h.service)
                lines.append(f"  {i}. {h.service} — confidence {h.confidence:.0%}: {h.summary}")
                for ev in h.evidence[:3]:
                    lines.append(f"       - {ev.summary}")
            if req.rca.discounted:
                lines.append("Discounted:")
                lines.extend(f"  - {d}" for d in req.rca.discounted[:3])
        else:
            lines.append("RCA found no clear root cause in the incident window.")
        books = list(dict.fromkeys([*req.runbook_urls, *self._runbooks(services)]))
        if books:
            lines.append("")
            lines.append("Runbooks:")
            lines.extend(f"  - {b}" for b in books)
        similar = self._similar(services, req.incident_id)
        related: list[str] = []
        if similar:
            lines.append("")
            lines.append("Similar past incidents:")
            for line, tickets in similar:
                lines.append(f"  - {line}")
                related += [
                    t.key for t in tickets if t.system == req.ticket.system and t.key != req.ticket.key
                ]
        return "\n".join(lines), list(dict.fromkeys(related))

    @activity.defn(name="enrich_ticket")
    async def enrich(self, req: EnrichRequest) -> TicketRef:
        comment, related = await asyncio.to_thread(self.compose, req)
        ref = await call_integration(
            "Ticket", self.tickets.update, TicketUpdate(key=req.key, ticket=req.ticket, comment=comment)
        )
        link = getattr(self.tickets, "ensure_links", None)
        if related and link is not None:
            await call_integration("Ticket", link, req.ticket.key, related)
        return ref
