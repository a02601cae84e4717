"""Metric samples and series as sources return them."""

from __future__ import annotations

from pydantic import Field

from .common import Model


class Sample(Model):
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float
    ts: float


class Series(Model):
    """One element of a range result; `points` are (unix seconds, value)."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


class SourceHealth(Model):
    source: str
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    consecutive_failures: int = 0
    last_success: float | None = None
