"""Remediation guard: how an incident reaches the per-service lock and the fleet budget.

Workflows cannot update-with-start another workflow, so these small activities do it with the
worker's own client. They only deliver the request; the entity workflows decide, and their
handlers are idempotent per incident, so a retried activity changes nothing.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

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


# The entities live on the task queue of the workers that serve them, and their ids say so: one
# lock per service and one budget per ARGUS deployment (task queue) in the namespace.
def lock_id(task_queue: str, service: str) -> str:
    return f"remediation-lock/{task_queue}/{service}"


def budget_id(task_queue: str) -> str:
    return f"remediation-budget/{task_queue}"


class RemediationGuard:
    @activity.defn(name="acquire_remediation_lock")
    async def acquire(self, req: LockRequest) -> LockReply:
        op = WithStartWorkflowOperation(
            "RemediationLockWorkflow",
            LockState(service=req.service),
            id=lock_id(activity.info().task_queue, req.service),
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
        op = WithStartWorkflowOperation(
            "RemediationBudgetWorkflow",
            BudgetState(),
            id=budget_id(activity.info().task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=activity.info().task_queue,
        )
        return await activity.client().execute_update_with_start_workflow(
            "reserve", req, start_workflow_operation=op, result_type=BudgetReply
        )
