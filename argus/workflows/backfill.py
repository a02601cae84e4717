"""BackfillWorkflow: runs ARGUS over a past time range.

    split the range into windows ─► evaluate the rules over each window's history
        (fanned out, at most `concurrency` at once) ─► route the alerts found, in time order,
        through a fresh router ─► one backfilled IncidentWorkflow per group episode

Incident ids come from the group and the episode start, and reuse is refused, so a rerun
creates nothing twice. Progress is a query; a crash resumes where the history left off.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from argus.activities.evaluator import Evaluator
    from argus.analysis.routing import Router, RouterState
    from argus.models import Alert, IncidentInput
    from argus.models.agents import BackfillInput, BackfillProgress, BackfillWindow

    from .common import RCA


def backfill_incident_id(group_key: str, first_start: str) -> str:
    return "incident-bf-" + hashlib.sha256(f"{group_key}\x00{first_start}".encode()).hexdigest()[:16]


@workflow.defn
class BackfillWorkflow:
    def __init__(self) -> None:
        self.progress = BackfillProgress(
            windows_total=0, windows_done=0, alerts_found=0, incidents_started=0, incidents_existing=0
        )

    @workflow.run
    async def run(self, inp: BackfillInput) -> BackfillProgress:
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
                    res = await workflow.execute_activity_method(Evaluator.evaluate_window, w, **RCA)
                    found[i] = res.alerts
                    if res.error:
                        self.progress.errors.append(f"window {w.start.isoformat()}: {res.error}")
                except ActivityError as exc:
                    self.progress.errors.append(f"window {w.start.isoformat()}: {exc.cause or exc}")
                self.progress.windows_done += 1

        await asyncio.gather(*(one(i, w) for i, w in enumerate(windows)))
        alerts = sorted((a for part in found for a in part), key=lambda a: (a.starts_at, a.fingerprint))
        self.progress.alerts_found = len(alerts)

        # Route in time order with the real router, as if the alerts were arriving live.
        router = Router(inp.policy.routing, RouterState(), scope="backfill")
        opened: list[tuple[str, dict, list[Alert]]] = []

        def flush(at) -> None:  # type: ignore[no-untyped-def]
            for action in router.due(at):
                if action.kind == "open":
                    opened.append((action.group_key, action.labels, action.alerts))
                    router.incident_closed(action.group_key, at)

        for a in alerts:
            at = a.starts_at if a.status == "firing" else (a.ends_at or a.starts_at)
            flush(at)
            router.ingest([a], at)
            router.sweep(at)
        flush(inp.end + timedelta(days=1))

        start_sem = asyncio.Semaphore(max(1, inp.concurrency) * 4)

        async def start(group_key: str, labels: dict, group_alerts: list[Alert]) -> None:
            first = min(x.starts_at for x in group_alerts).isoformat()
            wf_id = backfill_incident_id(group_key, first)
            async with start_sem:
                try:
                    await workflow.start_child_workflow(
                        "IncidentWorkflow",
                        IncidentInput(
                            incident_id=wf_id,
                            group_key=group_key,
                            group_labels=labels,
                            alerts=group_alerts,
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

        await asyncio.gather(*(start(*o) for o in opened))
        self.progress.done = True
        return self.progress

    @workflow.query
    def status(self) -> BackfillProgress:
        return self.progress
