"""Heartbeat alerts into the normal Monitoring path.

A missed or failed check-in becomes an ordinary `Alert` in an `AlertBatch` signalled into the
scope's MonitoringWorkflow with signal-with-start, exactly as the gateway does for pushed
alerts, so routing, silences, grouping and incidents treat it like any other alert. The batch
id comes from the workflow (check, episode, what): a retry of this activity sends the same id
and Monitoring applies it once.
"""

from __future__ import annotations

from temporalio import activity

from argus.models import Alert, AlertBatch, Policy
from argus.models.agents import MonitoringInput
from argus.models.heartbeats import HeartbeatAlertRequest


def heartbeat_alert(req: HeartbeatAlertRequest) -> Alert:
    """The same labels for the firing and the resolving alert of an episode, so one resolves
    the other; the cause (missed or failed) names it."""
    c = req.check
    labels = {
        **c.labels,
        "alertname": "HeartbeatMissed" if req.cause == "missed" else "HeartbeatFailed",
        "service": c.alert_service,
        "severity": c.severity,
        "heartbeat": c.name,
    }
    return Alert(
        labels=labels,
        annotations={
            "summary": f"heartbeat {c.name}: {req.reason}",
            "description": c.description or f"job or daemon checking in as {c.name!r}",
        },
        status="firing" if req.firing else "resolved",
        starts_at=req.since,
        ends_at=req.until,
        source="heartbeat",
    )


class HeartbeatAlerts:
    def __init__(
        self, policy: Policy, task_queue: str, monitoring_task_queue: str, payload_store: bool = False
    ) -> None:
        self.policy = policy
        self.task_queue = task_queue  # where incidents run
        self.monitoring_task_queue = monitoring_task_queue
        self.payload_store = payload_store

    @activity.defn(name="push_heartbeat_alert")
    async def push(self, req: HeartbeatAlertRequest) -> str:
        alert = heartbeat_alert(req)
        batch = AlertBatch(batch_id=req.batch_id, alerts=[alert], received_at=alert.starts_at)
        await activity.client().start_workflow(
            "MonitoringWorkflow",
            MonitoringInput(
                scope=req.scope,
                policy=self.policy,
                incident_task_queue=self.task_queue,
                payload_store=self.payload_store,
            ),
            id=f"monitoring-{req.scope}",
            task_queue=self.monitoring_task_queue,
            start_signal="ingest",
            start_signal_args=[batch],
        )
        return alert.fingerprint
