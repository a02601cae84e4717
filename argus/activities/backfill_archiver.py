"""Backfill archiver: records an incident found in history straight into the archive, for
`argus backfill --docs-only` (no incident workflow, no tickets, no notifications, no actions).

The record is keyed by the incident id (derived from the group and the episode's real start)
and the run "backfill", so a rerun finds it instead of adding a second one.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.models import (
    AlertStatus,
    IncidentState,
    IncidentStatus,
    RemediationOutcome,
    TimelineEntry,
)
from argus.models.agents import BackfillRecord, BackfillRecorded

RUN_ID = "backfill"


def state_from_history(rec: BackfillRecord) -> IncidentState:
    alerts = sorted(rec.alerts, key=lambda a: a.starts_at)
    firing = [a for a in alerts if a.status == AlertStatus.FIRING] or alerts
    top = min(firing, key=lambda a: a.severity.rank)
    start = alerts[0].starts_at
    ended = all(a.status == AlertStatus.RESOLVED for a in alerts)
    end = max((a.ends_at or a.starts_at) for a in alerts) if ended else None
    names = sorted({a.name for a in alerts})
    timeline = [
        TimelineEntry(
            at=a.starts_at, kind="alert_fired", message=f"{a.name} fired on {a.service}: {a.summary}"
        )
        for a in alerts
    ] + [
        TimelineEntry(at=a.ends_at, kind="alert_resolved", message=f"{a.name} on {a.service} resolved")
        for a in alerts
        if a.ends_at and a.status == AlertStatus.RESOLVED
    ]
    if rec.rca and rec.rca.top:
        h = rec.rca.top
        timeline.append(
            TimelineEntry(
                at=start,
                kind="rca",
                actor="rca-agent",
                message=f"Root cause (found afterwards): {h.service} ({h.confidence:.0%}): {h.summary}",
            )
        )
    timeline.sort(key=lambda e: e.at)
    return IncidentState(
        incident_id=rec.incident_id,
        title=f"{', '.join(names[:2])}{' +' if len(names) > 2 else ''} on {top.service}",
        service=top.service,
        severity=top.severity,
        environment=top.environment,
        group_key=rec.group_key,
        status=IncidentStatus.CLOSED if ended else IncidentStatus.INVESTIGATING,
        opened_at=start,
        resolved_at=end,
        closed_at=end,
        alerts=alerts,
        rca=rec.rca,
        outcome=RemediationOutcome.FIXED_BY_OTHER if ended else RemediationOutcome.NONE,
        backfill=True,
        timeline=timeline,
    )


class BackfillArchiver:
    def __init__(self, archive: IncidentArchive) -> None:
        self.archive = archive

    def record_sync(self, rec: BackfillRecord) -> BackfillRecorded:
        existing = self.archive.get(rec.incident_id)
        if existing is not None:
            return BackfillRecorded(state=existing, created=False)
        state = state_from_history(rec)
        state.number = self.archive.open(state, RUN_ID)
        self.archive.save(state, RUN_ID)
        return BackfillRecorded(state=state, created=True)

    @activity.defn(name="archive_backfilled")
    async def record(self, rec: BackfillRecord) -> BackfillRecorded:
        return await asyncio.to_thread(self.record_sync, rec)
