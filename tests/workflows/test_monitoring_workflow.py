"""MonitoringWorkflow on the time-skipping server: group_wait, correlation into one incident,
silences that hold alerts and release them when they expire, with people told both times."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from argus.analysis.routing import incident_id_for
from argus.models import (
    Alert,
    AlertBatch,
    AlertStatus,
    IncidentState,
    Matcher,
    Route,
    Silence,
    SilenceExpire,
    SilenceRequest,
    SilenceUpdate,
)
from argus.models.agents import MonitoringInput, MonitoringStatus
from argus.workflows.monitoring import MonitoringWorkflow

from .kit import World, alert, make_worker, policy
from .test_replay import patch_ids

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


async def test_an_alert_silenced_during_group_wait_joins_the_incident_only_when_its_silence_ends(
    ts_env, tmp_path
):
    """Alertmanager leaves an alert silenced at notification time out of the notification: the
    incident opens with the other alert, and hears of this one when its silence ends. The run's
    history carries the patch, and replays."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, World(), tq)
    route = {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "1m"}
    async with worker:
        pol = monitoring_policy(route=route, resolve_timeout="6h")
        handle = await start(ts_env.client, tq, scope, batch(alert("HighLatency", service="payments")), pol)
        # Joins the group first; the silence comes during group_wait: silenced at open.
        await handle.signal(MonitoringWorkflow.ingest, batch(alert("HighLatency", service="search")))
        await eventually(lambda: _status(handle, lambda s: s.alerts_received == 2))
        await handle.execute_update(
            MonitoringWorkflow.add_silence,
            SilenceRequest(
                matchers=[Matcher.parse('service="search"')],
                duration=timedelta(minutes=20),
                created_by="alice",
                request_id="search-deploy",
            ),
        )
        await ts_env.sleep(timedelta(seconds=31))
        st = await eventually(lambda: _status(handle, lambda s: s.open_incidents == 1))
        assert st.groups == 1
        [opened] = [
            d for d in await handle.query(MonitoringWorkflow.recent_decisions) if d.kind == "new_group"
        ]
        incident = ts_env.client.get_workflow_handle(incident_id_for(scope, opened.group_key))
        state = await eventually(lambda: incident.query("status", result_type=IncidentState))
        assert {a.service for a in state.alerts} == {"payments"}
        routing = [e.message for e in state.timeline if e.kind == "routing"]
        assert any(m.startswith("kept out of the incident as it opens: silenced by") for m in routing), (
            routing
        )

        await ts_env.sleep(timedelta(minutes=21))

        async def told():
            s = await incident.query("status", result_type=IncidentState)
            return s if {a.service for a in s.alerts} == {"payments", "search"} else None

        await eventually(told)
        history = await handle.fetch_history()
        await handle.terminate()
        await incident.terminate()
    assert "monitoring-muted-alerts-kept-out-of-the-incident" in patch_ids(history.to_json())
    replay = await Replayer(
        workflows=[MonitoringWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None, replay.replay_failure


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


def _silence_req(service: str, request_id: str, **kw) -> SilenceRequest:
    kw.setdefault("duration", timedelta(hours=1))
    return SilenceRequest(
        matchers=[Matcher.parse(f'service="{service}"')],
        created_by="alice",
        comment="test",
        request_id=request_id,
        **kw,
    )


async def _expiry_notices(client: Client, handle) -> list[str]:  # type: ignore[no-untyped-def]
    """Keys of the expiry notifications the scope asked for, over all its runs (the outbox
    dedupes on the key, so a repeat shows only here, in history)."""
    keys, run_id = [], handle.result_run_id
    while run_id:
        run, run_id = client.get_workflow_handle(handle.id, run_id=run_id), None
        async for event in run.fetch_history_events():
            if event.HasField("workflow_execution_continued_as_new_event_attributes"):
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "notify":
                keys.append(attrs.input.payloads[0].data.decode())
    return [k for k in keys if "/expired" in k]


async def test_a_silence_begun_in_the_past_ends_as_asked_and_one_over_already_is_refused(ts_env, tmp_path):
    """A start already past: the silence starts now and still ends at start + duration (it used
    to last `duration` from now). One that would have ended already is refused, saying so."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy())
        now = await ts_env.get_current_time()
        asked = now - timedelta(minutes=30)
        late = await handle.execute_update(
            MonitoringWorkflow.add_silence, _silence_req("x", "late", starts_at=asked)
        )
        assert late.ends_at == asked + timedelta(hours=1), late
        assert late.starts_at >= now - timedelta(seconds=5)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                MonitoringWorkflow.add_silence, _silence_req("x", "over", starts_at=now - timedelta(hours=3))
            )
        assert "already past" in str(refused.value.cause), refused.value.cause
        assert [s.id for s in await handle.query(MonitoringWorkflow.silences)] == [late.id]
        await handle.terminate()


async def test_a_silence_expired_by_hand_is_told_once_and_cannot_be_expired_again(ts_env, tmp_path):
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy())
        now = await ts_env.get_current_time()
        planned = await handle.execute_update(
            MonitoringWorkflow.add_silence, _silence_req("x", "planned", starts_at=now + timedelta(hours=2))
        )
        gone = await handle.execute_update(
            MonitoringWorkflow.expire_silence, SilenceExpire(silence_id=planned.id, by="bob")
        )
        assert gone.starts_at == gone.ends_at < planned.starts_at, "a pending one starts and ends now"
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                MonitoringWorkflow.expire_silence, SilenceExpire(silence_id=planned.id, by="carol")
            )
        assert "already expired" in str(refused.value.cause)
        await ts_env.sleep(timedelta(hours=4))  # past the end it was planned with
        await handle.signal(MonitoringWorkflow.ingest, batch())
        await eventually(lambda: _status(handle, lambda s: s.batches == 2))
        subjects = [r["subject"] for r in rt.channels["outbox"].records() if r["kind"] == "silence"]
        assert [s for s in subjects if "expired" in s] == [f"Silence {planned.id} expired by bob"]
        assert len(await _expiry_notices(ts_env.client, handle)) == 1
        await handle.terminate()


async def test_a_silence_posted_again_under_its_id_changes_as_alertmanager_changes_it(ts_env, tmp_path):
    """Alertmanager's rules for `POST /api/v2/silences` with an id: an active silence whose end
    moves keeps its id; a pending one may move its start; new matchers, or a new start for an
    active one, expire it and make a new silence. Each change is told once; an unknown id and
    a change that would end in the past are refused, changing nothing."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy())
        now = await ts_env.get_current_time()
        first = await handle.execute_update(MonitoringWorkflow.add_silence, _silence_req("x", "one"))

        def change(req_id: str, starts, hours: float, service: str = "x") -> SilenceUpdate:
            return SilenceUpdate(
                silence_id=first.id,
                change=_silence_req(service, req_id, starts_at=starts, duration=timedelta(hours=hours)),
            )

        # Read back to the millisecond (as the API writes it) and longer: the same silence.
        ms = first.starts_at.replace(microsecond=first.starts_at.microsecond // 1000 * 1000)
        longer = await handle.execute_update(MonitoringWorkflow.update_silence, change("two", ms, 3))
        assert (longer.id, longer.starts_at) == (first.id, first.starts_at)
        assert longer.ends_at == ms + timedelta(hours=3) and longer.updated_at is not None

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                MonitoringWorkflow.update_silence, change("x", now - timedelta(hours=3), 1)
            )
        assert "already past" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(
                MonitoringWorkflow.update_silence,
                SilenceUpdate(silence_id="sil-nope", change=_silence_req("x", "y")),
            )
        assert "no silence sil-nope" in str(unknown.value.cause)

        # Other matchers: the old one ends now, a new one (new id) silences from here.
        other = await handle.execute_update(MonitoringWorkflow.update_silence, change("three", ms, 3, "y"))
        assert other.id == "sil-three" and other.matchers == [Matcher.parse('service="y"')]
        again = await handle.execute_update(MonitoringWorkflow.update_silence, change("three", ms, 3, "y"))
        assert again == other, "a retried replacement is the one it made"
        held = {s.id: s for s in await handle.query(MonitoringWorkflow.silences)}
        assert held[first.id].ends_at <= await ts_env.get_current_time() < held[other.id].ends_at

        # The expired one posted again: a new silence; the expired one is not expired again.
        revived = await handle.execute_update(MonitoringWorkflow.update_silence, change("four", None, 1))
        assert revived.id == "sil-four"
        # A pending one moves in place; an active one moved is replaced.
        planned = await handle.execute_update(
            MonitoringWorkflow.add_silence, _silence_req("z", "five", starts_at=now + timedelta(hours=5))
        )
        later = now + timedelta(hours=8)
        moved = await handle.execute_update(
            MonitoringWorkflow.update_silence,
            SilenceUpdate(silence_id=planned.id, change=_silence_req("z", "six", starts_at=later)),
        )
        assert (moved.id, moved.starts_at, moved.ends_at) == (planned.id, later, later + timedelta(hours=1))
        replaced = await handle.execute_update(
            MonitoringWorkflow.update_silence,
            SilenceUpdate(silence_id=revived.id, change=_silence_req("x", "seven", starts_at=later)),
        )
        assert replaced.id == "sil-seven" and replaced.starts_at == later

        await handle.signal(MonitoringWorkflow.ingest, batch())  # the next pass tells people
        await eventually(lambda: _status(handle, lambda s: s.batches == 2))

        def told() -> list[str]:
            return sorted(r["subject"] for r in rt.channels["outbox"].records() if r["kind"] == "silence")

        await eventually(lambda: asyncio.sleep(0, len(told()) >= 9))
        assert told() == sorted([
            f"Silence {first.id} created by alice", f"Silence {first.id} updated by alice",
            f"Silence {first.id} expired by alice", "Silence sil-three created by alice",
            "Silence sil-four created by alice", "Silence sil-five created by alice",
            "Silence sil-five updated by alice", "Silence sil-four expired by alice",
            "Silence sil-seven created by alice",
        ])  # fmt: skip
        await handle.terminate()


async def test_each_expired_silence_is_told_once_however_many_ended_that_day(ts_env, tmp_path):
    """Expired silences are kept a day; with more than 500 of them the scope forgot it had told
    of the oldest, told of it again on its next pass, and so on, one notice per pass."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, World(), tq)
    async with worker:
        handle = await start(ts_env.client, tq, scope, batch(), monitoring_policy())
        many = 502
        await asyncio.gather(
            *(
                handle.execute_update(
                    MonitoringWorkflow.add_silence,
                    _silence_req(f"svc{i}", f"m{i}", duration=timedelta(minutes=5)),
                )
                for i in range(many)
            )
        )
        await ts_env.sleep(timedelta(minutes=10))
        await handle.signal(MonitoringWorkflow.ingest, batch())

        async def all_told() -> bool:
            return len(await _expiry_notices(ts_env.client, handle)) >= many

        await eventually(all_told, tries=600)
        # More passes of the loop: each ends telling of what expired and was not told yet. A pass
        # has finished once the next one has counted its batch.
        for n in range(4):
            await handle.signal(MonitoringWorkflow.ingest, batch())
            await eventually(lambda n=n: _status(handle, lambda s: s.batches == 3 + n))
        notices = await _expiry_notices(ts_env.client, handle)
        assert len(notices) == many and len(set(notices)) == many
        await handle.terminate()
