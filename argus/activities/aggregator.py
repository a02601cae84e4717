"""Aggregator: learns from the archive — clusters of similar incidents, recurring themes,
hotspots, MTTD/MTTA/MTTR per service, and how often each playbook fixed what it was run for.

The learning itself is `argus.analysis.incident_clusters` (pure); this agent reads the archive.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.analysis.incident_clusters import aggregate
from argus.integrations.archive import IncidentArchive
from argus.models import IncidentState
from argus.models.agents import Insights

__all__ = ["Aggregator", "aggregate"]


class Aggregator:
    def __init__(self, archive: IncidentArchive) -> None:
        self.archive = archive

    def insights(self, focus: IncidentState | None = None) -> Insights:
        return aggregate(self.archive.all_states(True), focus)

    @activity.defn(name="aggregate_incidents")
    async def aggregate(self, focus: IncidentState | None) -> Insights:
        return await asyncio.to_thread(self.insights, focus)
