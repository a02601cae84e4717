"""Remediation guard: how an incident reaches the per-service lock and the fleet budget.

Workflows cannot update-with-start another workflow, so these small activities do it with the
worker's own client. They only deliver the request; the entity workflows decide, and their
handlers are idempotent per incident, so a retried activity changes nothing.
"""

from __future__ import annotations

from typing import TypeVar

from temporalio import activity
from temporalio.client import WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from argus.models.remediation import (
    BudgetReply,
    BudgetRequest,
    BudgetState,
    LockRelease,
    LockReply,
    LockRequest,
    LockState,
)

GRANTED_SIGNAL = "remediation_lock_granted"
T = TypeVar("T", LockState, BudgetState)


# The entities live on the task queue of the workers that serve them, and their ids say so: one
# lock per service and one budget per ARGUS deployment (task queue) in the namespace.
def lock_id(task_queue: str, service: str) -> str:
    return f"remediation-lock/{task_queue}/{service}"


def budget_id(task_queue: str) -> str:
    return f"remediation-budget/{task_queue}"


async def _carried(workflow_id: str, model: type[T]) -> T | None:
    """The state a completed entity run left, to start the next run from (None: no such run, or
    it is still running and takes the request itself)."""
    handle = activity.client().get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if desc.status != WorkflowExecutionStatus.COMPLETED:
        return None
    return await handle.result(result_type=model)


class RemediationGuard:
    @activity.defn(name="acquire_remediation_lock")
    async def acquire(self, req: LockRequest) -> LockReply:
        wid = lock_id(activity.info().task_queue, req.service)
        prev = await _carried(wid, LockState)
        start = (
            prev.model_copy(update={"holder": None, "queue": []}) if prev else LockState(service=req.service)
        )
        op = WithStartWorkflowOperation(
            "RemediationLockWorkflow",
            start,
            id=wid,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=activity.info().task_queue,
        )
        return await activity.client().execute_update_with_start_workflow(
            "acquire", req, start_workflow_operation=op, result_type=LockReply
        )

    @activity.defn(name="release_remediation_lock")
    async def release(self, rel: LockRelease) -> str:
        handle = activity.client().get_workflow_handle(lock_id(activity.info().task_queue, rel.service))
        try:
            return await handle.execute_update("release", rel, result_type=str)
        except Exception as exc:
            # The lock workflow completed or was never started: there is nothing to release.
            if "not found" in str(exc).lower() or "already completed" in str(exc).lower():
                return "no lock"
            raise

    @activity.defn(name="reserve_remediation_budget")
    async def reserve(self, req: BudgetRequest) -> BudgetReply:
        wid = budget_id(activity.info().task_queue)
        op = WithStartWorkflowOperation(
            "RemediationBudgetWorkflow",
            await _carried(wid, BudgetState) or BudgetState(),
            id=wid,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=activity.info().task_queue,
        )
        return await activity.client().execute_update_with_start_workflow(
            "reserve", req, start_workflow_operation=op, result_type=BudgetReply
        )
