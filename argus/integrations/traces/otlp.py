"""OTLP/HTTP trace requests (`POST /v1/traces`) into span records.

Both encodings of the OTLP spec: binary protobuf (`application/x-protobuf`) and JSON
(`application/json`, where trace and span ids are hex strings, not base64 as protobuf's JSON
mapping would have them). Optional gzip. Spans the spec forbids (bad ids, end before start) are
rejected one by one and counted in the response's partial success; the rest are kept.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from argus.models.traces import SpanRecord

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ERROR = Status.StatusCode.STATUS_CODE_ERROR


class OtlpError(ValueError):
    """The request as a whole is unusable (400); the message says why."""


@dataclass
class Decoded:
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc != "gzip":
        raise OtlpError(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpError(f"body is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise OtlpError(f"decompressed body exceeds the limit of {limit} bytes")
    return out


def _hex_to_b64(node: dict[str, Any], key: str, where: str) -> None:
    value = node.get(key)
    if value in (None, ""):
        return
    if not isinstance(value, str):
        raise OtlpError(f"{where}.{key}: expected a hex string")
    try:
        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise OtlpError(f"{where}.{key}: {value!r} is not hex") from exc


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OtlpError("body: expected a JSON object with resourceSpans")
    for i, rs in enumerate(data.get("resourceSpans") or []):
        for j, ss in enumerate((rs or {}).get("scopeSpans") or []):
            for k, span in enumerate((ss or {}).get("spans") or []):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                for key in ("traceId", "spanId", "parentSpanId"):
                    _hex_to_b64(span, key, where)
                for n, link in enumerate(span.get("links") or []):
                    for key in ("traceId", "spanId"):
                        _hex_to_b64(link, key, f"{where}.links[{n}]")
    req = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, req, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return req


def parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == PROTOBUF:
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as exc:  # protobuf raises DecodeError, sometimes others on garbage
            raise OtlpError(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from exc
        return req
    if ctype == JSON:
        return parse_json(body)
    raise OtlpError(f"unsupported Content-Type {content_type!r} ({PROTOBUF} or {JSON})")


def _attr(attrs: Any, key: str) -> Any:
    for kv in attrs:
        if kv.key == key:
            v = kv.value
            which = v.WhichOneof("value")
            return getattr(v, which) if which else None
    return None


def spans_of(req: ExportTraceServiceRequest) -> Decoded:
    out = Decoded()
    for rs in req.resource_spans:
        service = _attr(rs.resource.attributes, "service.name") or "unknown_service"
        for ss in rs.scope_spans:
            for sp in ss.spans:
                problem = None
                if len(sp.trace_id) != 16 or sp.trace_id == bytes(16):
                    problem = "trace id must be 16 non-zero bytes"
                elif len(sp.span_id) != 8 or sp.span_id == bytes(8):
                    problem = "span id must be 8 non-zero bytes"
                elif sp.parent_span_id and len(sp.parent_span_id) != 8:
                    problem = "parent span id must be 8 bytes"
                elif sp.end_time_unix_nano < sp.start_time_unix_nano or not sp.start_time_unix_nano:
                    problem = "end time before start time (or no start time)"
                if problem:
                    out.rejected += 1
                    if len(out.problems) < 5:
                        out.problems.append(f"span {sp.name!r} of {service}: {problem}")
                    continue
                http = _attr(sp.attributes, "http.response.status_code") or _attr(
                    sp.attributes, "http.status_code"
                )
                out.spans.append(
                    SpanRecord(
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_id=sp.parent_span_id.hex() if sp.parent_span_id else "",
                        service=str(service)[:200],
                        name=sp.name[:300] or "(unnamed)",
                        start=sp.start_time_unix_nano / 1e9,
                        duration=(sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e9,
                        error=sp.status.code == ERROR,
                        status_message=sp.status.message[:300],
                        kind=int(sp.kind),
                        http_status=int(http) if isinstance(http, int) else None,
                    )
                )
    return out


def response(decoded: Decoded, content_type: str) -> tuple[bytes, str]:
    resp = ExportTraceServiceResponse()
    if decoded.rejected:
        resp.partial_success.rejected_spans = decoded.rejected
        resp.partial_success.error_message = "; ".join(decoded.problems)
    if content_type.split(";")[0].strip().lower() == JSON:
        return json_format.MessageToJson(resp, indent=None).encode(), JSON
    return resp.SerializeToString(), PROTOBUF


def error_body(message: str, content_type: str) -> tuple[bytes, str]:
    """A google.rpc.Status in the request's encoding, as OTLP/HTTP asks for 4xx answers."""
    from google.rpc.status_pb2 import Status as RpcStatus

    st = RpcStatus(code=3, message=message)  # INVALID_ARGUMENT
    if content_type.split(";")[0].strip().lower() == PROTOBUF:
        return st.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(st, indent=None).encode(), JSON


__all__ = ["Decoded", "OtlpError", "decompress", "error_body", "parse", "response", "spans_of"]
