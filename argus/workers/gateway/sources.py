"""Push sources beyond Alertmanager (Grafana, Datadog, Nagios, Splunk) and source health.

Every endpoint validates the whole payload first: a bad one gets a 422 naming each wrong field
and nothing from it is kept; a good one answers 2xx only once its alerts are durable in
Temporal (the same `accept` path as the Alertmanager endpoints).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from argus.integrations.normalizers import nagios
from argus.integrations.normalizers.datadog import from_datadog
from argus.integrations.normalizers.grafana import from_grafana
from argus.integrations.normalizers.splunk import from_splunk
from argus.models import Alert
from argus.models.agents import MonitoringStatus

from .alerts import accept
from .context import GatewayContext, GatewayError, monitoring_id


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["sources"])

    @r.post("/api/v1/alerts/grafana", summary="Grafana alerting webhook (unified and legacy)")
    async def grafana(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": await accept(ctx, request, "grafana", from_grafana)})

    @r.post("/api/v1/alerts/datadog", summary="Datadog webhook (payload template in docs/monitoring.md)")
    async def datadog(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": await accept(ctx, request, "datadog", from_datadog)})

    @r.post("/api/v1/alerts/nagios", summary="Nagios notification command posting JSON")
    async def nagios_(request: Request) -> JSONResponse:
        ignored: dict[str, str | None] = {"why": None}

        def normalise(payload: Any, now: datetime) -> list[Alert]:
            alerts, ignored["why"] = nagios.normalise(payload, now)
            return alerts

        accepted = await accept(ctx, request, "nagios", normalise)
        body: dict[str, Any] = {"accepted": accepted}
        if ignored["why"]:
            body["ignored"] = ignored["why"]
        return JSONResponse(body)

    @r.post("/api/v1/alerts/splunk", summary="Splunk webhook alert action")
    async def splunk(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": await accept(ctx, request, "splunk", from_splunk)})

    @r.get("/api/v1/sources", summary="Health of the pulled sources of a monitoring scope")
    async def sources(scope: str = "default") -> JSONResponse:
        handle = ctx.client.get_workflow_handle(monitoring_id(scope))
        try:
            st = await handle.query("status", result_type=MonitoringStatus)
        except Exception as exc:
            raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc}") from exc
        return JSONResponse(
            {
                "scope": scope,
                "last_pull": st.last_pull.isoformat() if st.last_pull else None,
                "sources": [h.model_dump(mode="json") for h in st.health],
            }
        )

    return r
