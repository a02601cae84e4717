"""What every gateway route needs, built once per process."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from fastapi import HTTPException, Request
from prometheus_client import Counter
from temporalio.client import Client

from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.models import ArgusConfig
from argus.models.agents import FingerprintCheck, FingerprintReport, MonitoringInput
from argus.models.alert import CompactBatch

from ..ingest import IngestCoalescer

REJECTED = Counter("argus_gateway_rejected_total", "Requests refused", ["endpoint", "reason"])


class GatewayError(HTTPException):
    """A refusal with a reason a person can act on: `{"error": ..., "problems": [...]}`."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status_code=status, detail={"error": error, "problems": problems or []}, headers=headers
        )


def monitoring_id(scope: str) -> str:
    return f"monitoring-{scope}"


@dataclass
class GatewayContext:
    config: ArgusConfig
    client: Client
    archive: IncidentArchive
    signer: LinkSigner
    nonces: NonceStore
    token: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        g = self.config.gateway
        self.coalescer = IngestCoalescer(
            self.send_batch,
            flush_interval=g.flush_interval.total_seconds(),
            max_batch=g.max_batch_alerts,
            probe=self.scope_backlog,
            max_backlog=g.max_scope_backlog,
        )

    async def scope_backlog(self, scope: str, sender: str = "") -> FingerprintReport:
        """Alerts the scope's workflow holds and has not routed yet, the highest batch `seq` of
        `sender` it has received, and whether it is about to hand over (asks the workflow)."""
        return await self.client.get_workflow_handle(monitoring_id(scope)).query(
            "check_fingerprints",
            FingerprintCheck(sender=sender),
            result_type=FingerprintReport,
            rpc_timeout=timedelta(seconds=2),
        )

    async def send_batch(self, scope: str, batch: CompactBatch) -> None:
        """Signal-with-start: creates the scope's MonitoringWorkflow if needed; returns when durable."""
        await self.client.start_workflow(
            "MonitoringWorkflow",
            MonitoringInput(
                scope=scope,
                policy=self.config.policy,
                incident_task_queue=self.config.temporal.task_queue,
                payload_store=self.config.temporal.payload_store.enabled,
            ),
            id=monitoring_id(scope),
            task_queue=self.config.temporal.monitoring_queue,
            start_signal="ingest_compact",
            start_signal_args=[batch],
        )

    def check_token(self, request: Request, endpoint: str) -> None:
        if not self.token or getattr(request.state, "ingest_ok", False):
            return  # ingest_ok: the auth middleware already accepted an API token with the ingest role
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), self.token):
            REJECTED.labels(endpoint, "unauthorized").inc()
            raise GatewayError(401, "missing or invalid bearer token")

    async def body(self, request: Request, endpoint: str) -> bytes:
        """The raw body, refused with 413 past the configured limit (checked while reading)."""
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
        return bytes(body)

    async def json(self, request: Request, endpoint: str) -> Any:
        body = await self.body(request, endpoint)
        request.state.body_bytes = len(body)
        if not body:
            REJECTED.labels(endpoint, "empty").inc()
            raise GatewayError(400, "empty body: expected JSON")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            REJECTED.labels(endpoint, "json").inc()
            raise GatewayError(
                400, f"body is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        except UnicodeDecodeError as exc:
            REJECTED.labels(endpoint, "json").inc()
            raise GatewayError(400, f"body is not UTF-8: {exc}") from exc
