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
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from argus.activities.orchestration import Orchestration
from argus.models import Policy
from argus.models.agents import MonitoringInput
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


async def record(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dev = DevServer(Path(tmp) / "temporal", "default", port=free_port(), ui_port=None)
        await asyncio.to_thread(dev.start)
        try:
            await wait_for_namespace(dev.address, "default")
            client = await connect(dev.address, "default")
            tq, scope = f"tq-{uuid.uuid4().hex[:6]}", "replay"
            policy = Policy.model_validate({"routing": {"route": ROUTE}})
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
