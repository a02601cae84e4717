"""The HTTP gateway (FastAPI): alert webhooks in, change events in, signed approval links.

A 2xx on an alert endpoint means the alerts are durable in Temporal (see `ingest`). Bad
input gets a 4xx naming the field and the problem; nothing else in the request is lost
because nothing is accepted from a request that fails validation.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from argus.integrations.archive import IncidentArchive
from argus.integrations.normalizers.alertmanager import from_v2, from_webhook
from argus.integrations.normalizers.common import PayloadError, problems_from
from argus.integrations.normalizers.generic import from_generic
from argus.integrations.signed_links import LinkError, LinkSigner, NonceStore
from argus.models import Alert, AlertBatch, ApprovalDecision, ArgusConfig, ChangeEvent, DecisionKind
from argus.models.agents import MonitoringInput

from .ingest import IngestCoalescer

ALERTS = Counter("argus_gateway_alerts_total", "Alerts accepted", ["endpoint"])
REJECTED = Counter("argus_gateway_rejected_total", "Requests refused", ["endpoint", "reason"])
APPROVALS = Counter("argus_gateway_approvals_total", "Decisions through signed links", ["outcome"])

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates" / "gateway")),
    autoescape=True,
)


class GatewayError(HTTPException):
    def __init__(self, status: int, error: str, problems: list[str] | None = None) -> None:
        super().__init__(status_code=status, detail={"error": error, "problems": problems or []})


def monitoring_id(scope: str) -> str:
    return f"monitoring-{scope}"


class Gateway:
    """Holds what the endpoints need; `app()` builds the FastAPI application."""

    def __init__(
        self,
        config: ArgusConfig,
        client: Client,
        archive: IncidentArchive,
        signer: LinkSigner,
        nonces: NonceStore,
        token: str | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.archive = archive
        self.signer = signer
        self.nonces = nonces
        self.token = token
        g = config.gateway
        self.coalescer = IngestCoalescer(
            self._send_batch, flush_interval=g.flush_interval.total_seconds(), max_batch=g.max_batch_alerts
        )

    async def _send_batch(self, scope: str, batch: AlertBatch) -> None:
        await self.client.start_workflow(
            "MonitoringWorkflow",
            MonitoringInput(scope=scope, policy=self.config.policy),
            id=monitoring_id(scope),
            task_queue=self.config.temporal.task_queue,
            start_signal="ingest",
            start_signal_args=[batch],
        )

    # --- request helpers -------------------------------------------------------------------------
    def _check_token(self, request: Request, endpoint: str) -> None:
        if not self.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), self.token):
            REJECTED.labels(endpoint, "unauthorized").inc()
            raise GatewayError(401, "missing or invalid bearer token")

    async def _json(self, request: Request, endpoint: str) -> Any:
        limit = self.config.gateway.max_body_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            REJECTED.labels(endpoint, "too_large").inc()
            raise GatewayError(413, f"body of {length} bytes exceeds the limit of {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                REJECTED.labels(endpoint, "too_large").inc()
                raise GatewayError(413, f"body exceeds the limit of {limit} bytes")
        if not body:
            REJECTED.labels(endpoint, "empty").inc()
            raise GatewayError(400, "empty body: expected JSON")
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            REJECTED.labels(endpoint, "json").inc()
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise GatewayError(400, f"body is not valid JSON{where}: {exc}") from exc

    async def _accept(self, request: Request, endpoint: str, normalise) -> int:  # type: ignore[no-untyped-def]
        self._check_token(request, endpoint)
        payload = await self._json(request, endpoint)
        try:
            alerts: list[Alert] = normalise(payload, datetime.now(UTC))
        except PayloadError as exc:
            REJECTED.labels(endpoint, "invalid").inc()
            raise GatewayError(422, "invalid alert payload; nothing was accepted", exc.problems) from exc
        if alerts:
            scope = request.query_params.get("scope", "default")
            try:
                await self.coalescer.submit(scope, alerts)
            except RPCError as exc:
                REJECTED.labels(endpoint, "temporal").inc()
                raise GatewayError(503, f"Temporal did not accept the alerts, retry: {exc.message}") from exc
            except Exception as exc:
                REJECTED.labels(endpoint, "temporal").inc()
                raise GatewayError(503, f"the alerts could not be made durable, retry: {exc}") from exc
        ALERTS.labels(endpoint).inc(len(alerts))
        return len(alerts)

    # --- approval links --------------------------------------------------------------------------
    def _verify_link(self, token: str) -> Any:
        try:
            return self.signer.verify(token)
        except LinkError as exc:
            APPROVALS.labels("refused").inc()
            raise GatewayError(400, str(exc)) from exc

    async def confirm_page(self, token: str) -> HTMLResponse:
        claims = self._verify_link(token)
        state = self.archive.get(claims.incident_id)
        html = TEMPLATES.get_template("confirm.html.j2").render(
            decision=claims.decision,
            incident_id=claims.incident_id,
            number=state.number if state else "",
            summary=state.proposal.summary if state and state.proposal else "",
            proposal_hash=claims.proposal_hash,
            approver=claims.approver,
            token=token,
            expires=datetime.fromtimestamp(claims.expires, UTC).isoformat(),
        )
        return HTMLResponse(html)

    async def act_on_link(self, token: str, comment: str) -> HTMLResponse:
        claims = self._verify_link(token)
        if not self.nonces.use(claims.nonce, claims.expires):
            APPROVALS.labels("replayed").inc()
            raise GatewayError(409, "this approval link was already used")
        decision = ApprovalDecision(
            approver=claims.approver,
            decision=DecisionKind(claims.decision),
            proposal_hash=claims.proposal_hash,
            comment=comment,
            via="link",
            request_id=f"link-{claims.nonce}",
        )
        handle = self.client.get_workflow_handle(claims.incident_id)
        try:
            result = await handle.execute_update("decide", decision, id=f"link-{claims.nonce}", result_type=str)
        except WorkflowUpdateFailedError as exc:
            APPROVALS.labels("refused").inc()
            reason = str(exc.cause.message if exc.cause and hasattr(exc.cause, "message") else exc.cause or exc)
            return self._result(409, "Refused", reason)
        except RPCError as exc:
            self.nonces.release(claims.nonce)  # nothing was decided: let the link be used again
            APPROVALS.labels("unavailable").inc()
            return self._result(503, "Not delivered", f"ARGUS could not reach the incident ({exc.message}); try again.")
        APPROVALS.labels(claims.decision).inc()
        return self._result(200, "Done", f"{claims.incident_id}: {result}.")

    @staticmethod
    def _result(status: int, title: str, message: str) -> HTMLResponse:
        html = TEMPLATES.get_template("result.html.j2").render(title=title, message=message)
        return HTMLResponse(html, status_code=status)

    # --- the app ---------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
            self.coalescer.start()
            yield
            await self.coalescer.close()

        app = FastAPI(title="ARGUS gateway", version="0.1.0", lifespan=lifespan)

        @app.exception_handler(GatewayError)
        async def _gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
            return JSONResponse(exc.detail, status_code=exc.status_code)

        @app.post("/api/v2/alerts", summary="Alertmanager v2 alerts API (Prometheus can post here)")
        async def am_v2(request: Request) -> Response:
            await self._accept(request, "am_v2", from_v2)
            return Response(status_code=200)

        @app.post("/api/v1/alerts/alertmanager", summary="Alertmanager webhook receiver (version 4)")
        async def am_webhook(request: Request) -> JSONResponse:
            n = await self._accept(request, "am_webhook", from_webhook)
            return JSONResponse({"accepted": n})

        @app.post("/api/v1/alerts", summary="Generic JSON alerts (see docs/api.md)")
        async def generic(request: Request) -> JSONResponse:
            n = await self._accept(request, "generic", from_generic)
            return JSONResponse({"accepted": n})

        @app.post("/api/v1/changes", summary="A deploy or configuration change, used as RCA evidence")
        async def changes(request: Request) -> JSONResponse:
            self._check_token(request, "changes")
            payload = await self._json(request, "changes")
            try:
                event = ChangeEvent.model_validate(payload)
            except ValidationError as exc:
                REJECTED.labels("changes", "invalid").inc()
                raise GatewayError(422, "invalid change event", problems_from(exc)) from exc
            stored = self.archive.record_change(event)
            return JSONResponse({"id": stored.id}, status_code=201)

        @app.get("/approve", response_class=HTMLResponse, summary="Confirm page of a signed approval link")
        async def approve_page(t: str) -> HTMLResponse:
            return await self.confirm_page(t)

        @app.post("/approve", response_class=HTMLResponse, summary="Act on a signed approval link (POST only)")
        async def approve_post(request: Request) -> HTMLResponse:
            form = await request.form()
            token = str(form.get("t", ""))
            if not token:
                raise GatewayError(400, "missing link token 't'")
            return await self.act_on_link(token, str(form.get("comment", ""))[:2000])

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            started = time.perf_counter()
            try:
                await self.client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=2)
                )
                ok, detail = True, "temporal reachable"
            except Exception as exc:
                ok, detail = False, f"temporal unreachable: {exc}"
            body = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}
            return JSONResponse(body, status_code=200 if ok else 503)

        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return app
