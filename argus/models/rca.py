"""Root-cause analysis contracts: evidence, hypotheses and the report."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .common import Model, UtcDateTime


class EvidenceKind(StrEnum):
    METRIC = "metric"
    LOG = "log"
    CHANGE = "change"
    TRACE = "trace"
    TOPOLOGY = "topology"
    HISTORY = "history"


class Evidence(Model):
    kind: EvidenceKind
    summary: str
    metric: str | None = None
    baseline: float | None = None
    value: float | None = None
    onset: UtcDateTime | None = None
    zscore: float | None = None
    detail: dict[str, str | float | int | None] = Field(default_factory=dict)


class Hypothesis(Model):
    service: str
    confidence: float = Field(ge=0.0, le=1.0)
    score: float
    summary: str
    fault_signature: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


class RcaReport(Model):
    hypotheses: list[Hypothesis]
    discounted: list[str] = Field(default_factory=list)
    window_start: UtcDateTime
    window_end: UtcDateTime
    anomaly_start: UtcDateTime
    graph_source: str = "given"
    method: str = ""
    notes: list[str] = Field(default_factory=list)
    trace_ids: list[str] = Field(default_factory=list)  # exemplar traces of the trace evidence

    @property
    def top(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    def summary(self) -> str:
        if not self.hypotheses:
            return "RCA found no candidate root cause in the incident window."
        lines = [
            f"{i + 1}. {h.service} ({h.confidence:.0%}): {h.summary}"
            for i, h in enumerate(self.hypotheses[:3])
        ]
        return "\n".join(lines)


class ChangeEvent(Model):
    """A deploy or configuration change, from `POST /api/v1/changes` or a source."""

    service: str
    at: UtcDateTime
    kind: str = "deploy"
    description: str = ""
    version: str | None = None
    author: str | None = None
    source: str = "api"
    id: str = ""
