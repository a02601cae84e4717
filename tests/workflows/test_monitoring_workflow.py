"""MonitoringWorkflow on the time-skipping server: group_wait, correlation into one incident,
silences that hold alerts and release them when they expire, with people told both times."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client

from argus.analysis.routing import incident_id_for
from argus.models import (
    Alert,
    AlertBatch,
    AlertStatus,
    IncidentState,
    Matcher,
    Route,
    Silence,
    SilenceRequest,
)
from argus.models.agents import MonitoringInput, MonitoringStatus
from argus.workflows.monitoring import MonitoringWorkflow

from .kit import World, alert, make_worker, policy

TOPOLOGY = [["checkout", "payments"], ["payments", "payments-db"]]


def monitoring_policy(**routing):
    return policy(
        routing={
            "route": {
                "receiver": "oncall",
                "group_by": ["alertname", "service"],
                "group_wait": "30s",
                "group_interval": "1m",
                "repeat_interval": "4h",
            },
            "correlation": {"topology": TOPOLOGY, "window": "10m"},
            **routing,
        },
        phases={"monitoring": True, "incident": True, "docgen": False},
    )


async def start(client: Client, tq: str, scope: str, batch: AlertBatch, pol) -> object:
    return await client.start_workflow(
        MonitoringWorkflow.run,
        MonitoringInput(scope=scope, policy=pol),
        id=f"monitoring-{scope}",
        task_queue=tq,
        start_signal="ingest",
        start_signal_args=[batch],
    )


async def eventually(check, tries: int = 200):  # type: ignore[no-untyped-def]
    for _ in range(tries):
        try:
            value = await check()
            if value:
                return value
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


def batch(*alerts: Alert) -> AlertBatch:
    return AlertBatch(batch_id=uuid.uuid4().hex, alerts=list(alerts))


async def test_related_alerts_from_two_sources_open_one_incident_after_group_wait(ts_env, tmp_path):
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        db = alert("DbConnectionsExhausted", service="payments-db", source="prometheus")
        handle = await start(ts_env.client, tq, scope, batch(db), monitoring_policy())
        logs = alert("LogErrorSpike", service="checkout", severity="error", source="elasticsearch")
        await handle.signal(MonitoringWorkflow.ingest, batch(logs))
        await handle.signal(MonitoringWorkflow.ingest, batch(logs))  # a resend changes nothing
        st = await eventually(lambda: _status(handle, lambda s: s.alerts_received == 3))
        assert st.groups == 1 and st.open_incidents == 0, "still inside group_wait"
        await ts_env.sleep(timedelta(seconds=31))
        st = await eventually(lambda: _status(handle, lambda s: s.open_incidents == 1))
        assert st.counts == {"new_group": 1, "correlated": 1, "duplicate": 1}
        decisions = await handle.query(MonitoringWorkflow.recent_decisions)
        [corr] = [d for d in decisions if d.kind == "correlated"]
        incident = ts_env.client.get_workflow_handle(incident_id_for(scope, corr.group_key))
        state = await eventually(lambda: incident.query("status", result_type=IncidentState))
        assert {a.name for a in state.alerts} == {"DbConnectionsExhausted", "LogErrorSpike"}
        routing = [e.message for e in state.timeline if e.kind == "routing"]
        assert any(
            "checkout depends on payments, payments depends on payments-db (2 hops" in m for m in routing
        )
        await handle.terminate()
        await incident.terminate()


async def test_silence_holds_alert_notifies_and_releases_it_when_it_expires(ts_env, tmp_path):
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy(resolve_timeout="2h"))
        silence = await handle.execute_update(
            MonitoringWorkflow.add_silence,
            SilenceRequest(
                matchers=[Matcher.parse('service="checkout"')],
                duration=timedelta(hours=1),
                created_by="alice",
                comment="deploying v42",
                request_id="r1",
            ),
        )
        assert isinstance(silence, Silence) and silence.ends_at - silence.starts_at == timedelta(hours=1)
        await handle.signal(MonitoringWorkflow.ingest, batch(alert("HighLatency", service="checkout")))
        st = await eventually(lambda: _status(handle, lambda s: s.counts.get("silenced") == 1))
        assert st.groups == 0 and st.silences == 1
        await ts_env.sleep(timedelta(hours=1, minutes=1))
        st = await eventually(lambda: _status(handle, lambda s: s.open_incidents == 1))
        assert st.counts.get("released") == 1
        decisions = await handle.query(MonitoringWorkflow.recent_decisions)
        [released] = [d for d in decisions if d.kind == "released"]
        assert "silenced no longer applies" in released.reason
        subjects = [r["subject"] for r in rt.channels["outbox"].records() if r["kind"] == "silence"]
        assert f"Silence {silence.id} created by alice" in subjects
        assert any(s.startswith(f"Silence {silence.id} expired") for s in subjects), subjects
        await handle.terminate()


async def test_a_planned_silence_holds_alerts_only_from_its_start(ts_env, tmp_path):
    """`argus silence add --starts`: a maintenance announced ahead. Before its start alerts route
    as usual; from its start they are silenced, until start + duration."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy(resolve_timeout="6h"))
        planned = await handle.execute_update(
            MonitoringWorkflow.add_silence,
            SilenceRequest(
                matchers=[Matcher.parse('service="payments"')],
                duration=timedelta(hours=2),
                starts_at=await ts_env.get_current_time() + timedelta(hours=1),
                created_by="alice",
                comment="db maintenance",
                request_id="planned",
            ),
        )
        assert planned.ends_at - planned.starts_at == timedelta(hours=2)
        await handle.signal(MonitoringWorkflow.ingest, batch(alert("HighLatency", service="payments")))
        st = await eventually(lambda: _status(handle, lambda s: s.alerts_received == 1))
        assert st.counts.get("silenced") is None and st.counts.get("new_group") == 1, "not started yet"
        await ts_env.sleep(timedelta(hours=1, minutes=1))
        await handle.signal(MonitoringWorkflow.ingest, batch(alert("Errors", service="payments")))
        await eventually(lambda: _status(handle, lambda s: s.counts.get("silenced") == 1))
        decisions = await handle.query(MonitoringWorkflow.recent_decisions)
        [held] = [d for d in decisions if d.kind == "silenced"]
        assert held.alertname == "Errors" and planned.id in held.reason
        bodies = [r["body"] for r in rt.channels["outbox"].records() if r["kind"] == "silence"]
        assert any(f"From: {planned.starts_at.isoformat()}" in b for b in bodies), bodies
        await handle.terminate()


