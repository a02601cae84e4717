"""The ARGUS worker: every workflow and every micro-agent on one task queue.

Scale out by running more of these against the same Temporal server and task queue.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .wiring import WORKFLOWS, Runtime, build_activities


def make_worker(client: Client, rt: Runtime, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or rt.config.temporal.task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(rt),
        # Activities are async; the pool only serves the SDK's sync bookkeeping and to_thread calls.
        activity_executor=ThreadPoolExecutor(max_workers=64),
        max_concurrent_activities=64,
        max_concurrent_workflow_tasks=200,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_scrapers(rt: Runtime, stop: asyncio.Event) -> None:
    await asyncio.gather(*(s.run(stop) for s in rt.scrapers))
