"""Gateway overhead benchmark: OTLP span ingest, the payload codec, and the auth middleware.

    .venv/bin/python bench/gateway_overhead_bench.py [--seconds 10] [--clients 4] [--batch 512]
                                                     [--requests 3000]

1. OTLP ingest (spans/s). A Temporal dev server and the ARGUS gateway (auth on) each run in a
   process of their own, the gateway exactly as `argus up` serves it (uvicorn, all routers, the
   auth middleware, the audit log). This process is the load: `--clients` concurrent HTTP
   clients post OTLP/HTTP protobuf exports of `--batch` spans (the SDK's BatchSpanProcessor
   default is 512), encoded by the OpenTelemetry SDK's own encoder from real SDK spans (three
   services, one trace per three spans), with a responder token, for `--seconds`. A span counts
   once the gateway answered 200 (the spans are then in its SQLite store); the store's count is
   checked against that at the end.
2. Payload codec (payloads/s). AES-256-GCM encode and decode of one ~2 KB payload per call
   (an alert batch through the pydantic converter, as a workflow input would be), in this
   process, one core.
3. Auth middleware (µs per request). The same routers in-process, called straight through ASGI
   (no sockets), with and without the middleware: a read with a bearer token (token lookup,
   route rule) and a state-changing request (plus its audit entry). The difference is what the
   middleware adds. The state-changing request is also run with the audit write done in the
   request path (the design before the batched audit log), for comparison.

All on one machine; figures vary with its load (the ones in the report were taken on a shared
2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.workers.devserver import DevServer, free_port, port_open, wait_for_namespace  # noqa: E402

NS = 1_000_000_000


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return (
        values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))] if values else float("nan")
    )


# --- the gateway process ----------------------------------------------------------------------


def gateway_config(state: Path, temporal: str, port: int) -> dict:
    return {
        "state_dir": str(state),
        "temporal": {"address": temporal, "namespace": "default"},
        "gateway": {"host": "127.0.0.1", "port": port},
        "auth": {"enabled": True},
        "sandbox": {"enabled": False},
        "notify": {"channels": ["outbox"], "echo": False},
    }


def build_context(config, client):  # type: ignore[no-untyped-def]
    from argus.integrations.archive import IncidentArchive
    from argus.integrations.signed_links import LinkSigner, NonceStore
    from argus.workers.gateway import GatewayContext
    from argus.workers.settings import state_dir

    state = state_dir(config)
    return GatewayContext(
        config,
        client,
        IncidentArchive(f"sqlite:///{state / 'archive.db'}"),
        LinkSigner(b"bench-link-secret-0123456789abcd"),
        NonceStore(state / "nonces.db"),
    )


async def serve(config_path: Path) -> None:
    """`--serve`: the gateway as `argus up` runs it (Stack builds the same context and app)."""
    import uvicorn

    from argus.models import ArgusConfig
    from argus.workers.client import connect
    from argus.workers.gateway import create_app

    text = await asyncio.to_thread(config_path.read_text)
    config = ArgusConfig.model_validate(yaml.safe_load(text))
    client = await connect(config.temporal.address or "", config.temporal.namespace)
    app = create_app(build_context(config, client))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=config.gateway.port, log_level="warning", access_log=False)
    )
    await server.serve()


# --- 1. OTLP ingest -----------------------------------------------------------------------------


def otlp_bodies(batch: int, distinct: int = 16) -> list[bytes]:
    """Protobuf ExportTraceServiceRequests made by the SDK's encoder from real SDK spans."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    memory = InMemorySpanExporter()
    tracers = {}
    for svc in ("frontend", "checkout", "payments"):
        p = TracerProvider(resource=Resource.create({"service.name": svc, "deployment.environment": "bench"}))
        p.add_span_processor(SimpleSpanProcessor(memory))
        tracers[svc] = p.get_tracer("bench")
    t0 = int(time.time() * NS)
    bodies = []
    for d in range(distinct):
        memory.clear()
        for i in range(batch // 3 + 1):
            t = t0 + (d * batch + i) * 1_000_000
            fe = tracers["frontend"].start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t)
            fe.set_attribute("http.request.method", "GET")
            co = tracers["checkout"].start_span(
                "POST /orders", context=trace.set_span_in_context(fe), start_time=t + 10**6
            )
            pay = tracers["payments"].start_span(
                "charge", context=trace.set_span_in_context(co), start_time=t + 2 * 10**6
            )
            pay.set_attribute("http.response.status_code", 200 if i % 10 else 502)
            if i % 10 == 0:
                pay.set_status(Status(StatusCode.ERROR, "card processor timeout"))
            pay.end(end_time=t + 30 * 10**6)
            co.end(end_time=t + 35 * 10**6)
            fe.end(end_time=t + 40 * 10**6)
        spans = list(memory.get_finished_spans())[:batch]
        bodies.append(encode_spans(spans).SerializeToString())
    return bodies


