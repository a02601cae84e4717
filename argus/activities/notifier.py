"""Notifier: one message per incident step on each channel, whatever the retries.

Before sending it resolves `group:` and `oncall:` recipients to people (on-call at send time),
and, for a notification that asks for a decision, adds each person's signed approve/reject
links (made here, at send time, so no link token ever enters workflow history).

Channels dedupe on the notification key, so a retry reaches only the channels still missing.
Each channel has a rate limit (token bucket, per worker process): over it, the channel's
delivery fails as retryable with the wait in `retry_after`, and the message goes later.

Two activities:
- `deliver_notification` never fails because of a channel: it returns every channel's outcome
  (with `retryable` / `retry_after`), so the incident workflow can put failures and retries in
  its timeline and keep escalating on the channels that work;
- `notify` (monitoring, docgen) fails with `ChannelFailed` while a channel could still succeed,
  so Temporal retries it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.base import Channel, IntegrationError, PermanentError
from argus.integrations.oncall import Directory, OnCallError
from argus.integrations.signed_links import LinkSigner
from argus.models import Delivery, Notification
from argus.models.people import GROUP_PREFIX, ONCALL_PREFIX
from argus.models.tickets import NotifyResult
from argus.models.vendors import RateLimit

DEFAULT_RATE_LIMITS = {  # what each vendor tolerates without throttling us (per minute, burst)
    "slack": RateLimit(per_minute=50, burst=5),  # chat.postMessage: ~1/s per channel
    "teams": RateLimit(per_minute=60, burst=7),  # Bot Connector: 7 per second per conversation
    "teams-webhook": RateLimit(per_minute=20, burst=4),
    "pagerduty": RateLimit(per_minute=120, burst=20),
    "opsgenie": RateLimit(per_minute=120, burst=20),
    "sms": RateLimit(per_minute=30, burst=5),
    "email": RateLimit(per_minute=120, burst=30),
    "email-graph": RateLimit(per_minute=30, burst=10),  # Exchange: 30 messages a minute per mailbox
}


class TokenBucket:
    """`take()` returns 0 when a message may go now, else the seconds until one may."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = limit.per_minute / 60.0
        self.capacity = float(limit.burst)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


class ApprovalLinks:
    """Per-person signed approve/reject links to the gateway's confirm page."""

    def __init__(self, signer: LinkSigner, public_url: str, ttl_seconds: int) -> None:
        self.signer = signer
        self.public_url = public_url
        self.ttl = ttl_seconds

    def add(self, n: Notification) -> Notification:
        wanted = [a for a in ("approve", "reject") if a in {x.lower() for x in n.actions}]
        if not wanted or not n.proposal_hash or not n.incident_id:
            return n
        links = dict(n.links)
        for person in n.recipients or ["anyone"]:
            for decision in wanted:
                token = self.signer.token(
                    n.workflow_id or n.incident_id, decision, n.proposal_hash, person, self.ttl
                )
                links[f"{decision}:{person}"] = self.signer.url(self.public_url, token)
        return n.model_copy(update={"links": links})


class Notifier:
    def __init__(
        self,
        channels: dict[str, Channel],
        *,
        directory: Directory | None = None,
        links: ApprovalLinks | None = None,
        rate_limits: dict[str, RateLimit] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = channels
        self.directory = directory or Directory()
        self.links = links
        limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self.buckets = {name: TokenBucket(limits[name], clock) for name in channels if name in limits}

    # ---- the steps ---------------------------------------------------------------------------

    def resolve(self, n: Notification) -> tuple[Notification, NotifyResult]:
        """Recipients as people: `oncall:` and `group:` targets resolved at this moment."""
        refs = [r for r in n.recipients if r.startswith((ONCALL_PREFIX, GROUP_PREFIX))]
        if not refs:
            return n, NotifyResult(recipients=list(n.recipients))
        try:
            resolution = self.directory.resolve(n.recipients, datetime.now(UTC))
        except OnCallError as exc:
            raise ApplicationError(str(exc), type="BadRecipients", non_retryable=True) from None
        people = resolution.people
        explanation = resolution.explanation
        return n.model_copy(update={"recipients": people}), NotifyResult(
            recipients=people, explanation=explanation
        )

    async def _send(self, name: str, n: Notification) -> Delivery:
        channel = self.channels.get(name)
        if channel is None:
            return Delivery(channel=name, key=n.key, ok=False, detail="channel not configured on this worker")
        bucket = self.buckets.get(name)
        wait = bucket.take() if bucket else 0.0
        if wait > 0:
            return Delivery(
                channel=name,
                key=n.key,
                ok=False,
                retryable=True,
                retry_after=round(wait, 3),
                detail=f"rate limited: next message allowed in {wait:.1f}s",
            )
        try:
            return await asyncio.to_thread(channel.send, n)
        except PermanentError as exc:
            return Delivery(channel=name, key=n.key, ok=False, detail=f"refused: {exc}")
        except IntegrationError as exc:
            return Delivery(
                channel=name,
                key=n.key,
                ok=False,
                retryable=True,
                retry_after=exc.retry_after,
                detail=str(exc),
            )
        except Exception as exc:  # a bug or an unexpected library error: worth another try
            return Delivery(
                channel=name, key=n.key, ok=False, retryable=True, detail=f"{type(exc).__name__}: {exc}"
            )

    async def _fan_out(self, n: Notification) -> NotifyResult:
        n, result = self.resolve(n)
        outgoing = self.links.add(n) if self.links else n
        names = n.channels or list(self.channels)
        result.deliveries = list(await asyncio.gather(*(self._send(c, outgoing) for c in names)))
        return result

    # ---- activities --------------------------------------------------------------------------

    @activity.defn(name="deliver_notification")
    async def deliver(self, n: Notification) -> NotifyResult:
        return await self._fan_out(n)

    @activity.defn(name="notify")
    async def notify(self, n: Notification) -> list[Delivery]:
        result = await self._fan_out(n)
        failed = [d for d in result.deliveries if not d.ok and d.retryable]
        if failed:
            waits = [d.retry_after for d in failed if d.retry_after]
            raise ApplicationError(
                "; ".join(f"{d.channel}: {d.detail}" for d in failed),
                type="ChannelFailed",
                next_retry_delay=timedelta(seconds=max(waits)) if waits else None,
            )
        return result.deliveries
