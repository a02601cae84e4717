"""Enricher: writes what ARGUS learned into the ticket — RCA summary with evidence,
runbook links and similar past incidents."""

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
    def __init__(self, tickets: TicketSystem, archive: IncidentArchive, docs: GitDocsRepo | None) -> None:
        self.tickets = tickets
        self.archive = archive
        self.docs = docs

    def _runbooks(self, services: set[str]) -> list[str]:
        if self.docs is None:
            return []
        out = []
        for rel, front, _ in self.docs.documents():
            if front.get("kind") in ("runbook", "sop") and front.get("service") in services:
                out.append(f"{front.get('title', rel)} ({rel})")
        return out

    def compose(self, req: EnrichRequest) -> str:
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
        books = self._runbooks(services)
        if books:
            lines.append("")
            lines.append("Runbooks:")
            lines.extend(f"  - {b}" for b in books)
        similar = [s for svc in sorted(services) for s in self.archive.similar(svc, limit=3)]
        if similar:
            lines.append("")
            lines.append("Similar past incidents:")
            lines.extend(f"  - {s.number} {s.title} (outcome: {s.outcome})" for s in similar[:5])
        return "\n".join(lines)

    @activity.defn(name="enrich_ticket")
    async def enrich(self, req: EnrichRequest) -> TicketRef:
        comment = await asyncio.to_thread(self.compose, req)
        return await call_integration(
            "Ticket", self.tickets.update, TicketUpdate(key=req.key, ticket=req.ticket, comment=comment)
        )
