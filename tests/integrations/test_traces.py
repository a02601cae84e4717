"""Traces end to end: the real OpenTelemetry SDK (TracerProvider, BatchSpanProcessor and the
OTLP/HTTP protobuf exporter) exports three services' spans to ARGUS's `POST /v1/traces` on a
live gateway (uvicorn, auth on); the spans are kept, a trace reads back whole, and the findings
API names the service where failures originate and whose own time jumped (not its waiting
callers). OTLP/JSON (hex ids, gzip, partial success) and every kind of bad request. Then the
RCA agent, given the same span store through its traces hook, puts trace evidence and exemplar
trace ids into its report; a broken trace store leaves RCA as it was."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
import pytest_asyncio
import uvicorn
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio.testing import ActivityEnvironment

from argus.activities.rca_agent import RcaAgent
from argus.integrations.archive import IncidentArchive
from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.integrations.traces import trace_store
from argus.models import ArgusConfig, EvidenceKind
from argus.models.agents import RcaRequest
from argus.models.config import RcaConfig
from argus.models.security import Role
from argus.workers.auth import AuthService, AuthStore
from argus.workers.devserver import free_port
from argus.workers.gateway import GatewayContext, create_app
from argus.workers.gateway.traces import trace_store_of
from argus.workers.settings import Secrets, state_dir
from tests.integrations.dev_temporal import dev_temporal  # noqa: F401
from tests.workflows import kit

SERVICES = ("frontend", "checkout", "payments")
TOPOLOGY = [("frontend", "checkout"), ("checkout", "payments")]
NS = 1_000_000_000
MS = 1_000_000


class LiveGateway:
    """The gateway app served by uvicorn on a free loopback port, in this event loop."""

    async def start(self, dev, tmp) -> LiveGateway:
        base = kit.test_config(tmp).model_dump(mode="json", by_alias=True)
        base["auth"] = {"enabled": True}
        self.config = ArgusConfig.model_validate(base)
        self.store = AuthStore(f"sqlite:///{tmp / 'auth.db'}")
        svc = AuthService(self.config, self.store, Secrets({}))
        archive = IncidentArchive(f"sqlite:///{tmp / 'a.db'}")
        self.ctx = GatewayContext(self.config, dev.client, archive, LinkSigner(b"k" * 32),
                                  NonceStore(tmp / "n.db"), extras={"auth": svc})  # fmt: skip
        self.pusher = self.store.create_token("otel-collector", Role.RESPONDER).token
        self.viewer = self.store.create_token("vic", Role.VIEWER).token
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.ctx), host="127.0.0.1", port=port, log_level="warning")
        )
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), self.task.result()
            await asyncio.sleep(0.02)
        self.spans = trace_store_of(self.ctx)
        assert self.spans is not None
        self.http = httpx.AsyncClient(base_url=self.url, headers={"authorization": f"Bearer {self.pusher}"})
        return self

    async def stop(self) -> None:
        await self.http.aclose()
        self.server.should_exit = True
        await self.task


@pytest_asyncio.fixture(scope="module")
async def gw(dev_temporal, tmp_path_factory):  # noqa: F811
    g = await LiveGateway().start(dev_temporal, tmp_path_factory.mktemp("traces"))
    yield g
    await g.stop()


# --- a small system, traced with the real SDK ---------------------------------------------------


def providers(processor_for) -> dict[str, TracerProvider]:  # type: ignore[no-untyped-def]
    out = {}
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(processor_for(svc))
        out[svc] = p
    return out


def one_request(tracers, t0: int, fail: bool, pay_ms: int) -> str:  # type: ignore[no-untyped-def]
    """frontend -> checkout -> payments, with explicit times: payments spends `pay_ms` in its
    own code and may fail; the callers spend 5 ms of their own and fail because it failed."""
    fe = tracers["frontend"].start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0)
    co = tracers["checkout"].start_span(
        "POST /orders", context=trace.set_span_in_context(fe), kind=SpanKind.SERVER, start_time=t0 + MS
    )
    pay = tracers["payments"].start_span(
        "charge", context=trace.set_span_in_context(co), kind=SpanKind.SERVER, start_time=t0 + 2 * MS
    )
    pay.set_attribute("http.response.status_code", 502 if fail else 200)
    if fail:
        pay.set_status(Status(StatusCode.ERROR, "card processor timeout"))
        co.set_status(Status(StatusCode.ERROR, "payments answered 502"))
        fe.set_status(Status(StatusCode.ERROR, "checkout failed"))
    pay_end = t0 + 2 * MS + pay_ms * MS
    pay.end(end_time=pay_end)
    co.end(end_time=pay_end + 5 * MS)
    fe.end(end_time=pay_end + 10 * MS)
    return format(fe.get_span_context().trace_id, "032x")


def incident_traffic(url: str, token: str, onset: datetime, compression: Compression) -> dict[str, list[str]]:
    """Ten minutes of healthy traffic, then five in which payments fails half the time and is
    slow in its own code: exported by each service's BatchSpanProcessor. Runs in a thread (the
    SDK's export is blocking; the gateway serves from the event loop)."""

    def exporter(_: str) -> BatchSpanProcessor:
        otlp = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers={"authorization": f"Bearer {token}"}, compression=compression
        )
        return BatchSpanProcessor(otlp, max_queue_size=20_000, schedule_delay_millis=100)

    provs = providers(exporter)
    tracers = {s: p.get_tracer("argus-tests") for s, p in provs.items()}
    t_onset = int(onset.timestamp() * NS)
    ids: dict[str, list[str]] = {"before": [], "failed": [], "ok_after": []}
    for i in range(120):  # one request every 5 s before the onset
        ids["before"].append(one_request(tracers, t_onset - 600 * NS + i * 5 * NS, False, 20))
    for i in range(60):  # one every 5 s after it
        fail = i % 2 == 0
        tid = one_request(tracers, t_onset + NS + i * 5 * NS, fail, 400)
        ids["failed" if fail else "ok_after"].append(tid)
    for p in provs.values():
        assert p.force_flush(30_000)
        p.shutdown()
    return ids


