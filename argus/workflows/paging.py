"""People in the loop, as IncidentWorkflow runs it: notifications with per-channel retries,
and escalation on durable timers.

Notifications. One `deliver_notification` activity sends a message to every channel and never
fails because of one of them. A channel that failed in a way a retry may fix gets its own retry
loop here, on durable timers (the vendor's Retry-After, else exponential backoff), and every
attempt goes into the timeline; later messages to that channel queue behind it, so a PagerDuty
"resolve" never overtakes its "trigger". The other channels go on at once, and so does the
incident. Channels dedupe on the notification key: one message per incident step.

Escalation. While the incident is open and unacknowledged, the current level's targets are paged,
paged again every `wait` (level) or `reminder_interval` (policy), `repeat` (level) or
`reminders_per_level` (policy) times, then the next level whose time-of-day rule (`active`)
matches now takes over; after the last level its pages go on. An acknowledgement (or a decision)
stops escalation; an acknowledged incident that stays unresolved is re-notified every
`renotify_acknowledged_after`. While a proposal awaits approval, every page is the approval
request (buttons, signed links), so whoever is paged can decide.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from argus.activities.notifier import Notifier
    from argus.activities.solicitor import compose
    from argus.analysis.routing import in_time_interval
    from argus.models import IncidentState, IncidentStatus, Notification, NotificationKind
    from argus.models.agents import SolicitRequest
    from argus.models.config import EscalationLevel, Policy
    from argus.models.routing import TimeInterval
    from argus.models.tickets import NotifyResult

# The activity itself only fails if the worker or the activity broke: channel failures come back
# as results and are retried below, one channel at a time.
DELIVER = {
    "start_to_close_timeout": timedelta(seconds=90),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=["BadRecipients"],
    ),
}
MAX_CHANNEL_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=2)
LONGEST_RETRY = timedelta(minutes=5)


def retry_delay(attempt: int, retry_after: float | None) -> timedelta:
    """Wait before attempt `attempt + 1`: the vendor's hint if it gave one, else 2 s tripling up
    to 5 minutes (8 attempts span about 14 minutes: a vendor blip, not a long outage)."""
    if retry_after:
        return min(timedelta(seconds=retry_after), LONGEST_RETRY * 4)
    return min(FIRST_RETRY * (3 ** (attempt - 1)), LONGEST_RETRY)


def level_wait(policy: Policy, level: int) -> timedelta:
    lvl = _level(policy, level)
    return lvl.wait if lvl is not None and lvl.wait is not None else policy.escalation.reminder_interval


def level_repeat(policy: Policy, level: int) -> int:
    lvl = _level(policy, level)
    return lvl.repeat if lvl is not None and lvl.repeat is not None else policy.escalation.reminders_per_level


def level_active(lvl: EscalationLevel, now: datetime) -> bool:
    return not lvl.active or in_time_interval(TimeInterval(name=lvl.name, time_intervals=lvl.active), now)


def next_active_level(policy: Policy, after: int, now: datetime) -> int | None:
    """The first level past `after` whose time-of-day rule matches `now`, or None."""
    for i, lvl in enumerate(policy.escalation.levels):
        if i > after and level_active(lvl, now):
            return i
    return None


def _level(policy: Policy, level: int) -> EscalationLevel | None:
    levels = policy.escalation.levels
    return levels[min(level, len(levels) - 1)] if levels else None


class Paging:
    """Mixed into IncidentWorkflow; uses its `s`, `policy`, `wf_key`, `_log` and `_resolved`."""

    s: IncidentState | None
    policy: Policy
    wf_key: str

    def _log(self, kind: str, message: str, actor: str = "argus", data: dict | None = None) -> None:
        raise NotImplementedError

    def _resolved(self) -> bool:
        raise NotImplementedError

    def _init_paging(self) -> None:
        self._asked: list[str] = []  # everyone a page reached: they may decide
        self._channels_seen: list[str] = []
        self._backlog: dict[str, list[tuple[Notification, int, float | None]]] = {}
        self._retrying: set[str] = set()
        self._drains: dict[str, asyncio.Task] = {}
        self._page_now = False
        self._pages = 0
        self._approval_pages: dict[str, int] = {}  # per proposal hash
        self._level = 0
        self._last_page_at: datetime | None = None
        self._paging_task: asyncio.Task | None = None

    # --- notifications -------------------------------------------------------------------------
    def _targets(self, level: int) -> list[str]:
        lvl = _level(self.policy, level)
        return list(lvl.targets) if lvl else []

    def _free_channels(self, wanted: list[str]) -> list[str]:
        """The channels to send to now: `wanted` (all known if empty) minus those with a backlog."""
        if not self._backlog:
            return wanted
        names = wanted or self._channels_seen
        return [c for c in names if not self._backlog.get(c)]

    async def _notify(
        self,
        kind: NotificationKind,
        step: str,
        subject: str,
        body: str,
        recipients: list[str] | None = None,
        channels: list[str] | None = None,
    ) -> None:
        s = self.s
        assert s is not None
        if s.backfill and kind != NotificationKind.RESOLVED:
            self._log("notify_skipped", f"Backfilled incident: no {kind.value} notification")
            return
        n = Notification(
            key=f"{self.wf_key}/{step}",
            kind=kind,
            incident_id=s.incident_id,
            subject=subject,
            body=body,
            severity=s.severity.value,
            service=s.service,
            recipients=recipients or [],
            channels=channels or [],
            links={"incident": s.incident_id},
            workflow_id=workflow.info().workflow_id,
        )
        await self._send(n, kind.value)

    async def _send(self, n: Notification, what: str) -> bool:
        """First attempt on every free channel; failed channels go to their retry loops."""
        wanted = list(n.channels)
        queued = [c for c in (wanted or self._channels_seen) if self._backlog.get(c)]
        free = self._free_channels(wanted)
        if queued and not free:
            self._queue(n, queued, what)
            return False
        try:
            result: NotifyResult = await workflow.execute_activity_method(
                Notifier.deliver, n.model_copy(update={"channels": free}), **DELIVER
            )
        except ActivityError as exc:
            cause = exc.cause or exc
            self._log("notify_failed", f"{what} could not be sent: {cause}")
            return False
        for person in result.recipients:
            if person not in self._asked:
                self._asked.append(person)
        for d in result.deliveries:
            if d.channel not in self._channels_seen:
                self._channels_seen.append(d.channel)
        sent = [d.channel for d in result.deliveries if d.ok]
        who = f" to {', '.join(result.recipients)}" if result.recipients else ""
        if sent:
            self._log("notified", f"{what} sent{who} via {', '.join(sent)}", data={"key": n.key})
        if result.explanation:
            self._log("recipients", "; ".join(result.explanation)[:1000])
        # Retries go to the people this attempt reached (who is on call may change meanwhile).
        retry_n = n.model_copy(update={"recipients": result.recipients}) if result.recipients else n
        for d in result.deliveries:
            if d.ok:
                continue
            if d.retryable:
                self._log(
                    "notify_failed",
                    f"{what} on {d.channel} failed (attempt 1 of {MAX_CHANNEL_ATTEMPTS}): {d.detail};"
                    " will retry",
                    data={"channel": d.channel, "attempt": 1},
                )
                self._enqueue(
                    d.channel, retry_n.model_copy(update={"channels": [d.channel]}), 1, d.retry_after
                )
            else:
                self._log(
                    "notify_failed", f"{what} on {d.channel} refused: {d.detail}", data={"channel": d.channel}
                )
        if queued:
            self._queue(retry_n, queued, what)
        return bool(sent)

    def _queue(self, n: Notification, channels: list[str], what: str) -> None:
        for ch in channels:
            self._enqueue(ch, n.model_copy(update={"channels": [ch]}), 0, None)
        self._log("notify_queued", f"{what} queued behind earlier messages on {', '.join(channels)}")

    def _enqueue(self, channel: str, n: Notification, attempts: int, retry_after: float | None) -> None:
        self._backlog.setdefault(channel, []).append((n, attempts, retry_after))
        if channel not in self._retrying:
            self._retrying.add(channel)
            self._drains[channel] = asyncio.create_task(self._drain(channel))

    async def _drain(self, channel: str) -> None:
        """Deliver a channel's backlog in order, each message with its own attempt budget."""
        try:
            while self._backlog.get(channel):
                n, attempts, retry_after = self._backlog[channel][0]
                if attempts > 0:
                    await workflow.sleep(retry_delay(attempts, retry_after))
                attempt = attempts + 1
                try:
                    result = await workflow.execute_activity_method(Notifier.deliver, n, **DELIVER)
                    d = result.deliveries[0]
                except ActivityError as exc:
                    ok, retryable, detail, hint = False, True, str(exc.cause or exc), None
                else:
                    ok, retryable, detail, hint = d.ok, d.retryable, d.detail, d.retry_after
                what = f"{n.kind.value} on {channel}"
                if not ok and detail.startswith("rate limited"):
                    # Our own limit: wait for it without spending the attempt budget, quietly.
                    self._backlog[channel][0] = (n, max(attempts, 1), hint)
                    continue
                if ok:
                    self._log(
                        "notify_retry", f"{what} delivered at attempt {attempt}", data={"channel": channel}
                    )
                elif retryable and attempt < MAX_CHANNEL_ATTEMPTS:
                    self._backlog[channel][0] = (n, attempt, hint)
                    self._log(
                        "notify_retry",
                        f"{what} failed (attempt {attempt} of {MAX_CHANNEL_ATTEMPTS}): {detail}; "
                        f"next try in {retry_delay(attempt, hint)}",
                        data={"channel": channel, "attempt": attempt},
                    )
                    continue
                else:
                    why = "gave up" if retryable else "refused"
                    self._log(
                        "notify_failed",
                        f"{what} {why} after {attempt} attempt(s): {detail}",
                        data={"channel": channel},
                    )
                self._backlog[channel].pop(0)
        finally:
            self._backlog.pop(channel, None)
            self._retrying.discard(channel)

    # --- escalation ------------------------------------------------------------------------------
    def _start_paging(self) -> None:
        s = self.s
        if s.backfill:
            return
        first = next_active_level(self.policy, -1, workflow.now())
        self._level = first if first is not None else 0
        s.escalation_level = self._level
        self._last_page_at = workflow.now()
        self._paging_task = asyncio.create_task(self._page_loop())

    def _paging_over(self) -> bool:
        s = self.s
        return s.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED) or self._resolved()

    def _awaiting_decision(self) -> bool:
        s = self.s
        return s.status == IncidentStatus.AWAITING_APPROVAL and s.proposal is not None and s.decision is None

    async def _page_loop(self) -> None:
        s = self.s
        esc = self.policy.escalation
        pages_at_level = 0
        while not self._paging_over():
            acked = s.acknowledged_at is not None
            assert self._last_page_at is not None
            if acked:
                due = max(s.acknowledged_at, self._last_page_at) + esc.renotify_acknowledged_after
            else:
                due = self._last_page_at + level_wait(self.policy, self._level)
            try:
                await workflow.wait_condition(
                    lambda acked=acked: (
                        self._paging_over() or self._page_now or (s.acknowledged_at is not None) != acked
                    ),
                    timeout=max(due - workflow.now(), timedelta(seconds=1)),
                    timeout_summary="escalation timer",
                )
            except TimeoutError:
                pass
            else:
                if self._paging_over():
                    break
                if self._page_now:
                    self._page_now = False
                    await self._page(reason="request")
                elif not acked:  # just acknowledged: escalation stops, the people who page hear it
                    await self._notify(
                        NotificationKind.ACKNOWLEDGED,
                        "acknowledged",
                        f"{s.number}: acknowledged by {s.acknowledged_by}",
                        f"Escalation stopped. Re-notified after {esc.renotify_acknowledged_after} "
                        "if still unresolved.",
                    )
                continue
            if acked:
                await self._page(reason="renotify")
                continue
            pages_at_level += 1
            if pages_at_level > level_repeat(self.policy, self._level):
                nxt = next_active_level(self.policy, self._level, workflow.now())
                if nxt is not None:
                    pages_at_level_before = pages_at_level
                    before = esc.levels[self._level].name
                    self._level, pages_at_level = nxt, 0
                    s.escalation_level = nxt
                    lvl = esc.levels[nxt]
                    self._log(
                        "escalated",
                        f"No acknowledgement at {before} after {pages_at_level_before} page(s): "
                        f"escalated to {lvl.name} ({', '.join(lvl.targets)})",
                    )
                    await self._page(reason="escalation")
                    continue
            await self._page(reason="reminder")

    async def _page(self, reason: str) -> None:
        """One page at the current level: the approval request while one is pending, else a page."""
        s = self.s
        self._last_page_at = workflow.now()
        self._pages += 1
        lvl = _level(self.policy, self._level)
        targets = self._targets(self._level)
        channels = list(lvl.channels) if lvl else []
        if self._awaiting_decision():
            assert s is not None and s.proposal is not None
            asked = self._approval_pages.get(s.proposal.hash, 0)  # 0: the request, then reminders
            self._approval_pages[s.proposal.hash] = asked + 1
            await self._solicit(self._level, asked, targets, channels)
            return
        escalated = self._level > 0 and lvl is not None
        kind = NotificationKind.ESCALATION if reason == "escalation" else NotificationKind.REMINDER
        prefix = f"[escalated to {lvl.name}] " if escalated and lvl else ""
        if reason == "renotify":
            subject = f"{prefix}{s.number} still unresolved (acknowledged by {s.acknowledged_by})"
        else:
            subject = f"{prefix}{s.number} needs attention: {s.title}"
        body = (
            f"{s.title}\nService: {s.service}  Severity: {s.severity.value}  Status: {s.status.value}\n"
            f"Acknowledge with `argus ack {s.number}`."
        )
        await self._notify(kind, f"page/{self._pages}", subject, body, recipients=targets, channels=channels)

    async def _solicit(self, level: int, reminder: int, targets: list[str], channels: list[str]) -> None:
        s = self.s
        assert s is not None and s.proposal is not None
        lvl = _level(self.policy, level)
        recipients = list(dict.fromkeys(targets + self.policy.approval.approvers))
        req = SolicitRequest(
            key=f"{self.wf_key}/approval/{s.proposal.hash}/{reminder}",
            incident_id=s.incident_id,
            number=s.number,
            title=s.title,
            service=s.service,
            severity=s.severity.value,
            proposal=s.proposal,
            recipients=recipients,
            channels=channels,
            reminder=reminder,
            escalation_level=lvl.name if lvl and level > 0 else "",
        )
        what = "Approval request" if reminder == 0 else f"Approval reminder {reminder}"
        await self._send(compose(req, workflow.info().workflow_id), what)

    async def _finish_paging(self) -> None:
        """Stop escalating and let queued deliveries finish (each has a bounded attempt budget)."""
        if self._paging_task is not None:
            await self._paging_task
        await workflow.wait_condition(lambda: not self._retrying)
