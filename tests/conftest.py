"""Shared fixtures: Temporal environments from the installed binaries (no downloads)."""

from __future__ import annotations

import pytest_asyncio

from tests.workflows.queue_cleanup import own_time_skipping_env


@pytest_asyncio.fixture
async def ts_env():
    """A Java time-skipping test server of the test's own: timers of days run in milliseconds.

    One per test (about a second to start) because the server's clock is shared by everything
    on it: a workflow an earlier test left with a pending task stops time skipping for every
    later one (see tests/workflows/queue_cleanup.py)."""
    async for env in own_time_skipping_env():
        yield env
