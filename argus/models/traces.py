"""Traces (APM): the OTLP/HTTP receiver's configuration and the spans ARGUS keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import Field

from .common import Model, UtcDateTime
from .durations import Duration


class TracesConfig(Model):
    """ARGUS receives OTLP/HTTP spans on `POST /v1/traces` (point an OpenTelemetry SDK or a
    Collector's `otlphttp` exporter at the gateway) and keeps a bounded window of them for RCA."""

    enabled: bool = True
    path: str = "traces.db"  # SQLite file, relative to the state dir unless absolute
    retention: Duration = timedelta(hours=24)
    max_spans: int = Field(default=2_000_000, ge=1000)
    link_template: str | None = None  # e.g. "https://jaeger.example/trace/{trace_id}"
    max_trace_ids: int = Field(default=5, ge=1, le=50)  # exemplar traces per finding


class SpanView(Model):
    """One stored span, as the query API returns it."""

    trace_id: str
    span_id: str
    parent_span_id: str = ""
    service: str
    name: str
    kind: int = 0
    start: UtcDateTime
    duration_ms: float
    error: bool = False
    status_message: str = ""
    http_status: int | None = None


class TraceFindingView(Model):
    """Per-service trace evidence for an incident window (what RCA receives, for people)."""

    service: str
    kind: str  # errors | latency
    summary: str
    count: float
    baseline_count: float
    first_seen: UtcDateTime | None = None
    trace_ids: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span as RCA reads it: a plain dataclass, since a window holds many thousands."""

    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_id: str  # "" for a root span
    service: str
    name: str
    start: float  # unix seconds
    duration: float  # seconds
    error: bool = False
    status_message: str = ""
    kind: int = 0
    http_status: int | None = None


__all__ = ["SpanRecord", "SpanView", "TraceFindingView", "TracesConfig"]
