"""A monitoring scope under a stream of batches continues as new many times on a real dev
server (asked to suggest it every 40 events), and every batch signalled is applied once:
the hand-over carries the tracked alerts, the batches not yet applied and the run count."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Replayer

from argus.models import Policy
from argus.models.agents import FingerprintCheck, FingerprintReport, MonitoringInput
from argus.models.alert import CompactBatch, labels_fingerprint
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace
from argus.workers.ingest import HOLDS
from argus.workflows import monitoring
from argus.workflows.monitoring import MonitoringWorkflow
from tests.workflows.kit import monitoring_worker, signal_scope

ROUTE = {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "1h", "group_interval": "5m"}


def records(batch: int, n: int) -> list[dict]:
    t = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
    out = []
    for i in range(n):
        labels = {"alertname": f"Disk{batch % 3}", "instance": f"host-{batch}-{i}"}
        out.append({"f": labels_fingerprint(labels), "l": labels, "s": "f", "t": t, "o": "prometheus"})
    return out


async def until_routed(handle, fingerprints: list[str], sender: str = "") -> FingerprintReport:  # type: ignore[no-untyped-def]
    """The scope's answer once nothing is queued and none of `fingerprints` is missing (or the
    last answer after 30 s)."""
    report = None
    for _ in range(300):
        report = await handle.query(
            MonitoringWorkflow.check_fingerprints,
            FingerprintCheck(fingerprints=fingerprints, sender=sender),
            rpc_timeout=timedelta(seconds=10),
        )
        if report.queued == 0 and not report.missing:
            break
        await asyncio.sleep(0.1)
    assert report is not None
    return report


@pytest.fixture
async def cas_client(tmp_path):  # type: ignore[no-untyped-def]
    """A client of a real dev server of the test's own that suggests continue-as-new every 40
    events, so a few hundred signals make several runs."""
    dev = DevServer(
        tmp_path / "temporal",
        "default",
        port=free_port(),
        ui_port=None,
        extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    await asyncio.to_thread(dev.start)
    try:
        await wait_for_namespace(dev.address, "default")
        yield await connect(dev.address, "default")
    finally:
        await asyncio.to_thread(dev.stop)


async def test_scope_continues_as_new_under_a_stream_and_applies_every_batch_once(cas_client):
    client = cas_client
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    batches = [CompactBatch.of(f"b{i}", records(i, 25)) for i in range(120)]
    async with monitoring_worker(client, tq):

        async def send(batch: CompactBatch) -> None:
            await signal_scope(client, tq, scope, policy, batch)

        # Eight senders at once, as the gateway's flushes arrive: signals land while a
        # run is handing over, which the server answers by retrying that task.
        for i in range(0, len(batches), 8):
            await asyncio.gather(*(send(b) for b in batches[i : i + 8]))
        await send(batches[5])  # a redelivered batch: applied once

        handle = client.get_workflow_handle(f"monitoring-{scope}")
        sent = [r["f"] for b in batches for r in b.records()]
        report = await until_routed(handle, sent)
        assert report.missing == [] and report.tracked == len(sent)

        status = await handle.query(MonitoringWorkflow.status)
        runs: list = []
        for _ in range(50):  # visibility trails the runs by a moment
            runs = [r async for r in client.list_workflows(f'WorkflowId = "monitoring-{scope}"')]
            if len(runs) >= status.runs:
                break
            await asyncio.sleep(0.1)
        handed_over = [r for r in runs if r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW]
        # How many depends on how the signals fell into workflow tasks; at least one.
        assert handed_over, "the stream outgrew the first run"
        assert status.runs == len(runs), "each run knows its number"
        assert status.batches == len(batches), "the redelivered batch was not counted again"
        assert status.alerts_received == len(sent)
        await handle.terminate()


async def test_a_hand_over_too_large_to_carry_waits_and_nothing_is_lost(cas_client, monkeypatch, caplog):
    """When the state and the queue do not fit one continue-as-new input, the run works the queue
    off and tries again only once it has shrunk: packing is not repeated after every chunk of a
    backlog, and a state that alone is too large does not spin the run. Every batch is applied."""
    monkeypatch.setattr(monitoring, "MAX_CARRIED", 2_000)  # far below the state of 6,000 alerts
    client = cas_client
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    batches = [CompactBatch.of(f"b{i}", records(i, 100)) for i in range(60)]
    # Signalled while no worker runs: the first task finds a backlog of several chunks.
    for b in batches:
        await signal_scope(client, tq, scope, policy, b)
    async with monitoring_worker(client, tq):
        handle = client.get_workflow_handle(f"monitoring-{scope}")
        sent = [r["f"] for b in batches for r in b.records()]
        report = await until_routed(handle, sent)
        assert report.missing == [] and report.tracked == len(sent)
        await asyncio.sleep(1)  # a run spinning on its hand-over would keep trying meanwhile
        status = await handle.query(MonitoringWorkflow.status)
        assert status.runs == 1 and status.batches == len(batches)
        tries = [r for r in caplog.records if "too large to continue as new" in r.getMessage()]
        # Once the backlog had drained; not after each of its chunks (six at least).
        assert len(tries) == 1, len(tries)
        await handle.terminate()


async def continued_inputs(client, workflow_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The `carried` input each finished run of `workflow_id` handed to the next one."""
    from temporalio.api.enums.v1 import EventType

    out = []
    async for run in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        async for e in client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                payloads = e.workflow_execution_continued_as_new_event_attributes.input.payloads
                (inp,) = await client.data_converter.decode(payloads, [MonitoringInput])
                out.append(inp.carried)
    return out


