"""The monitoring scopes poll a task queue of their own; the incidents they open run on the
main one. Through the gateway's signal-with-start and the workers `argus worker` runs."""

from __future__ import annotations

import asyncio
import uuid

from argus.analysis.routing import group_key, incident_id_for, resolve_routes
from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.integrations.sql import sqlite_url
from argus.models import ArgusConfig, Route
from argus.models.alert import CompactBatch, alert_to_compact
from argus.workers.gateway import GatewayContext
from argus.workers.settings import Secrets
from argus.workers.wiring import build_runtime
from argus.workers.worker import make_workers

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
    workers = make_workers(ts_env.client, rt)
    assert [w.task_queue for w in workers] == [queue, f"{queue}-monitoring"]

    gateway = GatewayContext(
        config,
        ts_env.client,
        IncidentArchive(sqlite_url(tmp_path / "a.db")),
        LinkSigner(b"k" * 32),
        NonceStore(tmp_path / "n.db"),
    )
    one = alert("DiskFull", "billing")
    route = resolve_routes(Route.model_validate(config.policy.routing.route.model_dump()), one.labels)[0]
    incident_id = incident_id_for("split", group_key(route, {"alertname": "DiskFull"}))
    async with workers[0], workers[1]:
        await gateway.send_batch("split", CompactBatch.of("b1", [alert_to_compact(one)]))
        scope = await ts_env.client.get_workflow_handle("monitoring-split").describe()
        incident = ts_env.client.get_workflow_handle(incident_id)
        for _ in range(200):
            try:
                opened = await incident.describe()
                break
            except Exception:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the scope opened no incident")
        assert scope.task_queue == f"{queue}-monitoring"
        assert opened.task_queue == queue
        await incident.terminate("test over")
        await ts_env.client.get_workflow_handle("monitoring-split").terminate("test over")


async def test_a_monitoring_queue_equal_to_the_main_one_means_one_worker(ts_env, tmp_path) -> None:
    config = split_config(tmp_path, "one", monitoring_queue="one")
    workers = make_workers(ts_env.client, build_runtime(config, Secrets({"link_secret": "x" * 32})))
    assert [w.task_queue for w in workers] == ["one"]
