"""Metric samples and series as sources return them."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ConfigDict, Field

from .common import Model

# Prometheus answers "NaN" (0/0, common in ratios), "+Inf" and "-Inf". JSON has no such numbers:
# pydantic writes them as null by default, which a `float` field then refuses, so a collect result
# holding one could never be decoded by the workflow. As strings ("NaN", "Infinity", "-Infinity")
# they validate back to the same floats.
_INF_NAN = ConfigDict(ser_json_inf_nan="strings")


class Sample(Model):
    """One element of an instant vector. `value` may be nan or ±inf, as Prometheus returns."""

    model_config = _INF_NAN

    labels: dict[str, str]
    value: float
    ts: float


class Series(Model):
    """One element of a range result; `points` are (unix seconds, value), values may be nan/±inf."""

    model_config = _INF_NAN

    labels: dict[str, str]
    points: list[tuple[float, float]] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


class Answer(list):
    """A source's answer to one query: its samples or series, and the warnings the source gave
    with them (Prometheus's `warnings`: a truncated or partial answer, a metric that may not be
    a counter, ...). A plain list to any caller that does not ask."""

    def __init__(self, items: Iterable[object] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.warnings: list[str] = list(warnings)


def warnings_of(*answers: object) -> list[str]:
    """The warnings of these answers, each once, in order (none for a plain list)."""
    return list(dict.fromkeys(w for a in answers for w in getattr(a, "warnings", ())))


class SourceHealth(Model):
    source: str
    ok: bool
    detail: str = ""
    # what the source last warned about while answering (it may be up and still warn)
    warnings: list[str] = Field(default_factory=list)
    latency_ms: float | None = None
    consecutive_failures: int = 0
    last_success: float | None = None
