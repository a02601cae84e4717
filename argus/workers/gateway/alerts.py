"""Alert ingest (Alertmanager v2 API, Alertmanager webhook, generic JSON) and change events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError
from temporalio.service import RPCError

from argus.integrations.normalizers.alertmanager import from_webhook
from argus.integrations.normalizers.common import PayloadError, problems_from
from argus.integrations.normalizers.fast_v2 import RECORD_GROWTH, compact_from_v2
from argus.integrations.normalizers.generic import from_generic
from argus.models import Alert, ChangeEvent
from argus.models.alert import alert_to_compact

from ..ingest import MAX_ALERT_BYTES, ScopeBehind
from .context import REJECTED, GatewayContext, GatewayError

ALERTS = Counter("argus_gateway_alerts_total", "Alerts accepted", ["endpoint"])

Normaliser = Callable[[Any, datetime], list[Alert]] | Callable[[Any, datetime], list[dict]]


async def accept(
    ctx: GatewayContext,
    request: Request,
    endpoint: str,
    normalise: Normaliser,
    *,
    growth_bound: int | None = None,
) -> int:
    """Validate the whole payload, then make every alert in it durable, or refuse it all.

    `normalise` returns Alerts, or compact records (the v2 hot path, see `fast_v2`).
    `growth_bound`: if given, no record the normaliser returns is more than that many bytes
    larger than the request body (as for `compact_from_v2`, see `fast_v2.RECORD_GROWTH`), so
    records are measured only when the body could hold one too large. Without it every record
    is measured: a normaliser may repeat a field (Nagios keeps the host three times, Splunk
    prefixes every field), so a body under the limit can make an alert over it."""
    ctx.check_token(request, endpoint)
    payload = await ctx.json(request, endpoint)
    try:
        normalised = normalise(payload, datetime.now(UTC))
        alerts = [a if isinstance(a, dict) else alert_to_compact(a) for a in normalised]
    except PayloadError as exc:
        REJECTED.labels(endpoint, "invalid").inc()
        raise GatewayError(422, "invalid alert payload; nothing was accepted", exc.problems) from exc
    # An alert too large for a signal would fail the whole coalesced batch, other requests'
    # alerts with it (503 for all): refuse it here, before it joins one.
    if growth_bound is None or request.state.body_bytes + growth_bound > MAX_ALERT_BYTES:
        too_large = [
            f"alert {i}: {n} bytes as ARGUS keeps it (labels, annotations, generatorURL);"
            f" alertname {str(rec['l'].get('alertname', ''))[:80]!r}"
            for i, rec in enumerate(alerts)
            if (n := len(orjson.dumps(rec))) > MAX_ALERT_BYTES
        ]
        if too_large:
            REJECTED.labels(endpoint, "too_large").inc()
            raise GatewayError(
                413, f"alerts over {MAX_ALERT_BYTES} bytes each; nothing was accepted", too_large
            )
    if alerts:
        scope = request.query_params.get("scope", "default")
        try:
            await ctx.coalescer.submit(scope, alerts)
        except ScopeBehind as exc:
            REJECTED.labels(endpoint, "backlog").inc()
            raise GatewayError(
                503,
                f"{exc}; nothing was accepted, retry shortly (gateway.max_scope_backlog)",
                headers={"Retry-After": "2"},
            ) from exc
        except RPCError as exc:
            REJECTED.labels(endpoint, "temporal").inc()
            raise GatewayError(503, f"Temporal did not accept the alerts, retry: {exc.message}") from exc
        except Exception as exc:
            REJECTED.labels(endpoint, "temporal").inc()
            raise GatewayError(503, f"the alerts could not be made durable, retry: {exc}") from exc
    ALERTS.labels(endpoint).inc(len(alerts))
    return len(alerts)


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["alerts"])

    @r.post("/api/v2/alerts", summary="Alertmanager v2 alerts API (Prometheus can post here)")
    async def am_v2(request: Request) -> Response:
        await accept(ctx, request, "am_v2", compact_from_v2, growth_bound=RECORD_GROWTH)
        return Response(status_code=200)

    @r.post("/api/v1/alerts/alertmanager", summary="Alertmanager webhook receiver (version 4)")
    async def am_webhook(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": await accept(ctx, request, "am_webhook", from_webhook)})

    @r.post("/api/v1/alerts", summary="Generic JSON alerts (see docs/monitoring.md)")
    async def generic(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": await accept(ctx, request, "generic", from_generic)})

    @r.post("/api/v1/changes", summary="A deploy or configuration change, used as RCA evidence")
    async def changes(request: Request) -> JSONResponse:
        ctx.check_token(request, "changes")
        payload = await ctx.json(request, "changes")
        try:
            event = ChangeEvent.model_validate(payload)
        except ValidationError as exc:
            REJECTED.labels("changes", "invalid").inc()
            raise GatewayError(422, "invalid change event", problems_from(exc)) from exc
        stored = ctx.archive.record_change(event)
        return JSONResponse({"id": stored.id}, status_code=201)

    return r
