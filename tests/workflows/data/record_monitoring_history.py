"""Records a MonitoringWorkflow history with the code of the checkout it runs from, for
tests/workflows/test_monitoring_replay.py: a run that starts from a carried state, gets batches
(which cancel its wake-up timers) and routes a group after group_wait.

    PYTHONPATH=<checkout> .venv/bin/python tests/workflows/data/record_monitoring_history.py OUT.json
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from argus.activities.orchestration import Orchestration
from argus.models import Matcher, Policy, SilenceExpire, SilenceRequest, SilenceUpdate
from argus.models.agents import AlertListing, AlertQuery, MonitoringInput
from argus.models.alert import CompactBatch, labels_fingerprint
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace
from argus.workflows.monitoring import MonitoringState, MonitoringWorkflow, pack_state

ROUTE = {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "2s", "group_interval": "1h"}


def records(batch: int, n: int) -> list[dict]:
    t = datetime.now(UTC).timestamp()
    out = []
    for i in range(n):
        labels = {"alertname": f"Disk{batch % 2}", "instance": f"host-{batch}-{i}"}
        out.append({"f": labels_fingerprint(labels), "l": labels, "s": "f", "t": t})
    return out


async def silences_and_listings(handle, step: int) -> None:  # type: ignore[no-untyped-def]
    """A silence added, changed in place, replaced and expired, and alerts listed between
    batches (a query must leave the run's decisions as they would be without it)."""
    matchers = [Matcher.parse('instance="host-0-1"')]
    if step == 1:
        await handle.execute_update(
            "add_silence", SilenceRequest(matchers=matchers, created_by="rita", request_id="s1")
        )
    elif step == 2:
        await handle.query("alerts", AlertQuery(), result_type=AlertListing)
        change = SilenceRequest(
            matchers=matchers, created_by="rita", duration=timedelta(hours=3), request_id="s2"
        )
        s = await handle.execute_update("update_silence", SilenceUpdate(silence_id="sil-s1", change=change))
        change = SilenceRequest(
            matchers=[Matcher.parse('instance="host-1-1"')], created_by="rita", request_id="s3"
        )
        await handle.execute_update("update_silence", SilenceUpdate(silence_id=s["id"], change=change))
    elif step == 3:
        await handle.query("alerts", AlertQuery(silenced=False), result_type=AlertListing)
        await handle.execute_update("expire_silence", SilenceExpire(silence_id="sil-s3", by="rita"))


async def record(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dev = DevServer(Path(tmp) / "temporal", "default", port=free_port(), ui_port=None)
        await asyncio.to_thread(dev.start)
        try:
            await wait_for_namespace(dev.address, "default")
            client = await connect(dev.address, "default")
            tq, scope = f"tq-{uuid.uuid4().hex[:6]}", "replay"
            # Disk0 inhibits Disk1: the live inhibition sources (Router.live_sources) at work.
            inhibit = {"source_matchers": ['alertname="Disk0"'], "target_matchers": ['alertname="Disk1"']}
            policy = Policy.model_validate({"routing": {"route": ROUTE, "inhibit_rules": [inhibit]}})
            async with Worker(
                client, task_queue=tq, workflows=[MonitoringWorkflow], activities=[Orchestration().next_chunk]
            ):
                handle = await client.start_workflow(
                    MonitoringWorkflow.run,
                    MonitoringInput(scope=scope, policy=policy, carried=pack_state(MonitoringState())),
                    id=f"monitoring-{scope}-{uuid.uuid4().hex[:6]}",
                    task_queue=tq,
                )
                for i in range(6):
                    await handle.signal("ingest_compact", CompactBatch.of(f"b{i}", records(i, 5)))
                    await asyncio.sleep(0.7)
                    await silences_and_listings(handle, i)
                # group_wait passes and the groups open incidents: their child workflows start
                # (no worker here runs them; the monitoring run does not wait for them).
                await asyncio.sleep(4)
                await handle.terminate()
            desc = await handle.describe()
            assert desc.status == WorkflowExecutionStatus.TERMINATED
            history = await handle.fetch_history()
            await asyncio.to_thread(out.write_text, history.to_json())
        finally:
            await asyncio.to_thread(dev.stop)


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1])))
