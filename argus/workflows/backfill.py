"""BackfillWorkflow: runs ARGUS over a past time range.

    split the range into windows ─► evaluate the rules over each window's history (fanned out,
        at most `concurrency` at once) ─► join episodes that cross window edges ─► route the
        alerts, in time order, through a fresh router, as if they were arriving live ─►
        one backfilled IncidentWorkflow per group episode (nobody paged)
      or, with `docs_only`: RCA per episode ─► straight into the archive ─► a post-mortem per
        incident and one aggregate DocGen run (runbooks, SOPs, specs)

Incident ids come from the group and the episode's real start and reuse is refused, so a rerun
creates nothing twice (the archive record and DocGen children are keyed the same way). Progress
is the `status` query; the workflow is durable, so a crashed worker resumes where its history
left off: windows already evaluated are not evaluated again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from argus.activities.backfill_archiver import BackfillArchiver
    from argus.activities.evaluator import Evaluator
    from argus.activities.rca_agent import RcaAgent
    from argus.analysis.backfill_episodes import stitch
    from argus.analysis.routing import Router, RouterState
    from argus.models import Alert, AlertStatus, IncidentInput
    from argus.models.agents import (
        BackfillInput,
        BackfillProgress,
        BackfillRecord,
        BackfillWindow,
        DocGenInput,
        RcaRequest,
    )

    from .common import QUICK, RCA

# Windows heartbeat every step: a dead worker's window is retried elsewhere after 30 s, not 5 min.
WINDOW = {**RCA, "heartbeat_timeout": timedelta(seconds=30)}


def backfill_incident_id(group_key: str, first_start: str) -> str:
    return "incident-bf-" + hashlib.sha256(f"{group_key}\x00{first_start}".encode()).hexdigest()[:16]


class Episode:
    """One incident's worth of alerts found in history: opened by the router, updated until every
    alert in it resolved (as a live incident would be through its `add_alerts` signal)."""

    def __init__(self, group_key: str, labels: dict[str, str], alerts: list[Alert]) -> None:
        self.group_key = group_key
        self.labels = labels
        self.alerts: dict[str, Alert] = {}
        self.decisions: list = []
        self.merge(alerts)

    def merge(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self.alerts[a.fingerprint] = a

    @property
    def over(self) -> bool:
        return all(a.status == AlertStatus.RESOLVED for a in self.alerts.values())

    @property
    def start(self) -> datetime:
        return min(a.starts_at for a in self.alerts.values())


SETTLED_HOLDS = "backfill-flapping-counted-across-resolutions-and-held-groups-wait"
# Router.causal_correlation and Router.silence_at_open (see the monitoring workflow's patch)
CORRELATION_AND_SILENCES = "backfill-correlation-along-depends-on-and-silences-as-alertmanager"
# Router.live_sources (see the monitoring workflow's patch)
LIVE_SOURCES = "backfill-inhibition-sources-kept-live"
# Router.keep_muted_out (see the monitoring workflow's patch)
MUTED_KEPT_OUT = "backfill-muted-alerts-kept-out-of-the-incident"


def route(
    alerts: list[Alert],
    inp: BackfillInput,
    settled_holds: bool = True,
    newer_rules: bool = True,
    live_sources: bool = True,
    keeps_muted_out: Callable[[], bool] = lambda: True,
) -> list[Episode]:
    """The real router over the alerts in time order; returns every episode it opened.
    `settled_holds`, `newer_rules`, `live_sources`, `keeps_muted_out`: off for backfills begun
    before (they replay as they ran)."""
    router = Router(inp.policy.routing, RouterState(), scope="backfill")
    router.settled_holds = settled_holds
    router.causal_correlation = router.silence_at_open = newer_rules
    router.live_sources = live_sources
    router.keep_muted_out = keeps_muted_out
    current: dict[str, Episode] = {}
    episodes: list[Episode] = []

    def flush(at: datetime) -> None:
        for action in router.due(at):
            if action.kind == "open":
                ep = Episode(action.group_key, dict(action.labels), list(action.alerts))
                current[action.group_key] = ep
                episodes.append(ep)
            elif action.kind == "update" and action.group_key in current:
                current[action.group_key].merge(list(action.alerts))
        for key, ep in list(current.items()):
            if ep.over:
                router.incident_closed(key, at)
                del current[key]

    for a in alerts:
        at = a.starts_at if a.status == AlertStatus.FIRING else (a.ends_at or a.starts_at)
        flush(at)
        router.ingest([a], at)
        router.sweep(at)
    for at in (inp.end, inp.end + timedelta(days=1)):
        router.sweep(at)
        flush(at)
    return episodes


@workflow.defn
class BackfillWorkflow:
    def __init__(self) -> None:
        self.progress = BackfillProgress(
            windows_total=0, windows_done=0, alerts_found=0, incidents_started=0, incidents_existing=0
        )

    @workflow.run
    async def run(self, inp: BackfillInput) -> BackfillProgress:
        self.progress.docs_only = inp.docs_only
        windows = []
        t = inp.start
        while t < inp.end:
            end = min(t + timedelta(seconds=inp.window_seconds), inp.end)
            windows.append(BackfillWindow(start=t, end=end, source=inp.source, step_seconds=inp.step_seconds))
            t = end
        self.progress.windows_total = len(windows)

        sem = asyncio.Semaphore(max(1, inp.concurrency))
        found: list[list[Alert]] = [[] for _ in windows]

        async def one(i: int, w: BackfillWindow) -> None:
            async with sem:
                try:
                    res = await workflow.execute_activity_method(Evaluator.evaluate_window, w, **WINDOW)
                    found[i] = res.alerts
                    if res.error:
                        self.progress.errors.append(f"window {w.start.isoformat()}: {res.error}")
                except ActivityError as exc:
                    self.progress.errors.append(f"window {w.start.isoformat()}: {exc.cause or exc}")
                self.progress.windows_done += 1

        await asyncio.gather(*(one(i, w) for i, w in enumerate(windows)))
        self.progress.stage = "routing"
        joined = stitch([(w.start, found[i]) for i, w in enumerate(windows)])
        alerts = sorted(joined, key=lambda a: (a.ends_at or a.starts_at, a.fingerprint))
        self.progress.alerts_found = len({(a.fingerprint, a.starts_at) for a in alerts})
        ordered = sorted(alerts, key=lambda a: (self._at(a), a.fingerprint))
        episodes = route(
            ordered,
            inp,
            settled_holds=workflow.patched(SETTLED_HOLDS),
            newer_rules=workflow.patched(CORRELATION_AND_SILENCES),
            # asked only with inhibition rules (without, there are no sources to keep)
            live_sources=bool(inp.policy.routing.inhibit_rules) and workflow.patched(LIVE_SOURCES),
            keeps_muted_out=lambda: workflow.patched(MUTED_KEPT_OUT),  # asked only when it matters
        )
        self.progress.incidents_found = len(episodes)

        self.progress.stage = "incidents"
        start_sem = asyncio.Semaphore(max(1, inp.concurrency) * 4)
        if inp.docs_only:
            await asyncio.gather(*(self._record(ep, inp, sem) for ep in episodes))
            self.progress.stage = "documents"
            await self._start_docgen(
                DocGenInput(),
                f"docgen-{workflow.info().workflow_id}",
                reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        else:
            await asyncio.gather(*(self._start_incident(ep, inp, start_sem) for ep in episodes))
        self.progress.stage = "done"
        self.progress.done = True
        return self.progress

    @staticmethod
    def _at(a: Alert) -> datetime:
        return a.starts_at if a.status == AlertStatus.FIRING else (a.ends_at or a.starts_at)

    async def _start_incident(self, ep: Episode, inp: BackfillInput, sem: asyncio.Semaphore) -> None:
        wf_id = backfill_incident_id(ep.group_key, ep.start.isoformat())
        async with sem:
            try:
                await workflow.start_child_workflow(
                    "IncidentWorkflow",
                    IncidentInput(
                        incident_id=wf_id,
                        group_key=ep.group_key,
                        group_labels=ep.labels,
                        alerts=sorted(ep.alerts.values(), key=lambda a: a.starts_at),
                        scope="backfill",
                        backfill=True,
                        policy=inp.policy,
                    ),
                    id=wf_id,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                )
                self.progress.incidents_started += 1
            except WorkflowAlreadyStartedError:
                self.progress.incidents_existing += 1

    async def _record(self, ep: Episode, inp: BackfillInput, sem: asyncio.Semaphore) -> None:
        """Docs only: RCA over the episode's past window, then the archive, then its post-mortem."""
        wf_id = backfill_incident_id(ep.group_key, ep.start.isoformat())
        alerts = sorted(ep.alerts.values(), key=lambda a: a.starts_at)
        end = max(a.ends_at or a.starts_at for a in alerts)
        async with sem:
            rca = None
            try:
                rca = await workflow.execute_activity_method(
                    RcaAgent.analyze,
                    RcaRequest(
                        incident_id=wf_id,
                        service=alerts[0].service,
                        alerts=alerts,
                        window_start=ep.start - inp.policy.rca_lookback,
                        window_end=end + inp.policy.rca_lookback,
                        anomaly_start=ep.start,
                    ),
                    **RCA,
                )
            except ActivityError as exc:
                self.progress.errors.append(f"{wf_id}: RCA failed: {exc.cause or exc}")
            try:
                out = await workflow.execute_activity_method(
                    BackfillArchiver.record,
                    BackfillRecord(
                        incident_id=wf_id,
                        group_key=ep.group_key,
                        group_labels=ep.labels,
                        alerts=alerts,
                        rca=rca,
                    ),
                    **QUICK,
                )
            except ActivityError as exc:
                self.progress.errors.append(f"{wf_id}: not archived: {exc.cause or exc}")
                return
        if out.created:
            self.progress.archived += 1
        else:
            self.progress.incidents_existing += 1
        started = await self._start_docgen(
            DocGenInput(incident=out.state, history=False),
            f"docgen-{wf_id}",
            WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        self.progress.documents += started

    async def _start_docgen(self, inp: DocGenInput, wf_id: str, reuse: WorkflowIDReusePolicy) -> int:
        try:
            await workflow.start_child_workflow(
                "DocGenWorkflow",
                inp,
                id=wf_id,
                id_reuse_policy=reuse,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
            return 1
        except WorkflowAlreadyStartedError:
            return 0

    @workflow.query
    def status(self) -> BackfillProgress:
        return self.progress
