"""Simulated time as the outside world reads it."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    """Unix seconds to RFC 3339 UTC with milliseconds, the form Elasticsearch and ARGUS expect."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
