"""Activity options shared by the workflows: timeouts and retry policies per kind of effect."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Reads and analysis: retry a few times quickly.
QUICK = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
    ),
}
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
STEP = {
    "start_to_close_timeout": timedelta(minutes=5),
    "heartbeat_timeout": timedelta(seconds=15),
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
