"""Heartbeat checks on the time-skipping server: a missed check-in raises exactly one alert in
Monitoring, a late check-in resolves it, a failed one alerts at once, and a worker restart in
the middle neither loses nor repeats the alert."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from argus.models import ArgusConfig, RouteDecision
from argus.models.agents import MonitoringStatus
from argus.models.heartbeats import CheckState, HeartbeatCheck, HeartbeatInput, HeartbeatPing, HeartbeatStatus
from argus.workers.settings import Secrets
from argus.workers.wiring import WORKFLOWS, activity_methods, build_activities, build_runtime
from argus.workflows.heartbeat import heartbeat_workflow_id

from .kit import REPO, World, make_worker
from .queue_cleanup import close_queue


def fresh_worker(client: Client, tmp, queue: str, cfg: ArgusConfig):  # type: ignore[no-untyped-def]
    """A worker that keeps no workflow in memory: every task is rebuilt from history, as after a
    restart, and no task waits on a stopped worker's sticky queue."""
    rt = build_runtime(cfg, Secrets({"link_secret": "x" * 32}))
    scripted = {"analyze_root_cause", "execute_step", "verify_recovery"}
    real = [a for a in build_activities(rt) if a.__temporal_activity_definition.name not in scripted]
    return Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=real + activity_methods([World()]),
        max_cached_workflows=0,
    )


def config(tmp, queue: str, scope: str) -> ArgusConfig:
    return ArgusConfig.model_validate(
        {
            "state_dir": str(tmp),
            "temporal": {"task_queue": queue, "monitoring_task_queue": queue},
            "remediation": {"playbooks_dir": str(REPO / "playbooks")},
            "sandbox": {"enabled": False},
            "notify": {"echo": False},
            "heartbeats": {"scope": scope, "refresh": "30d"},
            # Incidents are the IncidentWorkflow's tests; here the alert must reach Monitoring once.
            "policy": {
                "phases": {"monitoring": True, "incident": True, "docgen": False},
                "routing": {"route": {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "30d"}},
            },
        }
    )


async def start_check(client: Client, cfg: ArgusConfig, check: HeartbeatCheck) -> WorkflowHandle:
    return await client.start_workflow(
        "HeartbeatWorkflow",
        HeartbeatInput(check=check, scope=cfg.heartbeats.scope, refresh=cfg.heartbeats.refresh),
        id=heartbeat_workflow_id(check.name),
        task_queue=cfg.temporal.task_queue,
    )


async def monitoring(client: Client, scope: str) -> MonitoringStatus:
    return await client.get_workflow_handle(f"monitoring-{scope}").query(
        "status", result_type=MonitoringStatus
    )


async def decisions(client: Client, scope: str) -> list[RouteDecision]:
    return await client.get_workflow_handle(f"monitoring-{scope}").query(
        "recent_decisions", result_type=list[RouteDecision]
    )


async def status(handle: WorkflowHandle) -> HeartbeatStatus:
    return await handle.query("status", result_type=HeartbeatStatus)


async def stop_all(client: Client, queue: str) -> None:
    """Terminate what the test started (the check, Monitoring, any incident): a workflow left
    waiting on a queue nobody polls would hold the shared time-skipping server's clock for the
    tests after it (queue_cleanup.py)."""
    await close_queue(client, queue)


def names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"hb-q-{tag}", f"hb-{tag}", f"job-{tag}"


