"""Determinism: a finished incident's real history replays against the workflow code.

A replay failure means workflow code does something that is not deterministic (reads a
clock, draws randomness, iterates an unordered set into commands), which would wedge every
running incident after a worker restart.
"""

from __future__ import annotations

import uuid

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from argus.models import ApprovalDecision, DecisionKind, IncidentStatus
from argus.workers.wiring import WORKFLOWS
from argus.workflows.incident import IncidentWorkflow

from .kit import World, incident_input, make_worker, policy
from .test_incident_workflow import wait_status


async def test_incident_history_replays(ts_env, tmp_path):
    world = World(signature="cpu", fail_steps=set())
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, world, tq)
    async with worker:
        inp = incident_input(policy())
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        s = await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)
        await handle.execute_update(
            IncidentWorkflow.decide,
            ApprovalDecision(approver="alice", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash),
        )
        await handle.result()
    history = await handle.fetch_history()
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history
    )
    assert result.replay_failure is None
