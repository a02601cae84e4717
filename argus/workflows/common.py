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
STEP = {
    "start_to_close_timeout": timedelta(minutes=5),
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
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=50
    ),
}
RCA = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
}