def late_entries(carried: str) -> list[list]:
    """Batches a run carried that arrived after it had packed its state (they keep their id)."""
    _, _, batches = carried.partition(monitoring.PENDING_SEP)
    return [b for b in orjson.loads(batches or "[]") if len(b) == 6]


async def test_batches_that_arrive_while_a_run_hands_over_go_with_it_counted_once(cas_client):
    """A run packs its state, says it is handing over, and continues as new only once no batch
    has come for a moment. A batch that comes meanwhile is carried as it came, with its id and
    its sender's count: the next run applies it once, counts it, and answers the sender's seq;
    the runs that handed over replay as they ran."""
    client = cas_client
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    handle = client.get_workflow_handle(f"monitoring-{scope}")
    sent: list[CompactBatch] = []

    async def send() -> None:
        n = len(sent)
        batch = CompactBatch.of(f"b{n}", records(n, 25), sender="gw-1", seq=25 * (n + 1))
        sent.append(batch)
        await signal_scope(client, tq, scope, policy, batch)

    async def answer():  # type: ignore[no-untyped-def]
        return await handle.query(
            MonitoringWorkflow.check_fingerprints,
            FingerprintCheck(sender="gw-1"),
            rpc_timeout=timedelta(seconds=10),
        )

    caught = 0
    async with monitoring_worker(client, tq):
        while caught < 3 and len(sent) < 400:
            await send()
            for _ in range(10):  # watch it for a moment
                if (await answer()).handing_over:
                    await send()  # arrives after the state was packed
                    caught += 1
                    for _ in range(200):  # then hold, as a gateway does, until the next run answers
                        if not (await answer()).handing_over:
                            break
                        await asyncio.sleep(0.01)
                    break
        assert caught == 3, "a hand-over was seen"
        await signal_scope(client, tq, scope, policy, sent[-1])  # redelivered: applied once

        fingerprints = [r["f"] for b in sent for r in b.records()]
        report = await until_routed(handle, fingerprints, sender="gw-1")
        assert report.missing == [] and report.tracked == len(fingerprints)
        assert report.received_seq == 25 * len(sent)
        status = await handle.query(MonitoringWorkflow.status)
        assert status.batches == len(sent) and status.alerts_received == len(fingerprints)

        carried = await continued_inputs(client, handle.id)
        late = [e for c in carried for e in late_entries(c)]
        # A batch sent just as a run's quiet wait ended reaches the next run instead (and one
        # that lands in the hand-over's last task makes the server refuse it once): at least
        # one of the three went with a hand-over.
        assert len(late) >= 1, "a batch sent while a run handed over went with it"
        assert {e[3] for e in late} <= {b.batch_id for b in sent}
        # And a run that handed over replays as it ran (a worker that lost it from its cache).
        replayer = Replayer(workflows=[MonitoringWorkflow], data_converter=client.data_converter)
        async for run in client.list_workflows(f'WorkflowId = "{handle.id}"'):
            if run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
                await replayer.replay_workflow(history)
        await handle.terminate()


