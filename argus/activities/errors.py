"""How integration failures become Temporal activity failures (retryable or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from argus.integrations.base import IntegrationError, PermanentError

T = TypeVar("T")


def as_activity_error(exc: Exception, kind: str) -> ApplicationError:
    if isinstance(exc, PermanentError):
        return ApplicationError(str(exc), type=f"{kind}Refused", non_retryable=True)
    delay = (
        timedelta(seconds=exc.retry_after) if isinstance(exc, IntegrationError) and exc.retry_after else None
    )
    return ApplicationError(str(exc), type=f"{kind}Unavailable", next_retry_delay=delay)


async def call_integration(kind: str, fn: Callable[..., T], *args: object) -> T:
    """Run a blocking integration call in a thread, mapping its errors for Temporal's retries."""
    try:
        return await asyncio.to_thread(fn, *args)
    except IntegrationError as exc:
        raise as_activity_error(exc, kind) from exc