async def test_the_otel_sdk_exports_to_argus_and_the_findings_name_the_origin(gw):
    onset = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    before = gw.spans.count()
    ids = await asyncio.to_thread(incident_traffic, gw.url, gw.pusher, onset, Compression.Gzip)
    assert gw.spans.count() == before + 180 * 3

    r = await gw.http.get(f"/api/v1/traces/{ids['failed'][0]}")
    assert r.status_code == 200, r.text
    spans = {s["service"]: s for s in r.json()}
    assert set(spans) == set(SERVICES)
    assert spans["payments"]["parent_span_id"] == spans["checkout"]["span_id"]
    assert spans["checkout"]["parent_span_id"] == spans["frontend"]["span_id"]
    assert spans["frontend"]["parent_span_id"] == ""
    assert all(s["error"] for s in spans.values())
    assert spans["payments"]["status_message"] == "card processor timeout"
    assert spans["payments"]["http_status"] == 502 and spans["payments"]["duration_ms"] == 400.0

    window = {
        "start": (onset - timedelta(minutes=10)).isoformat(),
        "end": (onset + timedelta(minutes=5)).isoformat(),
        "onset": onset.isoformat(),
    }
    r = await gw.http.get("/api/v1/traces", params=window, headers={"authorization": f"Bearer {gw.viewer}"})
    assert r.status_code == 200, r.text
    found = {(f["service"], f["kind"]): f for f in r.json()}
    assert set(found) == {("payments", "errors"), ("payments", "latency")}, found
    errors = found[("payments", "errors")]
    assert errors["count"] == 30 and errors["baseline_count"] == 0
    assert set(errors["trace_ids"]) <= set(ids["failed"]) and errors["trace_ids"]
    assert "20 ms -> 400 ms" in found[("payments", "latency")]["summary"]

    r = await gw.http.get("/api/v1/traces", params={**window, "onset": window["end"]})
    assert r.status_code == 422 and "start < onset < end" in r.json()["error"]
    r = await gw.http.get("/api/v1/traces", params={**window, "start": "yesterday"})
    assert r.status_code == 422 and "'yesterday' is not an RFC 3339 time" in r.json()["error"]
    r = await gw.http.get(f"/api/v1/traces/{'0' * 31}f")
    assert r.status_code == 404 and "retention" in r.json()["error"]


def finished_spans(n: int) -> list:  # type: ignore[no-untyped-def]
    memory = InMemorySpanExporter()
    provs = providers(lambda _: SimpleSpanProcessor(memory))
    tracers = {s: p.get_tracer("argus-tests") for s, p in provs.items()}
    t0 = int((datetime.now(UTC) - timedelta(hours=5)).timestamp() * NS)
    for i in range(n):
        one_request(tracers, t0 + i * NS, False, 10)
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_the_exporter_needs_a_token_with_the_ingest_role(gw, compression):
    batch = await asyncio.to_thread(finished_spans, 4)
    before = gw.spans.count()

    def export(token: str | None) -> SpanExportResult:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        exp = OTLPSpanExporter(
            endpoint=f"{gw.url}/v1/traces", headers=headers, compression=compression, timeout=10
        )
        try:
            return exp.export(batch)
        finally:
            exp.shutdown()

    assert await asyncio.to_thread(export, None) == SpanExportResult.FAILURE
    assert await asyncio.to_thread(export, gw.viewer) == SpanExportResult.FAILURE
    assert gw.spans.count() == before, "a refused export kept spans"
    assert await asyncio.to_thread(export, gw.pusher) == SpanExportResult.SUCCESS
    assert gw.spans.count() == before + len(batch) == before + 12


