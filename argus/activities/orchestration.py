"""Support for the orchestrator: make sure the long-running workflows and schedules exist.

These talk to Temporal itself (through the activity's client), which workflows may not do.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy

from argus.models.agents import (
    DocGenInput,
    EnsureMonitoring,
    EnsureSchedule,
    MonitoringInput,
    PayloadStoreSetting,
)


def monitoring_id(scope: str) -> str:
    return f"monitoring-{scope}"


class Orchestration:
    def __init__(self, monitoring_task_queue: str | None = None, payload_store: bool = False) -> None:
        self.monitoring_task_queue = monitoring_task_queue  # None: this worker's own queue
        self.payload_store = payload_store  # whether the scopes it starts may hand over large states

    @activity.defn(name="monitoring_next_chunk")
    async def next_chunk(self) -> None:
        """Does nothing. MonitoringWorkflow awaits it between chunks of a backlog, so that each
        chunk runs in a workflow task of its own (the SDK's 2 s deadlock limit is per activation;
        a timer would cost about a second per chunk on the dev server, this about 18 ms)."""

    @activity.defn(name="ensure_monitoring")
    async def ensure_monitoring(self, req: EnsureMonitoring) -> str:
        """Start the scope's MonitoringWorkflow if it is not running; send it the current policy."""
        client = activity.client()
        handle = await client.start_workflow(
            "MonitoringWorkflow",
            MonitoringInput(
                scope=req.scope,
                policy=req.policy,
                incident_task_queue=activity.info().task_queue,
                payload_store=self.payload_store,
            ),
            id=monitoring_id(req.scope),
            task_queue=self.monitoring_task_queue or activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await handle.signal("reload", req.policy)
        # A scope started before the deployment changed its payload store follows it now.
        await handle.signal("set_payload_store", PayloadStoreSetting(enabled=self.payload_store))
        return handle.id

    @activity.defn(name="ensure_schedule")
    async def ensure_schedule(self, req: EnsureSchedule) -> str:
        """Create or update the scheduled DocGen run (aggregate, write runbooks and specs)."""
        client = activity.client()
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                "DocGenWorkflow",
                DocGenInput(),
                id=f"{req.schedule_id}-run",
                task_queue=activity.info().task_queue,
            ),
            spec=ScheduleSpec(cron_expressions=[req.cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=6)),
            state=ScheduleState(paused=not req.enabled),
        )
        try:
            await client.create_schedule(req.schedule_id, schedule)
            return "created"
        except ScheduleAlreadyRunningError:

            def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(req.schedule_id).update(update)
            return "updated"
