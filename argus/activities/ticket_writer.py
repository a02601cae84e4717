"""Ticket Writer: one ticket per incident, created or found again by its key."""

from __future__ import annotations

from temporalio import activity

from argus.integrations.base import TicketSystem
from argus.models import TicketRef, TicketRequest

from .errors import call_integration


class TicketWriter:
    def __init__(self, system: TicketSystem) -> None:
        self.system = system

    @activity.defn(name="create_ticket")
    async def create_ticket(self, req: TicketRequest) -> TicketRef:
        return await call_integration("Ticket", self.system.create, req)
