"""Notifier: sends one message per incident step to every configured channel.

Channels dedupe on the notification key, so a retry re-sends only to the channels that
failed. If some channel still fails, the activity fails (and is retried); the workflow
records the failure and goes on, since one dead channel must never stall an incident.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.base import Channel, IntegrationError, PermanentError
from argus.models import Delivery, Notification


class Notifier:
    def __init__(self, channels: dict[str, Channel]) -> None:
        self.channels = channels

    async def _send(self, channel: Channel, n: Notification) -> Delivery:
        try:
            return await asyncio.to_thread(channel.send, n)
        except PermanentError as exc:
            return Delivery(channel=channel.name, key=n.key, ok=False, detail=f"refused: {exc}")
        except IntegrationError as exc:
            return Delivery(channel=channel.name, key=n.key, ok=False, detail=str(exc))
        except Exception as exc:
            return Delivery(channel=channel.name, key=n.key, ok=False, detail=f"{type(exc).__name__}: {exc}")

    @activity.defn(name="notify")
    async def notify(self, n: Notification) -> list[Delivery]:
        names = n.channels or list(self.channels)
        unknown = [c for c in names if c not in self.channels]
        targets = [self.channels[c] for c in names if c in self.channels]
        deliveries = list(await asyncio.gather(*(self._send(c, n) for c in targets)))
        deliveries += [
            Delivery(channel=c, key=n.key, ok=False, detail="channel not configured") for c in unknown
        ]
        failed = [d for d in deliveries if not d.ok and not d.detail.startswith(("refused", "channel not"))]
        if failed:
            raise ApplicationError(
                "; ".join(f"{d.channel}: {d.detail}" for d in failed), type="ChannelFailed"
            )
        return deliveries