async def test_a_gateway_holds_a_scope_while_it_hands_over(cas_client, tmp_path):
    """Alerts posted to the gateway without pause, while the scope continues as new again and
    again: the gateway holds the scope's batches while a run hands over, the hand-overs go on,
    and every acknowledged alert is in the scope. (A flush already in flight when the hold
    begins can still land in the hand-over's last task on a loaded machine, which costs one
    replay, as every hand-over did before.)"""
    from tests.unit.gateway_kit import gateway_app

    scope = f"s{uuid.uuid4().hex[:6]}"
    holds_before = HOLDS._value.get()
    async with gateway_app(SimpleNamespace(client=cas_client), tmp_path) as (http, ctx):
        ctx.coalescer.probe_every = 0.2
        acked: list[str] = []

        async def client_loop(c: int) -> None:
            for n in range(80):
                labels = [{"alertname": f"Disk{n % 3}", "instance": f"h-{c}-{n}-{i}"} for i in range(10)]
                r = await http.post(f"/api/v2/alerts?scope={scope}", json=[{"labels": x} for x in labels])
                assert r.status_code == 200, r.text
                acked.extend(labels_fingerprint(x) for x in labels)

        await asyncio.gather(*(client_loop(c) for c in range(4)))
        handle = cas_client.get_workflow_handle(f"monitoring-{scope}")
        report = await until_routed(handle, acked)
        assert report.missing == [] and report.tracked == len(acked) == 3200
        status = await handle.query(MonitoringWorkflow.status)
        assert status.runs >= 3, status.runs
        assert HOLDS._value.get() > holds_before, "the gateway held the scope during a hand-over"
        await handle.terminate()


async def test_a_hand_over_over_temporal_s_limit_goes_through_the_payload_store(cas_client, tmp_path):
    """A scope whose hand-over is larger than Temporal's 2 MiB payload limit (15,000 alerts with
    long annotations, and the batches not yet applied): with the deployment's payload store the
    input waits in the store, history holds a small reference, the next run has every alert,
    and the runs replay. Without the store this scope would be held to what fits 1.6 MB."""
    import random

    from temporalio.api.enums.v1 import EventType

    from argus.integrations.payload_store import SqlPayloadDriver, external_storage
    from argus.integrations.sql import sqlite_url

    store = SqlPayloadDriver(sqlite_url(tmp_path / "payloads.db"))
    client = await connect(
        cas_client.service_client.config.target_host, "default", storage=external_storage(store)
    )
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    rnd = random.Random(7)
    batches = []
    for i in range(30):
        recs = records(i, 500)
        for r in recs:
            r["a"] = {"note": rnd.randbytes(100).hex()}  # what compresses badly: 2.9 MB in all
        batches.append(CompactBatch.of(f"b{i}", recs))
    # Signalled while no worker runs: the first run works off a backlog of many chunks, its
    # history passes the 40 events, and it hands over state and queue together.
    for b in batches:
        await signal_scope(client, tq, scope, policy, b, payload_store=True)
    async with monitoring_worker(client, tq):
        handle = client.get_workflow_handle(f"monitoring-{scope}")
        sent = [r["f"] for b in batches for r in b.records()]
        report = await until_routed(handle, sent)
        assert report.missing == [] and report.tracked == len(sent) == 15_000
        status = await handle.query(MonitoringWorkflow.status)
        assert status.runs >= 2 and status.batches == len(batches) and status.alerts_received == len(sent)

        carried = await continued_inputs(client, handle.id)
        assert max(len(c) for c in carried) > 2 * 1024 * 1024, [len(c) for c in carried]
        parts = [c.partition(monitoring.PENDING_SEP)[0].count(monitoring.PART_SEP) for c in carried]
        assert max(parts) >= 2, f"a large state is packed a part per task: {parts}"
        replayer = Replayer(workflows=[MonitoringWorkflow], data_converter=client.data_converter)
        async for run in client.list_workflows(f'WorkflowId = "{handle.id}"'):
            if run.status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
                continue
            history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
            [can] = [
                e
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            ]
            [ref] = can.workflow_execution_continued_as_new_event_attributes.input.payloads
            if ref.external_payloads:  # a reference in history, the input in the store
                assert ref.ByteSize() < 1000 and ref.external_payloads[0].size_bytes > 1024 * 1024
            await replayer.replay_workflow(history)
        kept = store.stored(handle.id)
        assert kept and max(size for _, _, size in kept) > 2 * 1024 * 1024
        await handle.terminate()