async def ingest_load(
    url: str, token: str, bodies: list[bytes], batch: int, seconds: float, clients: int
) -> dict:
    latencies: list[float] = []
    sent = errors = accepted = 0
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {token}"}
    warmup_until = time.perf_counter() + 1.0
    deadline = warmup_until + seconds

    async def one(c: int) -> None:
        nonlocal sent, errors, accepted
        n = c
        async with httpx.AsyncClient(timeout=60) as http:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await http.post(f"{url}/v1/traces", content=bodies[n % len(bodies)], headers=headers)
                n += 1
                accepted += batch if r.status_code == 200 else 0
                if t0 < warmup_until:
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    sent += batch
                else:
                    errors += 1

    await asyncio.gather(*(one(c) for c in range(clients)))
    return {
        "spans_per_s": round(sent / seconds),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "errors": errors,
        "req_p50_ms": round(pct(latencies, 50) * 1000, 1),
        "req_p99_ms": round(pct(latencies, 99) * 1000, 1),
        "spans_accepted_total": accepted,  # warm-up included: what the store must hold
    }


async def bench_ingest(args: argparse.Namespace, tmp: Path) -> dict:
    from argus.models import ArgusConfig
    from argus.models.security import Role
    from argus.workers.auth import AuthStore, auth_url
    from argus.workers.gateway.traces import trace_store_of

    dev = DevServer(tmp / "temporal", "default", port=free_port(), ui_port=None)
    dev.start()
    gw_proc = None
    try:
        await wait_for_namespace(dev.address, "default")
        port = free_port()
        raw = gateway_config(tmp / "state", dev.address, port)
        config = ArgusConfig.model_validate(raw)
        (tmp / "argus.yaml").write_text(yaml.safe_dump(raw))
        token = (
            AuthStore(auth_url(config, tmp / "state")).create_token("otel-collector", Role.RESPONDER).token
        )
        bodies = otlp_bodies(args.batch)
        gw_proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", str(tmp / "argus.yaml"), stdout=asyncio.subprocess.DEVNULL
        )
        for _ in range(300):
            if port_open("127.0.0.1", port):
                break
            if gw_proc.returncode is not None:
                raise SystemExit("the gateway process exited; run it with --serve to see why")
            await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        result = await ingest_load(url, token, bodies, args.batch, args.seconds, args.clients)
        store = trace_store_of(build_context(config, None))
        assert store is not None
        result["spans_in_store"] = store.count()
        result["body_bytes"] = len(bodies[0])
        return result
    finally:
        if gw_proc is not None:
            gw_proc.terminate()
            await asyncio.wait_for(gw_proc.wait(), timeout=15)
        dev.stop()


# --- 2. payload codec -------------------------------------------------------------------------


def bench_codec(seconds: float) -> dict:
    import base64

    from argus.models import Alert, AlertBatch
    from argus.workers.codec import EncryptionCodec, data_converter, new_key

    alerts = [
        Alert(
            labels={
                "alertname": "HighErrorRate",
                "service": f"svc-{i}",
                "severity": "critical",
                "pod": f"pod-{i}-7d9f",
            },
            annotations={
                "summary": f"error ratio on svc-{i} is 0.31 (threshold 0.05)",
                "runbook": "https://wiki/rb/1",
            },
            starts_at=datetime.now(UTC),
        )
        for i in range(5)
    ]
    payload = data_converter(None).payload_converter.to_payloads([AlertBatch(batch_id="b-1", alerts=alerts)])[
        0
    ]
    codec = EncryptionCodec("k2", {"k1": base64.b64decode(new_key()), "k2": base64.b64decode(new_key())})
    sealed = codec.encode_one(payload)
    assert codec.decode_one(sealed) == payload

    def rate(fn, arg) -> float:  # type: ignore[no-untyped-def]
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            for _ in range(500):
                fn(arg)
            n += 500
        return n / elapsed

    enc, dec = rate(codec.encode_one, payload), rate(codec.decode_one, sealed)
    size = payload.ByteSize()
    return {
        "payload_bytes": size,
        "sealed_bytes": sealed.ByteSize(),
        "encode_per_s": round(enc),
        "decode_per_s": round(dec),
        "encode_MB_per_s": round(enc * size / 1e6, 1),
        "decode_MB_per_s": round(dec * size / 1e6, 1),
        "encode_us": round(1e6 / enc, 1),
        "decode_us": round(1e6 / dec, 1),
    }


# --- 3. auth middleware -----------------------------------------------------------------------


