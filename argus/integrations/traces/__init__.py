"""Traces (APM): the OTLP/HTTP receiver's decoding and the bounded span store RCA reads."""

from __future__ import annotations

from pathlib import Path

from argus.models.traces import TracesConfig

from .otlp import OtlpError
from .store import TraceStore


def trace_store(config: TracesConfig, state: Path) -> TraceStore | None:
    """The span store `traces` configures (None when traces are off)."""
    if not config.enabled:
        return None
    p = Path(config.path).expanduser()
    return TraceStore(p if p.is_absolute() else state / p, config.retention.total_seconds(), config.max_spans)


__all__ = ["OtlpError", "TraceStore", "trace_store"]
