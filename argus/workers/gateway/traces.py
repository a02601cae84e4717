"""OTLP/HTTP trace receiver (`POST /v1/traces`) and the trace query API.

Point an OpenTelemetry SDK's OTLP/HTTP exporter (or a Collector's `otlphttp` exporter, next to
your tracing backend) at the gateway: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://argus:8080/v1/traces`.
Protobuf and JSON, optionally gzip; with auth on, the exporter sends
`OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <token>`. A 200 means the spans are stored;
spans the spec forbids are counted in `partialSuccess.rejectedSpans`, the rest kept.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from argus.analysis.trace_rca import trace_findings
from argus.integrations.traces import TraceStore, otlp, trace_store
from argus.models.traces import SpanView, TraceFindingView

from ..settings import state_dir
from .context import REJECTED, GatewayContext, GatewayError


def trace_store_of(ctx: GatewayContext) -> TraceStore | None:
    if "traces" not in ctx.extras:
        ctx.extras["traces"] = trace_store(ctx.config.traces, state_dir(ctx.config))
    return ctx.extras["traces"]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise GatewayError(422, f"{name}: {value!r} is not an RFC 3339 time") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["traces"])
    store = trace_store_of(ctx)

    def need_store() -> TraceStore:
        if store is None:
            raise GatewayError(404, "traces are not enabled (traces.enabled)")
        return store

    @r.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)")
    async def export(request: Request) -> Response:
        s = need_store()
        ctype = request.headers.get("content-type", "")
        body = await ctx.body(request, "otlp_traces")
        try:
            raw = otlp.decompress(
                body, request.headers.get("content-encoding", ""), ctx.config.gateway.max_body_bytes
            )
            decoded = otlp.spans_of(await asyncio.to_thread(otlp.parse, raw, ctype))
        except otlp.OtlpError as exc:
            REJECTED.labels("otlp_traces", "invalid").inc()
            status = 415 if "Content-Type" in str(exc) else 400
            content, media = otlp.error_body(str(exc), ctype)
            return Response(content, status_code=status, media_type=media)
        await asyncio.to_thread(s.add, decoded.spans)
        request.state.audit_detail = f"{len(decoded.spans)} span(s) kept, {decoded.rejected} rejected"
        content, media = otlp.response(decoded, ctype)
        return Response(content, media_type=media)

    @r.get("/api/v1/traces/{trace_id}", summary="The stored spans of one trace")
    async def one(trace_id: str) -> JSONResponse:
        spans = await asyncio.to_thread(need_store().trace, trace_id.lower())
        if not spans:
            raise GatewayError(
                404, f"no spans of trace {trace_id!r} are kept (retention {ctx.config.traces.retention})"
            )
        return JSONResponse([span_view(s).model_dump(mode="json") for s in spans])

    @r.get("/api/v1/traces", summary="Per-service trace findings for a window (what RCA sees)")
    async def findings(start: str, end: str, onset: str) -> JSONResponse:
        t0, t1, on = _time(start, "start"), _time(end, "end"), _time(onset, "onset")
        assert t0 and t1 and on
        if not t0 < on < t1:
            raise GatewayError(422, "need start < onset < end")
        spans = await need_store().spans(t0, t1, 300_000)
        found = await asyncio.to_thread(trace_findings, spans, on.timestamp(), t0.timestamp(), t1.timestamp())
        return JSONResponse([finding_view(f).model_dump(mode="json") for f in found])

    return r


def span_view(s) -> SpanView:  # type: ignore[no-untyped-def]
    return SpanView(
        trace_id=s.trace_id,
        span_id=s.span_id,
        parent_span_id=s.parent_id,
        service=s.service,
        name=s.name,
        kind=s.kind,
        start=datetime.fromtimestamp(s.start, UTC),
        duration_ms=round(s.duration * 1000, 3),
        error=s.error,
        status_message=s.status_message,
        http_status=s.http_status,
    )


def finding_view(f) -> TraceFindingView:  # type: ignore[no-untyped-def]
    return TraceFindingView(
        service=f.service,
        kind=f.kind,
        summary=f.summary,
        count=f.count,
        baseline_count=f.baseline_count,
        first_seen=datetime.fromtimestamp(f.first_seen, UTC) if f.first_seen else None,
        trace_ids=f.trace_ids,
    )
