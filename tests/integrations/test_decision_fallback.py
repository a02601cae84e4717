"""The decision hand-over every approval path uses (`send_decision`): when no worker accepts the
update within moments (ARGUS restarting, workers down), the decision is recorded as the
`decide_signal` signal instead of failing the click."""

from __future__ import annotations

import time

from temporalio.api.enums.v1 import EventType

from argus.models import ApprovalDecision, DecisionKind
from argus.workers.gateway.deciding import ACCEPT_TIMEOUT, send_decision
from tests.integrations.dev_temporal import dev_temporal, queue_name  # noqa: F401


async def test_no_worker_falls_back_to_the_durable_signal(dev_temporal):  # noqa: F811
    # An incident whose worker is down: started on a queue nobody polls.
    wf_id = queue_name("incident-no-worker")
    await dev_temporal.client.start_workflow("IncidentWorkflow", id=wf_id, task_queue=queue_name("nobody"))
    decision = ApprovalDecision(
        approver="alice", decision=DecisionKind.APPROVE, proposal_hash="p1", request_id="click-1"
    )

    started = time.monotonic()
    outcome = await send_decision(dev_temporal.client, wf_id, decision)
    waited = time.monotonic() - started

    assert outcome.status == "queued", outcome
    assert waited < ACCEPT_TIMEOUT + 5, f"the click waited {waited:.1f}s"
    history = await dev_temporal.client.get_workflow_handle(wf_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert [s.signal_name for s in signals] == ["decide_signal"]


async def test_unknown_incident_is_named(dev_temporal):  # noqa: F811
    decision = ApprovalDecision(approver="alice", decision=DecisionKind.APPROVE, proposal_hash="p1")
    outcome = await send_decision(dev_temporal.client, "incident-that-never-was", decision)
    assert outcome.status == "unknown" and "incident-that-never-was" in outcome.detail
