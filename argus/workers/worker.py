"""The ARGUS worker: every workflow and every micro-agent on one task queue.

Scale out by running more of these against the same Temporal server and task queue.
"""

from __future__ import annotations

import asyncio
import compileall
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

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


def make_worker(client: Client, rt: Runtime, task_queue: str | None = None) -> Worker:
    ensure_bytecode()
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
