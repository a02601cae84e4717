"""What the chat approval routers (Teams, Slack) share: who a person is, whether they may decide,
and handing the decision to the incident without waiting for it.

Every path ends in the same `decide` workflow update, whose id is the click's id (card or message,
person, verb), so a double click or a redelivered request applies once. The gateway waits only
until the workflow accepted the update (its validator refuses stale proposals and people who may
not decide), at most `ACCEPT_TIMEOUT`; when no worker answers in time it falls back to the
`decide_signal` signal, which the workflow checks the same way when it runs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from argus.integrations.oncall import Directory
from argus.models import ApprovalDecision, ArgusConfig

from ..settings import Secrets, load_secrets, state_dir
from ..vendors import build_directory

log = logging.getLogger("argus.gateway.approvals")

ACCEPT_TIMEOUT = 1.5  # seconds; Teams wants its answer within a few, Slack within 3


@dataclass
class Outcome:
    status: str  # accepted | queued | refused | unknown | closed
    detail: str = ""


def people_context(config: ArgusConfig, extras: dict[str, Any]) -> tuple[Secrets, Directory]:
    """Secrets and the people directory: from the gateway's extras, else loaded once here."""
    if "secrets" not in extras:
        extras["secrets"] = load_secrets(config)
    if "directory" not in extras:
        extras["directory"] = build_directory(config, state_dir(config))
    return extras["secrets"], extras["directory"]


def may_decide(config: ArgusConfig, directory: Directory, person: str, at: datetime) -> list[str] | None:
    """The person's groups if the policy lets them decide at `at` (approver, approver group,
    on call, or a target of an escalation level), else None. The workflow checks again."""
    groups = directory.groups_of(person, at)
    pol = config.policy.approval
    if not pol.approvers and not pol.approver_groups:
        return groups
    if person in pol.approvers or set(groups) & set(pol.approver_groups):
        return groups
    targets = [t for _, lvl in config.policy.escalation.all_levels() for t in lvl.targets]
    if person in directory.resolve(targets, at).people:
        return groups
    return None


async def send_decision(client: Client, workflow_id: str, decision: ApprovalDecision) -> Outcome:
    handle = client.get_workflow_handle(workflow_id)
    try:
        # A deadline on the RPC, not asyncio.wait_for: the SDK turns a cancelled update call into
        # WorkflowUpdateRPCTimeoutOrCancelledError, which wait_for would pass on as is.
        update = await handle.start_update(
            "decide",
            decision,
            id=decision.request_id,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=str,
            rpc_timeout=timedelta(seconds=ACCEPT_TIMEOUT),
        )
        # Past ACCEPTED the outcome is usually already known (the handler is synchronous): a
        # validator's refusal comes back as the outcome. Never wait for more than a moment.
        try:
            await asyncio.wait_for(update.result(), timeout=0.5)
        except TimeoutError:
            pass
        return Outcome("accepted")
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        return Outcome("refused", str(getattr(cause, "message", None) or cause or exc))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            if "completed" in exc.message.lower():
                return Outcome("closed", "the incident is already closed")
            return Outcome("unknown", f"unknown incident {workflow_id!r}")
        log.warning("update to %s failed (%s); falling back to the signal", workflow_id, exc.message)
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        log.warning(
            "no worker accepted the decision for %s in %.1fs; sending it as a signal",
            workflow_id,
            ACCEPT_TIMEOUT,
        )
    try:
        await handle.signal("decide_signal", decision)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Outcome("unknown", f"unknown incident {workflow_id!r}")
        return Outcome("unavailable", f"ARGUS could not reach the incident ({exc.message})")
    return Outcome("queued", "recorded; the incident applies it when its worker is back")


def now() -> datetime:
    return datetime.now(UTC)
