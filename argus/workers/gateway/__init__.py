"""The HTTP gateway (FastAPI). One router per area; `create_app` puts them together.

A 2xx on an alert endpoint means the alerts are durable in Temporal (see `ingest`). Bad
input gets a 4xx naming the field and the problem, and nothing from that request is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from . import (
    alertmanager_api,
    alerts,
    approvals,
    auth,
    codec,
    heartbeats,
    ops,
    portal,
    slack,
    sources,
    teams,
    tickets_sync,
    traces,
)
from .context import GatewayContext, GatewayError

RouterFactory = Callable[[GatewayContext], APIRouter]
ROUTERS: list[RouterFactory] = [alerts.router, alertmanager_api.router, approvals.router, ops.router]
ROUTERS += [sources.router]
ROUTERS += [teams.router, slack.router, tickets_sync.router]  # people in the loop (docs/people.md)
ROUTERS += [auth.router, codec.router, heartbeats.router, traces.router, portal.router]  # docs/portal*.md


def create_app(ctx: GatewayContext, routers: list[RouterFactory] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.coalescer.start()
        auth.audit_log(ctx).start()
        yield
        await ctx.coalescer.close()
        await auth.audit_log(ctx).close()  # write the audit entries still queued

    app = FastAPI(title="ARGUS gateway", version="0.1.0", lifespan=lifespan)

    @app.exception_handler(GatewayError)
    async def _refusal(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    for make in routers or ROUTERS:
        app.include_router(make(ctx))
    auth.install(app, ctx)  # roles, CSRF and the audit log in front of every router
    return app


def http_server(ctx: GatewayContext) -> uvicorn.Server:
    """The gateway's HTTP server on the configured address (`argus gateway` and `argus up`)."""
    return uvicorn.Server(
        uvicorn.Config(
            create_app(ctx),
            host=ctx.config.gateway.host,
            port=ctx.config.gateway.port,
            log_level="warning",
            access_log=False,  # a line per request would cost more than the request
            timeout_graceful_shutdown=10,  # then stop, even with requests waiting on Temporal
        )
    )


__all__ = ["GatewayContext", "GatewayError", "create_app", "http_server"]
