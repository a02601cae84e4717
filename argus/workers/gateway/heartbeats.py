"""Heartbeat check-ins: `POST /api/v1/heartbeats/<name>` from a job or daemon.

    curl -fsS -X POST https://argus.example/api/v1/heartbeats/nightly-backup            # ran fine
    curl -fsS -X POST 'https://argus.example/api/v1/heartbeats/nightly-backup?status=fail'
    curl -fsS -X POST -H 'content-type: application/json' \\
         -d '{"status": "fail", "exit_code": 3, "message": "disk full"}' .../nightly-backup

A 2xx means the check-in is durable in the check's HeartbeatWorkflow (signal-with-start, so
the first ping also creates it). An unknown check is a 404 naming the known ones; a bad status
or body a 422 naming the field; nothing of a refused ping is kept.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from argus.integrations.normalizers.common import problems_from
from argus.models import ArgusConfig
from argus.models.heartbeats import HeartbeatCheck, HeartbeatInput, HeartbeatPing, HeartbeatStatus
from argus.workflows.heartbeat import heartbeat_workflow_id

from .context import REJECTED, GatewayContext, GatewayError


def heartbeat_input(config: ArgusConfig, check: HeartbeatCheck) -> HeartbeatInput:
    return HeartbeatInput(check=check, scope=config.heartbeats.scope, refresh=config.heartbeats.refresh)


async def ensure_checks(client: Client, config: ArgusConfig) -> list[str]:
    """Start a HeartbeatWorkflow for every configured check that has none (so a job that never
    pings is noticed too) and hand running ones their current configuration."""
    started = []
    for check in config.heartbeats.checks:
        handle = await client.start_workflow(
            "HeartbeatWorkflow",
            heartbeat_input(config, check),
            id=heartbeat_workflow_id(check.name),
            task_queue=config.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await handle.signal("reconfigure", check)
        started.append(handle.id)
    return started


async def statuses(
    client: Client, config: ArgusConfig
) -> list[tuple[HeartbeatCheck, HeartbeatStatus | None, str]]:
    """(check, live status or None, why not) for every configured check."""
    out = []
    for check in config.heartbeats.checks:
        try:
            st = await client.get_workflow_handle(heartbeat_workflow_id(check.name)).query(
                "status", result_type=HeartbeatStatus
            )
            out.append((check, st, ""))
        except Exception as exc:  # not started yet, or no worker to answer
            out.append((check, None, str(exc)[:200]))
    return out


async def _ping_from(request: Request, ctx: GatewayContext) -> HeartbeatPing:
    body = await ctx.body(request, "heartbeat")
    data: dict = {}
    ctype = request.headers.get("content-type", "")
    if body.strip():
        if "json" in ctype:
            try:
                parsed = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise GatewayError(400, f"body is not valid JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise GatewayError(422, "invalid check-in", ["body: expected a JSON object"])
            data.update(parsed)
        else:  # a job may post its last output lines as plain text
            data["message"] = body.decode("utf-8", errors="replace")[-2000:]
    q = request.query_params
    if "status" in q:
        data["status"] = q["status"]
    if "exit_code" in q:
        data["exit_code"] = q["exit_code"]
    if data.get("status") is None and data.get("exit_code") not in (None, "", 0, "0"):
        data["status"] = "fail"  # a non-zero exit code is a failure unless the job says otherwise
    data["at"] = datetime.now(UTC)
    data["ping_id"] = request.headers.get("x-request-id") or uuid.uuid4().hex
    data["source"] = request.client.host if request.client else ""
    try:
        return HeartbeatPing.model_validate(data)
    except ValidationError as exc:
        raise GatewayError(422, "invalid check-in; nothing was recorded", problems_from(exc)) from exc


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["heartbeats"])
    cfg = ctx.config

    def check_named(name: str) -> HeartbeatCheck:
        check = cfg.heartbeats.get(name)
        if check is None:
            known = [c.name for c in cfg.heartbeats.checks]
            REJECTED.labels("heartbeat", "unknown").inc()
            raise GatewayError(404, f"no heartbeat check named {name!r} (configured: {known})")
        return check

    @r.post("/api/v1/heartbeats/{name}", summary="Check in: the job ran (?status=fail when it failed)")
    async def checkin(name: str, request: Request) -> JSONResponse:
        check = check_named(name)
        ping = await _ping_from(request, ctx)
        request.state.audit_target = f"heartbeat {name}"
        request.state.audit_detail = f"status {ping.status.value}"
        try:
            await ctx.client.start_workflow(
                "HeartbeatWorkflow",
                heartbeat_input(cfg, check),
                id=heartbeat_workflow_id(name),
                task_queue=cfg.temporal.task_queue,
                start_signal="checkin",
                start_signal_args=[ping],
            )
        except RPCError as exc:
            REJECTED.labels("heartbeat", "temporal").inc()
            raise GatewayError(503, f"Temporal did not accept the check-in, retry: {exc.message}") from exc
        return JSONResponse({"check": name, "status": ping.status.value, "ping_id": ping.ping_id})

    @r.get("/api/v1/heartbeats", summary="Every configured check and its state")
    async def list_checks() -> JSONResponse:
        rows = await statuses(ctx.client, cfg)
        return JSONResponse(
            [
                {
                    "check": c.model_dump(mode="json"),
                    "status": st.model_dump(mode="json") if st else None,
                    "unavailable": why,
                }
                for c, st, why in rows
            ]
        )

    @r.get("/api/v1/heartbeats/{name}", summary="One check's state")
    async def one(name: str) -> JSONResponse:
        check_named(name)
        try:
            st = await ctx.client.get_workflow_handle(heartbeat_workflow_id(name)).query(
                "status", result_type=HeartbeatStatus
            )
        except Exception as exc:
            raise GatewayError(503, f"heartbeat {name!r} is not answering: {exc}") from exc
        return JSONResponse(st.model_dump(mode="json"))

    return r
