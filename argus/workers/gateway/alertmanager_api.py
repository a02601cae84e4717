"""Alertmanager's v2 API on the gateway, beyond ingest (`alerts.py`): `amtool
--alertmanager.url=<gateway>` and Grafana's Alertmanager data source list ARGUS's alerts, read its
status, and add, list, change and expire its silences.

Alerts and silences belong to a monitoring scope: `?scope=` picks one (default "default"). With
auth on, a silence's author is whoever the token or session belongs to, not the body's free-text
`createdBy`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from argus.integrations.alertmanager_api import (
    PostableSilence,
    gettable,
    gettable_alert,
    listed,
    wire_time,
)
from argus.integrations.normalizers.common import problems_from
from argus.models import Matcher, SilenceRequest, SilenceUpdate
from argus.models.agents import AlertQuery
from argus.models.routing import silence_matchers_problem

from . import incident_views as views
from .context import REJECTED, GatewayContext, GatewayError
from .pages import principal_of

Handler = Callable[..., Awaitable[Response]]


def _author(request: Request, written: str) -> str:
    who = principal_of(request)
    return who.user if who is not None and who.via != "anonymous" else written


def _as_alertmanager(handler: Handler) -> Handler:
    """Refusals as Alertmanager words them, a JSON string (amtool reads nothing else), with the
    same status and text ARGUS gives elsewhere."""

    @functools.wraps(handler)
    async def answer(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except GatewayError as exc:
            text = "; ".join([exc.detail["error"], *exc.detail["problems"]])
            return JSONResponse(text, status_code=exc.status_code, headers=exc.headers)

    return answer


def argus_version() -> str:
    try:
        return importlib.metadata.version("argus-incident")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _switch(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "true").lower()
    if value not in ("true", "false"):
        raise GatewayError(400, f"{name}: expected true or false, got {value!r}")
    return value == "true"


def _filters(request: Request) -> list[Matcher]:
    try:
        return [Matcher.parse(f) for f in request.query_params.getlist("filter")]
    except ValueError as exc:
        raise GatewayError(400, f"bad filter: {exc}") from exc


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["Alertmanager v2 API"])
    started = datetime.now(UTC)

    @r.get("/api/v2/status", summary="Alertmanager's status: version, uptime, the routing config")
    @_as_alertmanager
    async def status() -> JSONResponse:
        routing = ctx.config.policy.routing.model_dump(mode="json", by_alias=True, exclude_none=True)
        return JSONResponse(
            {
                "cluster": {"name": "", "peers": [], "status": "disabled"},
                "config": {"original": yaml.safe_dump(routing, sort_keys=False)},
                "uptime": wire_time(started),
                "versionInfo": {
                    "branch": "",
                    "buildDate": "",
                    "buildUser": "argus",
                    "goVersion": "",
                    "revision": "",
                    "version": f"argus-{argus_version()}",
                },
            }
        )

    @r.get("/api/v2/alerts", summary="Firing alerts of a scope, as Alertmanager lists them")
    @_as_alertmanager
    async def list_alerts(request: Request, scope: str = "default") -> JSONResponse:
        try:
            query = AlertQuery(
                matchers=_filters(request),
                active=_switch(request, "active"),
                silenced=_switch(request, "silenced"),
                inhibited=_switch(request, "inhibited"),
                receiver=request.query_params.get("receiver") or None,
            )
        except ValidationError as exc:
            raise GatewayError(400, "bad query", problems_from(exc)) from exc
        listing = await views.alerts(ctx, scope, query)
        # Alertmanager lists every alert; a scope answers with at most `limit` (one query payload).
        headers = None if listing.complete else {"X-Argus-Truncated": f"first {len(listing.alerts)} listed"}
        return JSONResponse([gettable_alert(v) for v in listing.alerts], headers=headers)

    @r.get("/api/v2/silences", summary="Silences of a scope, as Alertmanager lists them")
    @_as_alertmanager
    async def list_silences(request: Request, scope: str = "default") -> JSONResponse:
        return JSONResponse(listed(await views.silences(ctx, scope), _filters(request), datetime.now(UTC)))

    @r.get("/api/v2/silence/{silence_id}", summary="One silence")
    @_as_alertmanager
    async def get_silence(silence_id: str, scope: str = "default") -> JSONResponse:
        return JSONResponse(gettable(await views.silence(ctx, scope, silence_id), datetime.now(UTC)))

    @r.post("/api/v2/silences", summary="Add a silence, or change one (with its id)")
    @_as_alertmanager
    async def post_silence(request: Request, scope: str = "default") -> JSONResponse:
        payload = await ctx.json(request, "am_silences")
        try:
            body = PostableSilence.model_validate(payload)
            matchers = [m.to_matcher() for m in body.matchers]
        except ValidationError as exc:
            REJECTED.labels("am_silences", "invalid").inc()
            raise GatewayError(422, "invalid silence; nothing was changed", problems_from(exc)) from exc
        problem = body.times_problem(datetime.now(UTC)) or silence_matchers_problem(matchers)
        if problem:
            REJECTED.labels("am_silences", "invalid").inc()
            raise GatewayError(400, problem)
        req = SilenceRequest(
            matchers=matchers,
            starts_at=body.startsAt,
            duration=body.endsAt - body.startsAt,
            created_by=_author(request, body.createdBy or "api"),
            comment=body.comment,
            request_id=uuid.uuid4().hex,
        )
        if body.id:
            s = await views.update_silence(ctx, scope, SilenceUpdate(silence_id=body.id, change=req))
        else:
            s = await views.add_silence(ctx, scope, req)
        request.state.audit_target = f"silence {s.id}"
        request.state.audit_detail = ", ".join(map(str, s.matchers))
        return JSONResponse({"silenceID": s.id})

    @r.delete("/api/v2/silence/{silence_id}", summary="Expire a silence")
    @_as_alertmanager
    async def delete_silence(request: Request, silence_id: str, scope: str = "default") -> Response:
        known = {s.id: s for s in await views.silences(ctx, scope)}
        if silence_id not in known:
            raise GatewayError(404, f"no silence {silence_id} in scope {scope!r}")
        # Alertmanager answers 200 for one already expired; ARGUS changes nothing and tells no one.
        if known[silence_id].ends_at > datetime.now(UTC):
            try:
                await views.expire_silence(ctx, scope, silence_id, _author(request, "api"))
            except GatewayError as exc:
                if "already expired" not in exc.detail["error"]:  # it ended meanwhile
                    raise
        request.state.audit_target = f"silence {silence_id}"
        return Response(status_code=200)

    return r
