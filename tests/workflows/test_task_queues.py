"""The monitoring scopes poll a task queue of their own; the incidents they open run on the
main one. Through the gateway's signal-with-start and the workers `argus worker` runs."""

from __future__ import annotations

import subprocess
import sys
import uuid

from argus.analysis.routing import group_key, incident_id_for, resolve_routes
from argus.models import ArgusConfig
from argus.models.alert import CompactBatch, alert_to_compact
from argus.models.config import WorkerQueues
from argus.workers.settings import Secrets
from argus.workers.wiring import build_runtime
from argus.workers.worker import make_workers
from tests.e2e.stackkit import eventually
from tests.unit.gateway_kit import gateway_context

from . import kit
from .kit import alert, policy


def split_config(tmp, queue: str, monitoring_queue: str | None = None) -> ArgusConfig:
    base = kit.test_config(tmp).model_dump(mode="json", by_alias=True)
    base["temporal"] = {**base["temporal"], "task_queue": queue, "monitoring_task_queue": monitoring_queue}
    route = {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "0s"}
    base["policy"] = policy(
        routing={"route": route}, phases={"monitoring": True, "incident": True, "docgen": False}
    ).model_dump(mode="json", by_alias=True)
    return ArgusConfig.model_validate(base)


async def test_scope_on_its_own_queue_opens_its_incident_on_the_main_one(ts_env, tmp_path) -> None:
    queue = f"split-{uuid.uuid4().hex[:8]}"
    config = split_config(tmp_path, queue)
    rt = build_runtime(config, Secrets({"link_secret": "x" * 32}))
    # As `argus up` runs them: the main worker here, the monitoring one as if in its own process.
    workers = make_workers(ts_env.client, rt, WorkerQueues.MAIN) + make_workers(
        ts_env.client, rt, WorkerQueues.MONITORING
    )
    assert [w.task_queue for w in workers] == [queue, f"{queue}-monitoring"]

    gateway = gateway_context(config, ts_env.client, tmp_path)
    one = alert("DiskFull", "billing")
    route = resolve_routes(config.policy.routing.route, one.labels)[0]
    incident_id = incident_id_for("split", group_key(route, {"alertname": "DiskFull"}))
    async with workers[0], workers[1]:
        await gateway.send_batch("split", CompactBatch.of("b1", [alert_to_compact(one)]))
        scope = await ts_env.client.get_workflow_handle("monitoring-split").describe()
        incident = ts_env.client.get_workflow_handle(incident_id)
        opened = await eventually(incident.describe, timeout=10, interval=0.05, what="the scope's incident")
        assert scope.task_queue == f"{queue}-monitoring"
        assert opened.task_queue == queue
        await incident.terminate("test over")
        await ts_env.client.get_workflow_handle("monitoring-split").terminate("test over")


async def test_a_monitoring_queue_equal_to_the_main_one_means_one_worker(ts_env, tmp_path) -> None:
    for queues in WorkerQueues:
        queue = f"one-{queues.value}"  # one queue each: a client registers one worker per queue
        config = split_config(tmp_path, queue, monitoring_queue=queue)
        rt = build_runtime(config, Secrets({"link_secret": "x" * 32}))
        # Whichever queues are asked for, the one queue everything is on.
        assert [w.task_queue for w in make_workers(ts_env.client, rt, queues)] == [queue]


def test_argus_worker_refuses_an_unknown_queue_choice() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argus", "worker", "--queues", "incidents"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--queues" in done.stderr and "'incidents' is not one of" in done.stderr
