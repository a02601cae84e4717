"""IncidentWorkflow on the time-skipping server: approvals that wait for days, reminders and
escalation, refused approvals, rollback, manual resolution."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from argus.models import ApprovalDecision, DecisionKind, IncidentStatus, ResolveSignal
from argus.workflows.incident import IncidentWorkflow

from .kit import World, incident_input, make_worker, policy, wait_status


def outbox(rt) -> list[dict]:
    return rt.channels["outbox"].records()


async def test_approval_waits_three_days_with_reminders_and_escalation(ts_env, tmp_path):
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, world, tq)
    async with worker:
        inp = incident_input(policy())
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        s = await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)
        assert s.proposal is not None and s.proposal.playbook == "restart-service"
        assert s.number.startswith("INC-")

        await ts_env.sleep(timedelta(days=3))
        s = await handle.query(IncidentWorkflow.status)
        assert s.status == IncidentStatus.AWAITING_APPROVAL
        assert s.escalation_level == 1, "two unanswered reminders at on-call escalate to the lead"
        kinds = [r["kind"] for r in outbox(rt)]
        assert kinds.count("approval_request") == 1
        assert kinds.count("reminder") >= 3
        escalated = [r for r in outbox(rt) if "escalated to lead" in r["subject"]]
        assert escalated and "dave" in escalated[0]["recipients"]
        assert any(e.kind == "escalated" for e in s.timeline)

        # The lead (an escalation target at the current level) may approve.
        result = await handle.execute_update(
            IncidentWorkflow.decide,
            ApprovalDecision(
                approver="dave", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash, via="test"
            ),
        )
        assert result == "approved by dave"
        final = await handle.result()
    assert final.status == IncidentStatus.CLOSED
    assert final.outcome.value == "fixed"
    assert [e for e in world.executed if not e[1]] == [("restart", False, world.executed[0][2])]
    assert rt.tickets.count() == 1
    assert rt.archive.get(final.number).outcome.value == "fixed"
    kinds = [r["kind"] for r in outbox(rt)]
    assert kinds.count("opened") == 1 and kinds.count("resolved") == 1


async def test_stale_unauthorized_and_double_approval(ts_env, tmp_path):
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, world, tq)
    async with worker:
        inp = incident_input(policy())
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        s = await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)

        with pytest.raises(WorkflowUpdateFailedError) as stale:
            await handle.execute_update(
                IncidentWorkflow.decide,
                ApprovalDecision(
                    approver="alice", decision=DecisionKind.APPROVE, proposal_hash="0000deadbeef0000"
                ),
            )
        assert "stale proposal" in str(stale.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as who:
            await handle.execute_update(
                IncidentWorkflow.decide,
                ApprovalDecision(
                    approver="mallory", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash
                ),
            )
        assert "may not approve" in str(who.value.cause)
        s = await handle.query(IncidentWorkflow.status)
        assert s.decision is None and s.status == IncidentStatus.AWAITING_APPROVAL

        ok = ApprovalDecision(
            approver="erin", groups=["sre"], decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash
        )
        first = await handle.execute_update(IncidentWorkflow.decide, ok, id="click-1")
        again = await handle.execute_update(IncidentWorkflow.decide, ok, id="click-1")
        assert first == again == "approved by erin"
        final = await handle.result()
    assert len([e for e in world.executed if not e[1]]) == 1
    assert sum(1 for e in final.timeline if e.kind == "decision") == 1


async def test_failed_step_rolls_back_in_reverse(ts_env, tmp_path):
    pb_dir = tmp_path / "pb"
    pb_dir.mkdir()
    (pb_dir / "drain.yaml").write_text(
        """
name: drain-and-restart
risk: medium
match: {signatures: [cpu]}
parameters: {service: {type: string}}
steps:
  - name: scale
    run: {type: sandbox, action: scale, args: {service: "{{ service }}", replicas: 6}}
    rollback: {type: sandbox, action: scale, args: {service: "{{ service }}", replicas: 2}}
  - name: drain
    run: {type: sandbox, action: restart, args: {service: "{{ service }}"}}
    rollback: {type: sandbox, action: restart, args: {service: "{{ service }}"}}
  - name: restart
    run: {type: sandbox, action: restart, args: {service: "{{ service }}"}}
"""
    )
    world = World(signature="cpu", fail_steps={"restart"})
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    from . import kit

    orig = kit.test_config
    kit.test_config = lambda tmp, playbooks=None: orig(tmp, pb_dir)
    try:
        worker, _ = make_worker(ts_env.client, tmp_path / "state", world, tq)
    finally:
        kit.test_config = orig
    async with worker:
        inp = incident_input(policy(approval={"auto_approve_max_risk": "medium", "approvers": ["alice"]}))
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        final = await handle.result()
    forward = [e[0] for e in world.executed if not e[1]]
    back = [e[0] for e in world.executed if e[1]]
    assert forward == ["scale", "drain", "restart"]
    assert back == ["drain", "scale"], "compensation runs in reverse order over the completed steps"
    assert final.outcome.value == "rolled_back"
    assert any(e.kind == "remediation_failed" for e in final.timeline)


@asynccontextmanager
async def awaiting_approval(ts_env, tmp_path, world: World):  # type: ignore[no-untyped-def]
    """An incident of the default policy, started on a worker of its own and waiting for approval."""
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, _ = make_worker(ts_env.client, tmp_path, world, tq)
    async with worker:
        inp = incident_input(policy())
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)
        yield handle


async def test_manual_resolve_while_waiting(ts_env, tmp_path):
    world = World()
    async with awaiting_approval(ts_env, tmp_path, world) as handle:
        await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="alice", reason="fixed by hand"))
        final = await handle.result()
    assert final.outcome.value == "fixed_by_other"
    assert world.executed == []


async def test_an_incident_is_investigating_from_its_first_search_attribute_upsert(ts_env, tmp_path):
    """Each upsert is a visibility write (about 10 ms of the dev server's one SQLite writer, at
    20 new incidents a second): the first one already says "investigating", and none repeats it."""
    async with awaiting_approval(ts_env, tmp_path, World()) as handle:
        statuses = []
        async for e in handle.fetch_history_events():
            if e.HasField("upsert_workflow_search_attributes_event_attributes"):
                fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
                if "IncidentStatus" in fields:
                    statuses.append(fields["IncidentStatus"].data.decode().strip('"'))
        desc = await handle.describe()
        await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="alice", reason="fixed by hand"))
        await handle.result()
    assert statuses[:2] == ["investigating", "awaiting_approval"], statuses
    assert desc.typed_search_attributes and any(
        p.key.name == "IncidentNumber" and p.value for p in desc.typed_search_attributes
    )
