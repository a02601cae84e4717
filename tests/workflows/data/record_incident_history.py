"""Records an IncidentWorkflow history with the code of the checkout it runs from, for
tests/workflows/test_replay.py: an incident that opens, is analysed, gets a proposal approved,
runs the playbook, verifies recovery over several checks and closes.

    cd tests && PYTHONPATH=.. ../.venv/bin/python -m workflows.data.record_incident_history OUT.json
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from argus.models import ApprovalDecision, DecisionKind, IncidentStatus
from argus.workflows.incident import IncidentWorkflow

from ..kit import World, incident_input, make_worker, policy, wait_status
from ..queue_cleanup import own_time_skipping_env


async def record(env: WorkflowEnvironment, tmp: Path) -> WorkflowHistory:
    world = World(signature="cpu", fail_steps=set())
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(env.client, tmp, world, tq)
    async with worker:
        inp = incident_input(policy())
        handle = await env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq)
        s = await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)
        assert s.proposal is not None
        await handle.execute_update(
            IncidentWorkflow.decide,
            ApprovalDecision(approver="alice", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash),
        )
        await handle.result()
    return await handle.fetch_history()


async def main(out: Path) -> None:
    async for env in own_time_skipping_env():
        with tempfile.TemporaryDirectory() as tmp:
            history = await record(env, Path(tmp))
        await asyncio.to_thread(out.write_text, history.to_json())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