async def asgi_call(app, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:  # type: ignore[no-untyped-def]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 5555),
        "server": ("gw", 80),
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_request_us(app, method: str, path: str, headers: dict[str, str], expect: int, n: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(200):  # warm caches, connections, the token's last-used write
        assert await asgi_call(app, method, path, headers) == expect
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 5):
            await asgi_call(app, method, path, headers)
        rounds.append((time.perf_counter() - t0) / (n // 5) * 1e6)
    return statistics.median(rounds)


async def bench_auth(tmp: Path, n: int) -> dict:
    from fastapi import FastAPI

    from argus.models import ArgusConfig
    from argus.models.security import Role
    from argus.workers.auth import AuthService, AuthStore
    from argus.workers.gateway import ROUTERS, GatewayContext, create_app
    from argus.workers.settings import Secrets

    state = tmp / "auth-state"
    state.mkdir(parents=True, exist_ok=True)
    config = ArgusConfig.model_validate(gateway_config(state, "127.0.0.1:1", 1))
    store = AuthStore(f"sqlite:///{state / 'auth.db'}")
    token = store.create_token("bench", Role.RESPONDER).token
    bearer = {"authorization": f"Bearer {token}"}

    def context() -> GatewayContext:
        ctx = build_context(config, None)
        ctx.extras["auth"] = AuthService(config, store, Secrets({}))
        return ctx

    with_ctx = context()
    with_mw = create_app(with_ctx)
    bare = FastAPI()
    for make in ROUTERS:
        bare.include_router(make(context()))

    out: dict[str, float] = {}
    read = ("GET", "/api/v1/whoami", bearer, 200)
    change = ("POST", "/api/v1/heartbeats/no-such-check", bearer, 404)  # handler refuses; audited
    async with with_mw.router.lifespan_context(with_mw):  # the audit log's writer runs
        out["read_with"] = await per_request_us(with_mw, *read, n)
        out["change_with"] = await per_request_us(with_mw, *change, n)
        written_before = with_ctx.extras["auth"].audit_log.written
    out["audit_entries_batched"] = with_ctx.extras["auth"].audit_log.written - written_before
    out["read_without"] = await per_request_us(bare, *read, n)
    out["change_without"] = await per_request_us(bare, *change, n)

    # The previous design: the audit entry written in the request path, one transaction each.
    sync_ctx = context()
    svc = sync_ctx.extras["auth"]

    async def audit_inline(*a, **kw) -> None:  # type: ignore[no-untyped-def]
        await asyncio.to_thread(svc.record, *a, **kw)

    svc.audit = audit_inline
    sync_app = create_app(sync_ctx)
    out["change_with_inline_audit"] = await per_request_us(sync_app, *change, n)
    return {
        "read_us_without_auth": round(out["read_without"], 1),
        "read_us_with_auth": round(out["read_with"], 1),
        "auth_adds_us_read": round(out["read_with"] - out["read_without"], 1),
        "change_us_without_auth": round(out["change_without"], 1),
        "change_us_with_auth": round(out["change_with"], 1),
        "auth_adds_us_change": round(out["change_with"] - out["change_without"], 1),
        "change_us_with_inline_audit_write": round(out["change_with_inline_audit"], 1),
        "auth_adds_us_change_inline_audit": round(out["change_with_inline_audit"] - out["change_without"], 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        await serve(args.serve)
        return
    with tempfile.TemporaryDirectory(prefix="argus-gw-bench-") as d:
        tmp = Path(d)
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}", flush=True)
        ingest = await bench_ingest(args, tmp)
        print(
            f"OTLP ingest ({args.clients} clients, {args.batch}-span protobuf exports of "
            f"{ingest['body_bytes']} B, auth on, {args.seconds:.0f} s): {ingest['spans_per_s']} spans/s, "
            f"{ingest['requests_per_s']} req/s, p50 {ingest['req_p50_ms']} ms, "
            f"p99 {ingest['req_p99_ms']} ms, errors {ingest['errors']}; "
            f"store holds {ingest['spans_in_store']} of "
            f"{ingest['spans_accepted_total']} spans answered 200",
            flush=True,
        )
        codec = bench_codec(min(args.seconds, 3.0))
        print(
            f"codec AES-256-GCM, {codec['payload_bytes']} B payload ({codec['sealed_bytes']} B sealed): "
            f"encode {codec['encode_per_s']} payloads/s ({codec['encode_us']} µs, "
            f"{codec['encode_MB_per_s']} MB/s), decode {codec['decode_per_s']} payloads/s "
            f"({codec['decode_us']} µs, {codec['decode_MB_per_s']} MB/s)",
            flush=True,
        )
        auth = await bench_auth(tmp, args.requests)
        print(
            f"auth middleware (in-process ASGI, {args.requests} requests each): read with token "
            f"{auth['read_us_without_auth']} -> {auth['read_us_with_auth']} µs "
            f"(+{auth['auth_adds_us_read']} µs); state-changing {auth['change_us_without_auth']} -> "
            f"{auth['change_us_with_auth']} µs (+{auth['auth_adds_us_change']} µs, audit batched); "
            f"with the audit write in the request path {auth['change_us_with_inline_audit_write']} µs "
            f"(+{auth['auth_adds_us_change_inline_audit']} µs)",
            flush=True,
        )
        print(json.dumps({"ingest": ingest, "codec": codec, "auth": auth}))


if __name__ == "__main__":
    asyncio.run(main())