async def _status(handle, ok) -> MonitoringStatus | None:  # type: ignore[no-untyped-def]
    s = await handle.query(MonitoringWorkflow.status)
    return s if ok(s) else None


async def test_wake_up_timers_follow_deadlines_near_and_far(ts_env, tmp_path):
    """The lasting wake-up timers (never cancelled) still wake the scope for each deadline in
    turn: a group whose only alert resolved inside group_wait (30 s), then another group's 2 h
    group_wait, which must open its incident."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, World(), tq)
    pol = monitoring_policy(resolve_timeout="12h", correlation={"topology": [], "window": "1m"})
    pol.routing.route.routes = [Route.model_validate({"matchers": ['alertname="Slow"'], "group_wait": "2h"})]
    fast = alert("Fast", service="checkout")
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(fast), pol)
        await eventually(lambda: _status(handle, lambda s: s.alerts_received == 1))
        gone = fast.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": fast.starts_at})
        await handle.signal(MonitoringWorkflow.ingest, batch(gone, alert("Slow", service="payments")))
        await eventually(lambda: _status(handle, lambda s: s.alerts_received == 3))
        await ts_env.sleep(timedelta(hours=2, minutes=1))
        decisions = await handle.query(MonitoringWorkflow.recent_decisions)
        [slow] = [d for d in decisions if d.alertname == "Slow" and d.kind == "new_group"]
        incident = ts_env.client.get_workflow_handle(incident_id_for(scope, slow.group_key))
        state = await eventually(lambda: incident.query("status", result_type=IncidentState))
        assert {a.name for a in state.alerts} == {"Slow"}
        await handle.terminate()
        await incident.terminate()


async def test_a_pull_that_fails_as_a_whole_keeps_what_fires_firing(ts_env, tmp_path):
    """The collect activity fails outright (every retry): nothing was measured, so the alerts the
    evaluator holds as firing are sent again, noted `source_down`, and the router does not resolve
    them after resolve_timeout (an outage is not a recovery)."""
    from datetime import UTC, datetime

    from temporalio import activity
    from temporalio.exceptions import ApplicationError
    from temporalio.worker import Worker

    from argus.activities.orchestration import Orchestration
    from argus.models.agents import EvaluatorState, FiringRecord
    from argus.workflows.monitoring import MonitoringState, pack_state

    @activity.defn(name="collect")
    async def collect(req) -> None:  # type: ignore[no-untyped-def]
        raise ApplicationError("prometheus prom unreachable: ConnectionRefusedError", non_retryable=True)

    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    pol = monitoring_policy(resolve_timeout="5m").model_copy(
        update={"sources": ["prom"], "poll_interval": timedelta(minutes=1)}
    )
    pol.routing.route.group_wait = timedelta(hours=1)  # no incident within the test
    held = FiringRecord(
        labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
        starts_at=datetime.now(UTC) - timedelta(hours=1),
        value=0.3,
    )
    carried = pack_state(MonitoringState(evaluator=EvaluatorState(firing={"HighErrorRate/x": held})))
    worker = Worker(
        ts_env.client,
        task_queue=tq,
        workflows=[MonitoringWorkflow],
        activities=[collect, Orchestration().next_chunk],
    )
    async with worker:
        handle = await ts_env.client.start_workflow(
            MonitoringWorkflow.run,
            MonitoringInput(scope=scope, policy=pol, carried=carried),
            id=f"monitoring-{scope}",
            task_queue=tq,
        )
        await eventually(lambda: _status(handle, lambda s: s.groups == 1))
        await ts_env.sleep(timedelta(minutes=12))
        st = await eventually(lambda: _status(handle, lambda s: s.alerts_received >= 10))
        assert st.groups == 1 and "resolved" not in st.counts, st.counts
        assert not next(h for h in st.health if h.source == "collector").ok
        decisions = await handle.query(MonitoringWorkflow.recent_decisions)
        assert not [d for d in decisions if d.kind == "resolved"]
        await handle.terminate()