# --- OTLP/JSON and bad requests ---------------------------------------------------------------


def json_span(trace_id: str, span_id: str, start_ns: int, end_ns: int, **kw) -> dict:
    return {
        "traceId": trace_id, "spanId": span_id, "name": kw.pop("name", "GET /stock"), "kind": 2,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns), **kw,
    }  # fmt: skip


def json_body(spans: list[dict], service: str = "inventory") -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}],
            }
        ]
    }


async def test_otlp_json_with_hex_ids_and_partial_success(gw):
    t = int((datetime.now(UTC) - timedelta(hours=6)).timestamp() * NS)
    trace_id = uuid.uuid4().hex
    good = [
        json_span(trace_id, "00f067aa0ba902b7", t, t + 30 * MS),
        json_span(
            trace_id,
            "00f067aa0ba902b8",
            t + MS,
            t + 20 * MS,
            parentSpanId="00f067aa0ba902b7",
            name="SELECT stock",
            status={"code": 2, "message": "deadlock"},
        ),
    ]
    bad = [
        json_span("0" * 32, "00f067aa0ba902b9", t, t + MS),  # all-zero trace id
        json_span(trace_id, "00f067aa0ba902ba", t + 5 * MS, t),  # ends before it starts
    ]
    before = gw.spans.count()
    r = await gw.http.post("/v1/traces", json=json_body(good + bad))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64 is a string in protobuf's JSON mapping
    assert "trace id must be 16 non-zero bytes" in partial["errorMessage"]
    assert "end time before start time" in partial["errorMessage"]
    assert gw.spans.count() == before + 2
    kept = (await gw.http.get(f"/api/v1/traces/{trace_id}")).json()
    child = next(s for s in kept if s["name"] == "SELECT stock")
    assert (
        child["parent_span_id"] == "00f067aa0ba902b7"
        and child["error"]
        and child["status_message"] == "deadlock"
    )
    assert child["service"] == "inventory" and child["duration_ms"] == 19.0

    # gzip, as collectors send it
    trace2 = uuid.uuid4().hex
    body = gzip.compress(json.dumps(json_body([json_span(trace2, "1" * 16, t, t + MS)])).encode())
    r = await gw.http.post(
        "/v1/traces", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert r.status_code == 200 and r.json() == {}
    assert len((await gw.http.get(f"/api/v1/traces/{trace2}")).json()) == 1


JSON = {"content-type": "application/json"}
GZIP_JSON = {"content-type": "application/json", "content-encoding": "gzip"}
NOT_OTLP = {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}
BAD_HEX = "resourceSpans[0].scopeSpans[0].spans[0].traceId: 'xyz' is not hex"


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"{not json", JSON, 400, "body is not valid JSON"),
        (b"[1, 2]", JSON, 400, "expected a JSON object with resourceSpans"),
        (json.dumps(json_body([json_span("xyz", "1" * 16, 1, 2)])).encode(), JSON, 400, BAD_HEX),
        (json.dumps(NOT_OTLP).encode(), JSON, 400, "not an OTLP ExportTraceServiceRequest"),
        (b"\x0a\xff\xff\xff", {"content-type": "application/x-protobuf"}, 400, "not a protobuf"),
        (b"spans", {"content-type": "text/plain"}, 415, "unsupported Content-Type 'text/plain'"),
        (b"\x1f\x8b broken", GZIP_JSON, 400, "not valid gzip"),
        (b"{}", {**JSON, "content-encoding": "br"}, 400, "unsupported Content-Encoding"),
    ],
    ids=["not-json", "not-object", "bad-hex", "bad-field", "bad-protobuf", "content-type", "bad-gzip", "br"],
)
async def test_bad_otlp_requests_are_refused_with_a_status_that_says_why(
    gw, content, headers, status, message
):
    before = gw.spans.count()
    r = await gw.http.post("/v1/traces", content=content, headers=headers)
    assert r.status_code == status, r.text
    if r.headers["content-type"] == "application/x-protobuf":
        rpc = RpcStatus.FromString(r.content)  # OTLP/HTTP: a google.rpc.Status in the request's encoding
        assert rpc.code == 3 and message in rpc.message, rpc.message
    else:
        assert message in r.json()["message"], r.text
    assert gw.spans.count() == before


