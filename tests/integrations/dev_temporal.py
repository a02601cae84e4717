"""A real Temporal dev server (the `temporal` binary on a SQLite file under a temp dir)
for gateway and CLI tests that start workflows on queues of their own.

Not the time-skipping server: these tests leave workflows open when they end (a heartbeat check,
a monitoring scope, an incident waiting for approval), which on the shared time-skipping server
would hold its clock for every later test (tests/workflows/queue_cleanup.py). One dev server
per session; it is stopped, with everything on it, at the end.

Import the fixture into a test module: `from tests.integrations.dev_temporal import dev_temporal`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest_asyncio
from temporalio.client import Client, WorkflowHandle

from argus.models import IncidentState, IncidentStatus
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace


@dataclass
class DevTemporal:
    address: str
    client: Client


@pytest_asyncio.fixture(scope="session")
async def dev_temporal(tmp_path_factory):
    dev = DevServer(tmp_path_factory.mktemp("temporal-dev"), "default", port=free_port(), ui_port=None)
    await asyncio.to_thread(dev.start)
    try:
        await wait_for_namespace(dev.address, "default")
        yield DevTemporal(dev.address, await connect(dev.address, "default"))
    finally:
        await asyncio.to_thread(dev.stop)


def queue_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_until(handle: WorkflowHandle, pred, what: str, timeout: float = 60.0) -> IncidentState:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            s = await handle.query("status", result_type=IncidentState)
            if pred(s):
                return s
        except Exception as exc:  # not started yet
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what} (last error: {last})")


def awaiting_approval(s: IncidentState) -> bool:
    return s.status == IncidentStatus.AWAITING_APPROVAL and s.proposal is not None
