"""Ticket Updater: comments, state changes and resolution, each applied once per update key."""

from __future__ import annotations

from temporalio import activity

from argus.integrations.base import TicketSystem
from argus.models import TicketRef, TicketUpdate

from .errors import call_integration


class TicketUpdater:
    def __init__(self, system: TicketSystem) -> None:
        self.system = system

    @activity.defn(name="update_ticket")
    async def update_ticket(self, update: TicketUpdate) -> TicketRef:
        return await call_integration("Ticket", self.system.update, update)
