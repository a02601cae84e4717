"""A gateway app on the time-skipping server, with a worker serving its monitoring scopes:
what the endpoint tests in this folder post to."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.integrations.sql import sqlite_url
from argus.models import ArgusConfig
from argus.workers.gateway import GatewayContext, create_app


def gateway_context(config: ArgusConfig, client, tmp_path: Path, token: str | None = None) -> GatewayContext:  # type: ignore[no-untyped-def]
    """A gateway on this Temporal client, with its stores in `tmp_path`."""
    return GatewayContext(
        config,
        client,
        IncidentArchive(sqlite_url(tmp_path / "a.db")),
        LinkSigner(b"k" * 32),
        NonceStore(tmp_path / "n.db"),
        token=token,
    )


@contextlib.asynccontextmanager
async def gateway_app(
    ts_env, tmp_path: Path, **gateway: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayContext]]:  # type: ignore[no-untyped-def]
    from tests.workflows.kit import World, make_worker

    # A worker serves the scope's MonitoringWorkflow: a workflow task nobody takes would hold the
    # shared time-skipping server's clock still for every later test.
    queue = f"gw-{uuid.uuid4().hex[:8]}"
    worker, _ = make_worker(ts_env.client, tmp_path / "worker", World(), queue)
    config = ArgusConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "gateway": {"flush_interval": "1ms", **gateway},
            # One worker serves everything here: the scopes' workflows run on the main queue.
            # The test's Temporal client has no payload store, so the scopes it starts may not
            # count on one (every process of a deployment shares the setting).
            "temporal": {
                "task_queue": queue,
                "monitoring_task_queue": queue,
                "payload_store": {"enabled": False},
            },
        }
    )
    ctx = gateway_context(config, ts_env.client, tmp_path)
    app = create_app(ctx)
    ctx.coalescer.start()
    try:
        async with (
            worker,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://argus") as http,
        ):
            yield http, ctx
    finally:
        await ctx.coalescer.close()