async def test_alerts_too_large_for_one_signal_together_all_arrive_and_a_huge_one_is_refused(
    cas_client, tmp_path
):
    """Sixteen requests of large alerts that the gateway gathers into one batch of about 4 MB,
    twice Temporal's payload limit: it goes as several signals, and every alert arrives. A
    request with an alert too large for any signal gets a 413 naming it; nothing of it is taken."""
    import random

    from tests.unit.gateway_kit import gateway_app

    rnd = random.Random(5)
    scope = f"s{uuid.uuid4().hex[:6]}"
    gw = gateway_app(SimpleNamespace(client=cas_client), tmp_path, flush_interval="300ms")
    async with gw as (http, _):
        sent: list[str] = []

        async def post(r: int) -> None:
            labels = [{"alertname": "StackTrace", "instance": f"h-{r}-{i}"} for i in range(100)]
            body = [{"labels": x, "annotations": {"trace": rnd.randbytes(1200).hex()}} for x in labels]
            resp = await http.post(f"/api/v2/alerts?scope={scope}", json=body)
            assert resp.status_code == 200, resp.text
            sent.extend(labels_fingerprint(x) for x in labels)

        await asyncio.gather(*(post(r) for r in range(16)))
        handle = cas_client.get_workflow_handle(f"monitoring-{scope}")
        report = await until_routed(handle, sent)
        status = await handle.query(MonitoringWorkflow.status)
        # Seen twice on a loaded machine: 200 of the 1,600 (two requests) missing after 30 s.
        # Say enough to tell a slow hand-over (queued) from a lost one.
        why = (
            f"{len(report.missing)} missing, {report.queued} queued, {report.tracked} tracked; "
            f"{status.alerts_received} received in {status.batches} batches over {status.runs} runs; "
            f"counts {status.counts}"
        )
        assert report.missing == [] and report.tracked == len(sent) == 1600, why
        assert status.batches > 4, "the batch went as several signals"

        huge = [
            {"labels": {"alertname": "Fine", "instance": "x"}},
            {"labels": {"alertname": "Huge", "instance": "y"}, "annotations": {"dump": "x" * 400_000}},
        ]
        resp = await http.post(f"/api/v2/alerts?scope={scope}", json=huge)
        assert resp.status_code == 413, resp.text
        assert resp.json()["problems"][0].startswith("alert 1: ")
        fine = labels_fingerprint(huge[0]["labels"])
        report = await handle.query(
            MonitoringWorkflow.check_fingerprints, FingerprintCheck(fingerprints=[fine])
        )
        assert report.queued == 0 and report.missing == [fine], "nothing of that request was taken"
        await handle.terminate()


async def test_a_run_that_rebuilds_in_many_parts_works_before_it_hands_over_again(cas_client, monkeypatch):
    """A new run rebuilds the alerts handed over a part per workflow task. With 20 parts, its
    history passes the 40 events at which this server suggests continuing as new before it has
    done anything else; it must still work its queue off instead of handing over again and again."""
    monkeypatch.setattr(monitoring, "REBUILD_PART", 300)
    client = cas_client
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    batches = [CompactBatch.of(f"b{i}", records(i, 100)) for i in range(60)]
    async with monitoring_worker(client, tq):
        for i in range(0, len(batches), 6):
            await asyncio.gather(*(signal_scope(client, tq, scope, policy, b) for b in batches[i : i + 6]))
        handle = client.get_workflow_handle(f"monitoring-{scope}")
        sent = [r["f"] for b in batches for r in b.records()]
        report = await until_routed(handle, sent)
        assert report.missing == [] and report.queued == 0 and report.tracked == len(sent)
        status = await handle.query(MonitoringWorkflow.status)
        assert 2 <= status.runs <= 8, status.runs
        await asyncio.sleep(3)  # idle: a run that hands over right after rebuilding would go on
        later = await handle.query(MonitoringWorkflow.status)
        assert later.runs == status.runs, (status.runs, later.runs)
        await handle.terminate()


async def test_a_running_scope_follows_the_deployment_s_payload_store_across_hand_overs(cas_client):
    """A scope started without the payload store (before it existed) gets the larger hand-over
    limit when ARGUS starts with the store on (`ensure_monitoring` tells it), keeps it through
    its hand-overs, and `status` says so."""
    from temporalio.testing import ActivityEnvironment

    from argus.activities.orchestration import Orchestration
    from argus.models.agents import EnsureMonitoring

    client = cas_client
    tq, scope = f"tq-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    policy = Policy.model_validate({"routing": {"route": ROUTE}})
    async with monitoring_worker(client, tq):
        handle = await signal_scope(client, tq, scope, policy, CompactBatch.of("b0", records(0, 5)))
        before = await handle.query(MonitoringWorkflow.status)
        assert (before.payload_store, before.handover_limit_bytes) == (False, monitoring.MAX_CARRIED)

        await ActivityEnvironment(client=client).run(
            Orchestration(tq, payload_store=True).ensure_monitoring,
            EnsureMonitoring(scope=scope, policy=policy),
        )
        batches = [CompactBatch.of(f"b{i}", records(i, 10)) for i in range(1, 40)]
        for b in batches:  # past the 40 events at which this server suggests a hand-over
            await signal_scope(client, tq, scope, policy, b)
        await until_routed(handle, [r["f"] for b in batches for r in b.records()])
        after = await handle.query(MonitoringWorkflow.status)
        assert after.runs >= 2, "handed over since"
        assert (after.payload_store, after.handover_limit_bytes) == (True, monitoring.MAX_CARRIED_STORED)
        assert after.tracked == 395 and after.capacity == 25_000
        await handle.terminate()
