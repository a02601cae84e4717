"""Activity options shared by the workflows: timeouts and retry policies per kind of effect."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

# Reads and analysis: retry a few times quickly.
QUICK = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
    ),
}
# Quick steps that only read, or write idempotently to ARGUS's own store, as local activities:
# they run inside the workflow task, so each costs one marker event instead of three events, a
# task-queue dispatch and another workflow task (IncidentWorkflow._quick_step).
LOCAL = {"start_to_close_timeout": timedelta(seconds=60), "retry_policy": QUICK["retry_policy"]}
# Effects on outside systems (tickets, messages): keep trying for a while; the key makes it once.
EFFECT = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=8,
        non_retryable_error_types=["TicketRefused", "PublishRefused"],
    ),
}
# Remediation steps: few attempts, never retried when refused or failed for good.
# The Executor heartbeats every 2 s, so a worker that dies mid-step is noticed in 15 s and the
# retry (on any worker) reads the target's state before acting again.
# On cancellation a step is waited for, not abandoned: its real outcome decides what to compensate.
STEP = {
    "start_to_close_timeout": timedelta(minutes=5),
    "heartbeat_timeout": timedelta(seconds=15),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=4,
        non_retryable_error_types=["StepRefused", "StepFailed", "OutcomeUnknown"],
    ),
}
# Compensation must happen: retry far longer than forward steps.
COMPENSATE = {
    "start_to_close_timeout": timedelta(minutes=5),
    "heartbeat_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=50,
        non_retryable_error_types=["StepRefused", "OutcomeUnknown"],
    ),
}
RCA = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
}
