"""The read behind the durability benchmark: which alert fingerprints a monitoring scope holds.

Router level (grouped, held back, ignored, dropped once told resolved, kept across
continue-as-new) and the MonitoringWorkflow query on the time-skipping server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from argus.analysis.routing import RESOLVED_NEWS_INTERVAL, Router, RouterState
from argus.models import Alert, AlertStatus, Policy, Silence
from argus.models.agents import FingerprintCheck, FingerprintReport
from argus.models.alert import CompactBatch, alert_to_compact
from argus.models.config import RoutingConfig
from argus.models.routing import Matcher
from argus.workflows import monitoring
from argus.workflows.monitoring import MonitoringState, MonitoringWorkflow, pack_state, unpack_state
from tests.workflows.kit import monitoring_worker, signal_scope

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROUTE = {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "1h", "group_interval": "5m"}


def alert(name: str, status: str = "firing", **labels: str) -> Alert:
    return Alert(
        labels={"alertname": name, **labels},
        status=AlertStatus(status),
        starts_at=T0,
        ends_at=T0 if status == "resolved" else None,
        source="prometheus",
    )


def router(state: RouterState | None = None) -> Router:
    return Router(RoutingConfig.model_validate({"route": ROUTE}), state or RouterState(), "test")


def test_router_reports_grouped_and_held_alerts_not_ignored_or_unknown_ones():
    r = router()
    a, b = alert("A", instance="1"), alert("A", instance="2")
    held = alert("B", service="checkout")
    never = alert("C", status="resolved")
    r.add_silence(
        Silence(
            id="s1",
            matchers=[Matcher.parse('service="checkout"')],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            created_by="alice",
        )
    )
    r.ingest([a, b, held, never], T0)
    assert r.tracked_fingerprints() == {a.fingerprint, b.fingerprint, held.fingerprint}
    asked = [never.fingerprint, a.fingerprint, "0123456789abcdef", held.fingerprint, b.fingerprint]
    assert r.untracked(asked) == [never.fingerprint, "0123456789abcdef"]


def test_resolved_alert_is_dropped_once_its_incident_was_told():
    r = router()
    a, b = alert("A", instance="1"), alert("A", instance="2")
    r.ingest([a, b], T0)
    [opened] = r.due(T0 + timedelta(hours=1))
    assert opened.kind == "open"
    gone = a.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": T0 + timedelta(hours=1)})
    r.ingest([gone], T0 + timedelta(hours=1, seconds=1))
    assert r.untracked([a.fingerprint]) == []  # resolved, not told yet: still held
    # b still fires: the resolution is told with the group's next update, RESOLVED_NEWS_INTERVAL
    # (10 s, shorter than ROUTE's group_interval) after the last one.
    assert r.due(T0 + timedelta(hours=1, seconds=1)) == []
    [update] = r.due(T0 + timedelta(hours=1) + RESOLVED_NEWS_INTERVAL)
    assert update.kind == "update" and [x.fingerprint for x in update.alerts] == [a.fingerprint]
    assert r.untracked([a.fingerprint, b.fingerprint]) == [a.fingerprint]
    # The all-clear (the last firing alert resolved) is told at once.
    at = T0 + timedelta(hours=1) + RESOLVED_NEWS_INTERVAL + timedelta(seconds=1)
    r.ingest([b.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": at})], at)
    [update] = r.due(at)
    assert update.kind == "update" and update.firing_count == 0


def test_tracked_set_survives_continue_as_new():
    state = MonitoringState()
    r = Router(RoutingConfig.model_validate({"route": ROUTE}), state.router, "test")
    alerts = [alert("A", instance=str(i)) for i in range(50)]
    r.ingest(alerts, T0)
    carried, _ = unpack_state(pack_state(state))
    again = router(carried.router)
    assert again.tracked_fingerprints() == {x.fingerprint for x in alerts}
    assert again.untracked([x.fingerprint for x in alerts]) == []


async def test_monitoring_workflow_answers_which_fingerprints_it_holds(ts_env):
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    firing = [alert("A", instance=str(i)) for i in range(3)]
    resolved = alert("B", status="resolved")
    batch = CompactBatch.of(uuid.uuid4().hex, [alert_to_compact(x) for x in [*firing, resolved]])
    assert batch.compressed and batch.count == 4  # the gateway's form
    pol = Policy.model_validate({"routing": {"route": ROUTE}})
    async with monitoring_worker(ts_env.client, tq):
        handle = await signal_scope(ts_env.client, tq, scope, pol, batch)
        asked = FingerprintCheck(fingerprints=[x.fingerprint for x in firing] + [resolved.fingerprint])
        report = None
        for _ in range(200):
            report = await handle.query(MonitoringWorkflow.check_fingerprints, asked)
            if report.tracked == 3 and report.queued == 0:
                break
            await asyncio.sleep(0.05)
        assert report == FingerprintReport(tracked=3, queued=0, missing=[resolved.fingerprint])
        empty = await handle.query(MonitoringWorkflow.check_fingerprints, FingerprintCheck())
        assert empty == FingerprintReport(tracked=3, queued=0, missing=[])
        await handle.terminate()


async def test_alerts_handed_over_unapplied_by_continue_as_new_are_applied_by_the_next_run(ts_env):
    """Continue-as-new under load carries the queue it has not worked off yet (`pending`): the
    next run applies it, and remembers the batch ids so a redelivered batch is applied once."""
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    firing = [alert("A", instance=str(i)) for i in range(5)]
    state = MonitoringState(recent_batches=["seen-batch"])
    carried = pack_state(state, [CompactBatch.of("handed-over", [alert_to_compact(x) for x in firing])])
    # Uncompressed, as gateways before compression sent it (still in older histories).
    again = CompactBatch(
        batch_id="seen-batch", data=orjson.dumps([alert_to_compact(alert("Z"))]).decode(), count=1
    )
    pol = Policy.model_validate({"routing": {"route": ROUTE}})
    async with monitoring_worker(ts_env.client, tq):
        handle = await signal_scope(ts_env.client, tq, scope, pol, again, carried=carried)
        asked = FingerprintCheck(fingerprints=[x.fingerprint for x in firing] + [alert("Z").fingerprint])
        report = None
        for _ in range(200):
            report = await handle.query(MonitoringWorkflow.check_fingerprints, asked)
            if report.tracked == 5 and report.queued == 0:
                break
            await asyncio.sleep(0.05)
        assert report == FingerprintReport(tracked=5, queued=0, missing=[alert("Z").fingerprint])
        await handle.terminate()


def test_compact_batches_round_trip_compressed_and_plain():
    records = [alert_to_compact(alert("A", instance=str(i))) for i in range(200)]
    packed = CompactBatch.of("b1", records)
    plain = CompactBatch(batch_id="b0", data=orjson.dumps(records).decode(), count=len(records))
    assert packed.records() == records == plain.records()
    # Labels repeat from alert to alert: the compressed form is several times smaller.
    assert len(packed.data) * 4 < len(plain.data)
    # What crosses Temporal: the pydantic data converter's JSON, back to the same batch.
    assert CompactBatch.model_validate_json(packed.model_dump_json()).records() == records


async def test_a_scope_holds_no_more_alerts_than_fit_its_hand_over(ts_env, monkeypatch):
    """routing.max_tracked_alerts is a count; what must fit is the hand-over's bytes. A run
    measures what its tracked alerts took in the state it was handed and refuses new alerts past
    what fits (here a hand-over limit shrunk to 30 kB), saying why; known alerts still pass."""
    monkeypatch.setattr(monitoring, "MAX_CARRIED", 30_000)
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    state = MonitoringState()
    r = Router(RoutingConfig.model_validate({"route": ROUTE}), state.router, "test")
    held = [alert("A", instance=f"host-{i}", rack=f"r{i % 7}") for i in range(1000)]
    r.ingest(held, datetime.now(UTC))  # refreshed just now: none expires during the test
    carried = pack_state(state)
    fits = int(0.8 * 30_000 * 1000 / len(carried))
    assert fits < 1000, "the state handed over is already past what fits"
    newcomer, known = alert("B", instance="new"), held[0]
    batch = CompactBatch.of("b1", [alert_to_compact(newcomer), alert_to_compact(known)])
    pol = Policy.model_validate({"routing": {"route": ROUTE}})
    with ts_env.auto_time_skipping_disabled():  # or the carried alerts expire meanwhile
        async with monitoring_worker(ts_env.client, tq):
            handle = await signal_scope(ts_env.client, tq, scope, pol, batch, carried=carried)
            b = None
            for _ in range(200):
                decisions = await handle.query(MonitoringWorkflow.recent_decisions)
                b = next((d for d in decisions if d.alertname == "B"), None)
                if b is not None:
                    break
                await asyncio.sleep(0.05)
            assert b is not None and b.kind == "over_capacity"
            assert f"its limit ({fits}, what fits one continue-as-new hand-over" in b.reason
            assert "routing.max_tracked_alerts is 25000" in b.reason
            report = await handle.query(
                MonitoringWorkflow.check_fingerprints,
                FingerprintCheck(fingerprints=[known.fingerprint, newcomer.fingerprint]),
            )
            assert report == FingerprintReport(tracked=1000, queued=0, missing=[newcomer.fingerprint])
            status = await handle.query(MonitoringWorkflow.status)
            assert status.counts.get("over_capacity") == 1 and status.alerts_received == 2
            await handle.terminate()
