"""The ARGUS worker: every workflow and every micro-agent on the main task queue, and the
monitoring scopes' workflows on a queue of their own (`temporal.monitoring_task_queue`).

Scale out by running more of these against the same Temporal server and task queues.
"""

from __future__ import annotations

import asyncio
import compileall
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from argus.models.config import WorkerQueues
from argus.workflows.monitoring import MonitoringWorkflow

from .wiring import WORKFLOWS, Runtime, build_activities

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def ensure_bytecode(package_dir: Path = PACKAGE_DIR) -> None:
    """Write the package's bytecode cache if the interpreter does not (PYTHONDONTWRITEBYTECODE,
    usual in container images). The workflow sandbox imports every workflow module afresh for
    each new workflow run; without a cache each import compiles the module's source again, which
    took a quarter of the worker's CPU at 20 new incidents a second. A package that cannot be
    written to (installed read-only) was compiled by its installer."""
    if sys.dont_write_bytecode:
        compileall.compile_dir(package_dir, quiet=2)


def make_worker(
    client: Client,
    rt: Runtime,
    task_queue: str | None = None,
    workflows: Sequence[type] = WORKFLOWS,
    activities: list | None = None,
) -> Worker:
    ensure_bytecode()
    return Worker(
        client,
        task_queue=task_queue or rt.config.temporal.task_queue,
        workflows=workflows,
        activities=activities if activities is not None else build_activities(rt),
        # Activities are async; the pool only serves the SDK's sync bookkeeping and to_thread calls.
        activity_executor=ThreadPoolExecutor(max_workers=64),
        max_concurrent_activities=64,
        max_concurrent_workflow_tasks=200,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


def make_workers(client: Client, rt: Runtime, queues: WorkerQueues = WorkerQueues.ALL) -> list[Worker]:
    """The main worker (every workflow, so scopes started before the queues were split go on
    running) and, unless configured onto the same queue, the monitoring scopes' worker: their
    workflow tasks then never queue behind those of the incident pipelines. In the latency phase
    of bench/ingest_bench.py (20 new incidents a second after a burst) p99 from alert to incident
    was 0.36-0.89 s in 8 runs this way, 0.58-1.59 s on one queue. `queues` picks one of the two
    (a process for each, `argus worker --queues`)."""
    t = rt.config.temporal
    activities = build_activities(rt)
    split = t.monitoring_queue != t.task_queue
    workers = []
    if queues in (WorkerQueues.ALL, WorkerQueues.MAIN) or not split:
        workers.append(make_worker(client, rt, activities=activities))
    if queues in (WorkerQueues.ALL, WorkerQueues.MONITORING) and split:
        # Its own activities (pull, evaluate, notify, the backlog's no-op) run on its queue too.
        workers.append(make_worker(client, rt, t.monitoring_queue, [MonitoringWorkflow], activities))
    return workers


async def run_scrapers(rt: Runtime, stop: asyncio.Event) -> None:
    await asyncio.gather(*(s.run(stop) for s in rt.scrapers))