async def test_missed_checkin_raises_exactly_one_alert_and_late_checkin_resolves(ts_env, tmp_path):
    queue, scope, name = names()
    cfg = config(tmp_path, queue, scope)
    check = HeartbeatCheck(name=name, interval=timedelta(hours=1), grace=timedelta(minutes=10))
    worker, _ = make_worker(ts_env.client, tmp_path, World(), queue, config=cfg)
    async with worker:
        handle = await start_check(ts_env.client, cfg, check)
        try:
            await handle.signal("checkin", HeartbeatPing(ping_id="p1"))
            await ts_env.sleep(timedelta(minutes=65))  # late but within grace: nothing yet
            st = await status(handle)
            assert st.state == CheckState.UP and st.pings == 1
            await ts_env.sleep(timedelta(minutes=10))  # now 75 min: past 1h + 10m grace
            st = await status(handle)
            assert st.state == CheckState.DOWN and st.episode == 1, st
            assert "no check-in by" in st.down_reason
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (1, 1)
            # Hours more of silence: still one alert, never a second one.
            await ts_env.sleep(timedelta(hours=5))
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (1, 1)
            fired = [d for d in await decisions(ts_env.client, scope) if d.alertname == "HeartbeatMissed"]
            assert fired and all(d.kind.value != "resolved" for d in fired)

            # The late check-in resolves it.
            await handle.signal("checkin", HeartbeatPing(ping_id="p2", message="caught up"))
            await ts_env.sleep(timedelta(seconds=5))
            st = await status(handle)
            assert st.state == CheckState.UP and st.episode == 1 and st.last_message == "caught up"
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (2, 2)
            resolved = [
                d
                for d in await decisions(ts_env.client, scope)
                if d.alertname == "HeartbeatMissed" and d.kind.value == "resolved"
            ]
            assert len(resolved) == 1
            # A re-sent ping (same id) is applied once.
            await handle.signal("checkin", HeartbeatPing(ping_id="p2"))
            await ts_env.sleep(timedelta(seconds=5))
            assert (await status(handle)).pings == 2
        finally:
            await stop_all(ts_env.client, queue)


async def test_failed_checkin_alerts_at_once_and_once(ts_env, tmp_path):
    queue, scope, name = names()
    cfg = config(tmp_path, queue, scope)
    check = HeartbeatCheck(name=name, cron="*/30 * * * *", grace=timedelta(minutes=5), service="backup")
    worker, _ = make_worker(ts_env.client, tmp_path, World(), queue, config=cfg)
    async with worker:
        handle = await start_check(ts_env.client, cfg, check)
        try:
            await handle.signal(
                "checkin", HeartbeatPing(ping_id="f1", status="fail", exit_code=3, message="disk full")
            )
            await ts_env.sleep(timedelta(seconds=5))
            st = await status(handle)
            assert (
                st.state == CheckState.DOWN
                and "exit code 3" in st.down_reason
                and "disk full" in st.down_reason
            )
            await handle.signal("checkin", HeartbeatPing(ping_id="f2", status="fail"))
            await ts_env.sleep(timedelta(hours=2))  # failing again and missing ticks: the same episode
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (1, 1)
            failed = [d for d in await decisions(ts_env.client, scope) if d.alertname == "HeartbeatFailed"]
            assert failed, "the failure reached the router as HeartbeatFailed"
            await handle.signal("checkin", HeartbeatPing(ping_id="f3"))
            await ts_env.sleep(timedelta(seconds=5))
            assert (await status(handle)).state == CheckState.UP
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (2, 2)
        finally:
            await stop_all(ts_env.client, queue)


async def test_worker_restarts_neither_lose_nor_repeat_the_deadline(ts_env, tmp_path):
    """Each phase runs on a fresh worker that rebuilds the check from history: the timer set by
    the first worker fires under the second, and the third does not fire it again."""
    queue, scope, name = names()
    cfg = config(tmp_path, queue, scope)
    check = HeartbeatCheck(name=name, interval=timedelta(minutes=30), grace=timedelta(minutes=5))
    worker = fresh_worker(ts_env.client, tmp_path / "a", queue, cfg)
    async with worker:
        handle = await start_check(ts_env.client, cfg, check)
        await handle.signal("checkin", HeartbeatPing(ping_id="r1"))
        await ts_env.sleep(timedelta(minutes=10))
        assert (await status(handle)).state == CheckState.UP
    worker = fresh_worker(ts_env.client, tmp_path / "b", queue, cfg)
    async with worker:  # the deadline (35 min after the ping) passes under this worker
        await ts_env.sleep(timedelta(minutes=30))
        st = await status(handle)
        assert st.state == CheckState.DOWN and st.episode == 1
        assert (await monitoring(ts_env.client, scope)).alerts_received == 1
    worker = fresh_worker(ts_env.client, tmp_path / "c", queue, cfg)
    async with worker:
        try:
            await ts_env.sleep(timedelta(hours=3))
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (1, 1)
            await handle.signal("checkin", HeartbeatPing(ping_id="r2"))
            await ts_env.sleep(timedelta(seconds=5))
            assert (await status(handle)).state == CheckState.UP
            mon = await monitoring(ts_env.client, scope)
            assert (mon.alerts_received, mon.batches) == (2, 2)
        finally:
            await stop_all(ts_env.client, queue)
