"""Recovery checks that read only the alerts wait for the alerts, not for a timer.

An incident no rule or SLI re-checks (the Closer judges it on its alerts' own state, the usual
case for alerts pushed from Alertmanager) used to run a check every `verification.interval`
that could not learn anything new. Now it re-checks when alerts arrive, when the period is due
and at the deadline. Time-skipping server: the real Closer, 35 minutes of a 30-minute deadline.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

from temporalio.client import WorkflowHandle

from argus.models import AlertsSignal, AlertStatus, IncidentStatus
from argus.workflows.incident import IncidentWorkflow

from .history_split import split_after_local_activities
from .kit import World, alert, incident_input, make_worker, policy, wait_status
from .test_replay import replay


async def recovery_checks(handle: WorkflowHandle) -> int:
    """Recovery checks in the history (local activities since the quick-steps patch)."""
    events = json.loads((await handle.fetch_history()).to_json())["events"]
    count = 0
    for e in events:
        if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED":
            data = e["markerRecordedEventAttributes"]["details"].get("data")
            if data:  # a local activity's marker: its data names the activity type
                meta = json.loads(base64.b64decode(data["payloads"][0]["data"]))
                count += meta.get("activity_type") == "verify_recovery"
        elif e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            count += e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "verify_recovery"
    return count


async def status_of(handle: WorkflowHandle) -> IncidentStatus:
    return (await handle.query(IncidentWorkflow.status)).status


async def test_checks_judged_on_alerts_wait_for_the_alerts(ts_env, tmp_path):
    world = World(signature="no-such-fault")  # no playbook matches: straight to verification
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, world, tq, real_verify=True)
    firing = alert()
    async with worker:
        inp = incident_input(policy(), alerts=[firing])
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_status(handle, IncidentStatus.VERIFYING)

        # 20 minutes with the alert firing: one check, not one every 10 s (120).
        await ts_env.sleep(timedelta(minutes=20))
        assert await status_of(handle) == IncidentStatus.VERIFYING
        assert await recovery_checks(handle) == 1

        # The 30-minute deadline still comes: escalated, waiting for a person or the alerts.
        await ts_env.sleep(timedelta(minutes=15))
        s = await handle.query(IncidentWorkflow.status)
        assert s.status == IncidentStatus.INVESTIGATING
        assert any(e.kind == "not_recovered" for e in s.timeline)
        assert await recovery_checks(handle) == 2

        # The alert resolves: the incident closes on that news, without a check per interval.
        resolved = firing.model_copy(update={"status": AlertStatus.RESOLVED})
        await handle.signal(IncidentWorkflow.add_alerts, AlertsSignal(alerts=[resolved]))
        final = await handle.result()
        assert final.status == IncidentStatus.CLOSED
        assert await recovery_checks(handle) <= 3
    history = await handle.fetch_history()
    await replay(history)  # deterministic: a worker restart resumes it
    # Also with each check's marker and what follows it in different workflow tasks: whether
    # checks wait for the alerts is not decided by a patch asked right after the check.
    split, inserted = split_after_local_activities(history)
    assert inserted >= 2
    await replay(split)


async def test_a_new_firing_alert_during_the_watch_reopens_the_incident(ts_env, tmp_path):
    world = World(signature="no-such-fault")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, world, tq, real_verify=True)
    first = alert()
    pol = policy(verification={"period": "1m", "interval": "10s", "max_wait": "30m", "watch": "1h"})
    async with worker:
        inp = incident_input(pol, alerts=[first.model_copy(update={"status": AlertStatus.RESOLVED})])
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_status(handle, IncidentStatus.VERIFYING)
        await ts_env.sleep(timedelta(minutes=2))  # healthy for the period: resolved, watching
        assert await status_of(handle) == IncidentStatus.RESOLVED
        quiet = await recovery_checks(handle)
        await ts_env.sleep(timedelta(minutes=20))
        assert await recovery_checks(handle) == quiet, "a quiet watch runs no checks"

        # The symptom comes back: checked at once, then every interval until it counts.
        await handle.signal(IncidentWorkflow.add_alerts, AlertsSignal(alerts=[alert(service="checkout")]))
        await ts_env.sleep(timedelta(minutes=1))
        s = await handle.query(IncidentWorkflow.status)
        assert s.status == IncidentStatus.VERIFYING
        assert any(e.kind == "regressed" for e in s.timeline)
