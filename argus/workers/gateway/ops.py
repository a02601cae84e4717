"""Health and metrics endpoints."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from .context import GatewayContext


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/healthz")
    async def healthz() -> JSONResponse:
        started = time.perf_counter()
        try:
            await ctx.client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=2)
            )
            ok, detail = True, "temporal reachable"
        except Exception as exc:
            ok, detail = False, f"temporal unreachable: {exc}"
        body = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}
        return JSONResponse(body, status_code=200 if ok else 503)

    @r.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return r