async def test_an_oversized_export_is_refused(gw):
    limit = gw.config.gateway.max_body_bytes
    r = await gw.http.post(
        "/v1/traces", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    bomb = gzip.compress(b"{" + b" " * (limit + 10) + b"}")  # small on the wire, too big unpacked
    r = await gw.http.post(
        "/v1/traces", content=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert r.status_code == 400 and "decompressed body exceeds the limit" in r.json()["message"]


async def test_a_successful_protobuf_export_answers_in_protobuf(gw):
    batch = await asyncio.to_thread(finished_spans, 1)
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    r = await gw.http.post(
        "/v1/traces",
        content=encode_spans(batch).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")


# --- into the RCA report ------------------------------------------------------------------------


def metrics(store: EmbeddedMetricsStore, onset: float) -> None:
    """Error ratio and latency of the three services: payments breaks at the onset, its callers
    follow within seconds (what metrics alone see: everyone at once)."""
    rng = np.random.default_rng(7)
    for ts in np.arange(onset - 600, onset + 300, 5.0):
        lines = []
        for i, svc in enumerate(SERVICES):
            broken = ts >= onset + 5 * (2 - i)
            err = (0.45 if broken else 0.01) + rng.normal(0, 0.003)
            lat = (0.42 if broken else 0.03) + rng.normal(0, 0.002)
            lines += [
                f'errors_ratio{{service="{svc}"}} {max(err, 0):.5f}',
                f'latency_seconds{{service="{svc}"}} {lat:.5f}',
            ]
        store.ingest_text("\n".join(lines) + "\n", float(ts))


def rca_request(onset: datetime) -> RcaRequest:
    return RcaRequest(
        incident_id="incident-traces",
        service="frontend",
        alerts=[kit.alert("HighErrorRate", service="frontend", starts_at=onset + timedelta(seconds=30))],
        window_start=onset - timedelta(minutes=10),
        window_end=onset + timedelta(minutes=5),
        anomaly_start=onset,
    )


async def test_trace_evidence_reaches_the_rca_report(gw, tmp_path):
    onset = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    ids = await asyncio.to_thread(incident_traffic, gw.url, gw.pusher, onset, Compression.Gzip)
    store = EmbeddedMetricsStore(tmp_path / "metrics.db")
    await asyncio.to_thread(metrics, store, onset.timestamp())
    source = EmbeddedMetricsSource("embedded", store, [])
    rca_cfg = RcaConfig(
        metrics={"errors": "errors_ratio", "latency": "latency_seconds"}, step=timedelta(seconds=5)
    )
    archive = IncidentArchive(f"sqlite:///{tmp_path / 'archive.db'}")
    # The worker's own handle on the gateway's span file, as wiring.py builds it.
    spans = trace_store(gw.config.traces, state_dir(gw.config))
    env = ActivityEnvironment()

    report = await env.run(
        RcaAgent(source, rca_cfg, TOPOLOGY, archive, traces=spans).analyze, rca_request(onset)
    )
    assert report.hypotheses[0].service == "payments"
    assert report.trace_ids and set(report.trace_ids) <= set(ids["failed"]) | set(ids["ok_after"])
    assert report.trace_ids[0] in ids["failed"], "the failing traces of the top hypothesis come first"
    traced = [e for h in report.hypotheses for e in h.evidence if e.kind == EvidenceKind.TRACE]
    assert traced and all(e.detail.get("trace_ids") for e in traced)
    top = [e for e in report.hypotheses[0].evidence if e.kind == EvidenceKind.TRACE]
    assert top and "originate in payments" in " ".join(e.summary for e in top)
    assert set(top[0].detail["trace_ids"].split(",")) <= set(ids["failed"]) | set(ids["ok_after"])

    # Without traces, the same RCA has no trace evidence (what the hook added is the traces').
    plain = await env.run(RcaAgent(source, rca_cfg, TOPOLOGY, archive).analyze, rca_request(onset))
    assert plain.trace_ids == [] and not any(
        e.kind == EvidenceKind.TRACE for h in plain.hypotheses for e in h.evidence
    )
    assert plain.hypotheses[0].service == "payments"

    # A broken trace store is supporting evidence gone, not a failed RCA.
    broken_path = tmp_path / "broken-traces.db"
    broken = trace_store(gw.config.traces.model_copy(update={"path": str(broken_path)}), tmp_path)
    for leftover in tmp_path.glob("broken-traces.db-*"):  # WAL and shared-memory files
        leftover.unlink()
    broken_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        broken.count()
    degraded = await env.run(
        RcaAgent(source, rca_cfg, TOPOLOGY, archive, traces=broken).analyze, rca_request(onset)
    )
    assert degraded.trace_ids == [] and degraded.hypotheses[0].service == "payments"
