"""HeartbeatWorkflow: one per heartbeat check (a dead-man switch for a job or daemon).

    check-ins (signals from the gateway) ─► the durable timer restarts at each good one
    timer fires (no check-in by next expected + grace) ─┐
    a failed check-in (`status=fail`) ──────────────────┴─► DOWN: one alert into Monitoring
    a good check-in while DOWN ─► UP: the alert is resolved

The timer is Temporal's, so a restart of ARGUS (worker, gateway or server) neither loses a
deadline nor fires one twice; the alert batches have deterministic ids (check, episode, what),
so a retried activity is applied by Monitoring once. It continues-as-new when Temporal
suggests it, carrying its state.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from argus.activities.heartbeat_alerts import HeartbeatAlerts
    from argus.analysis.heartbeat_schedule import deadline, describe
    from argus.models.heartbeats import (
        CheckState,
        HeartbeatAlertRequest,
        HeartbeatCheck,
        HeartbeatInput,
        HeartbeatPing,
        HeartbeatState,
        HeartbeatStatus,
        PingStatus,
    )

    from .common import EFFECT

RECENT_PINGS = 200
MAX_EVENTS = 4000  # a run that has seen this many events continues as new, suggested or not


def heartbeat_workflow_id(name: str) -> str:
    return f"heartbeat-{name}"


@workflow.defn
class HeartbeatWorkflow:
    # Set up from the input before any handler runs: `argus up` re-sends each configured check
    # with signal-with-start, and that signal can be the first thing a new run handles.
    @workflow.init
    def __init__(self, inp: HeartbeatInput) -> None:
        self._pings: list[HeartbeatPing] = []
        self._new_check: HeartbeatCheck | None = None
        self.check = inp.check
        self.scope = inp.scope
        self.refresh = inp.refresh
        self.st = inp.carried or HeartbeatState(created_at=workflow.now())
        self._seen = set(self.st.recent_pings)

    @workflow.run
    async def run(self, inp: HeartbeatInput) -> None:
        while True:
            due = self._deadline()
            if self.st.state == CheckState.DOWN:
                # Keep the alert firing: Monitoring resolves alerts that are never refreshed.
                due = (self.st.alert_sent_at or workflow.now()) + self.refresh
            timeout = max(due - workflow.now(), timedelta(milliseconds=1))
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pings or self._new_check) or self._should_continue(),
                    timeout=timeout,
                    timeout_summary=f"next check-in of {self.check.name}",
                )
            except TimeoutError:
                if self.st.state == CheckState.DOWN:
                    await self._alert(firing=True, reason=self.st.down_reason, refresh=True)
                else:
                    await self._go_down("missed", f"no check-in by {due.isoformat()} ({self._schedule()})")

            if self._new_check is not None:
                self.check, self._new_check = self._new_check, None
            pings, self._pings = self._pings, []
            for ping in pings:
                await self._apply(ping)

            if self._should_continue():
                await workflow.wait_condition(workflow.all_handlers_finished)
                for ping in self._pings:  # nothing accepted may be left behind
                    await self._apply(ping)
                self.st.runs += 1
                workflow.continue_as_new(
                    HeartbeatInput(check=self.check, scope=self.scope, refresh=self.refresh, carried=self.st)
                )

    # --- state changes ---------------------------------------------------------------------------
    async def _apply(self, ping: HeartbeatPing) -> None:
        if ping.ping_id:
            if ping.ping_id in self._seen:
                return  # the same check-in delivered twice
            self._seen.add(ping.ping_id)
            self.st.recent_pings.append(ping.ping_id)
            if len(self.st.recent_pings) > RECENT_PINGS:
                self._seen.discard(self.st.recent_pings.pop(0))
        self.st.pings += 1
        if ping.status == PingStatus.START:
            return  # informational: the job began; the deadline is about its end
        self.st.last_ping = workflow.now()
        self.st.last_status = ping.status
        self.st.last_message = ping.message
        if ping.status == PingStatus.FAIL:
            code = f" (exit code {ping.exit_code})" if ping.exit_code is not None else ""
            reason = f"check-in reported failure{code}" + (f": {ping.message}" if ping.message else "")
            if self.st.state != CheckState.DOWN:
                await self._go_down("failed", reason)
            return
        if self.st.state == CheckState.DOWN:
            await self._alert(firing=False, reason=f"check-in received after: {self.st.down_reason}")
            self.st.down_since = None
            self.st.down_reason = ""
            self.st.down_cause = ""
            self.st.alert_sent_at = None
        self.st.state = CheckState.UP

    async def _go_down(self, cause: str, reason: str) -> None:
        self.st.state = CheckState.DOWN
        self.st.episode += 1
        self.st.down_cause = cause
        self.st.down_since = workflow.now()
        self.st.down_reason = reason
        await self._alert(firing=True, reason=reason)

    async def _alert(self, firing: bool, reason: str, refresh: bool = False) -> None:
        now = workflow.now()
        what = "down" if firing else "up"
        if refresh:
            what = f"refresh-{int(now.timestamp())}"
        req = HeartbeatAlertRequest(
            check=self.check,
            scope=self.scope,
            batch_id=f"heartbeat/{self.check.name}/{self.st.episode}/{what}",
            firing=firing,
            cause=self.st.down_cause or "missed",
            reason=reason,
            since=self.st.down_since or now,
            until=now + 2 * self.refresh if firing else now,
        )
        try:
            await workflow.execute_activity_method(HeartbeatAlerts.push, req, **EFFECT)
        except ActivityError as exc:
            # Monitoring unreachable for minutes: keep the state; the refresh timer re-sends.
            workflow.logger.error("heartbeat %s: alert not delivered: %s", self.check.name, exc.cause or exc)
        if firing:
            self.st.alert_sent_at = now

    # --- helpers ---------------------------------------------------------------------------------
    def _deadline(self):  # type: ignore[no-untyped-def]
        since = self.st.last_ping or self.st.created_at or workflow.now()
        c = self.check
        return deadline(c.interval, c.cron, c.timezone, c.grace, since)

    def _schedule(self) -> str:
        c = self.check
        return describe(c.interval, c.cron, c.timezone) + f", grace {c.grace}"

    def _should_continue(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS

    # --- messages --------------------------------------------------------------------------------
    @workflow.signal
    def checkin(self, ping: HeartbeatPing) -> None:
        self._pings.append(ping)

    @workflow.signal
    def reconfigure(self, check: HeartbeatCheck) -> None:
        if check.name == self.check.name and check != self.check:
            self._new_check = check

    @workflow.query
    def status(self) -> HeartbeatStatus:
        return HeartbeatStatus(
            name=self.check.name,
            state=self.st.state,
            schedule=self._schedule(),
            grace=self.check.grace,
            last_ping=self.st.last_ping,
            last_status=self.st.last_status,
            last_message=self.st.last_message,
            next_deadline=None if self.st.state == CheckState.DOWN else self._deadline(),
            down_since=self.st.down_since,
            down_reason=self.st.down_reason,
            episode=self.st.episode,
            pings=self.st.pings,
        )
