"""Incident Creator: records a new incident in the archive and gives it its number."""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.models.agents import OpenRecord


class IncidentCreator:
    def __init__(self, archive: IncidentArchive) -> None:
        self.archive = archive

    @activity.defn(name="open_incident")
    async def open_incident(self, req: OpenRecord) -> str:
        return await asyncio.to_thread(self.archive.open, req.state, req.run_id)
