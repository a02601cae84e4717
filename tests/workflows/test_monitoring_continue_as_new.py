"""A monitoring scope under a stream of batches continues as new many times on a real dev
server (asked to suggest it every 40 events), and every batch signalled is applied once:
the hand-over carries the tracked alerts, the batches not yet applied and the run count."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from argus.models import Policy
from argus.models.agents import FingerprintCheck
from argus.models.alert import CompactBatch, labels_fingerprint
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace
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
        report = None
        for _ in range(300):
            report = await handle.query(
                MonitoringWorkflow.check_fingerprints,
                FingerprintCheck(fingerprints=sent),
                rpc_timeout=timedelta(seconds=10),
            )
            if report.queued == 0 and not report.missing:
                break
            await asyncio.sleep(0.1)
        assert report is not None and report.missing == [] and report.tracked == len(sent)

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
        report = None
        for _ in range(300):
            report = await handle.query(
                MonitoringWorkflow.check_fingerprints, FingerprintCheck(fingerprints=sent)
            )
            if report.queued == 0 and not report.missing:
                break
            await asyncio.sleep(0.1)
        assert report is not None and report.missing == [] and report.tracked == len(sent)
        await asyncio.sleep(1)  # a run spinning on its hand-over would keep trying meanwhile
        status = await handle.query(MonitoringWorkflow.status)
        assert status.runs == 1 and status.batches == len(batches)
        tries = [r for r in caplog.records if "too large to continue as new" in r.getMessage()]
        # Once the backlog had drained; not after each of its chunks (six at least).
        assert len(tries) == 1, len(tries)
        await handle.terminate()
