"""Fault signatures: a short name for what kind of fault a root-cause candidate shows.

The Recommender matches playbooks on them ("cpu", "memory", "deploy", ...), and the
Aggregator clusters incidents by them, so they use a small fixed vocabulary derived from
the candidate's own evidence (its strongest anomalous metrics and any change or log
evidence), never from labels or names of the incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("cpu", "memory", "latency", "errors", "overload", "deploy", "logs")

_METRIC_KIND = (
    ("cpu", ("cpu",)),
    ("memory", ("mem", "heap", "rss", "oom")),
    ("latency", ("latency", "duration", "p99", "p95", "p50", "response_time", "rt")),
    ("errors", ("error", "err", "fail", "5xx", "exception")),
    ("overload", ("request", "rps", "qps", "throughput", "traffic", "rate")),
)


def metric_kind(name: str | None) -> str | None:
    if not name:
        return None
    low = name.lower()
    for kind, needles in _METRIC_KIND:
        if any(n in low for n in needles):
            return kind
    return None


@dataclass(frozen=True)
class SignalEvidence:
    kind: str  # metric | change | log | propagation
    metric: str | None
    weight: float
    # A metric anomaly of the candidate that none of its own other anomalies explains: where the
    # fault starts (cpu of a CPU hog; traffic of an overload, whose cpu rise it explains).
    origin: bool = True


CHANGE_MIN_WEIGHT = 0.3  # a change the service's own anomaly did not follow is no signature


def signature(evidence: Iterable[SignalEvidence], max_parts: int = 2) -> str:
    """E.g. "deploy+errors", "cpu+latency", "overload+cpu"; "unknown" when nothing is recognisable.
    Origins come before the anomalies they explain, then the stronger before the weaker."""
    parts: list[str] = []
    ev = list(evidence)
    if any(e.kind == "change" and e.weight >= CHANGE_MIN_WEIGHT for e in ev):
        parts.append("deploy")
    metric_ev = sorted((e for e in ev if e.kind == "metric"), key=lambda e: (not e.origin, -e.weight))
    for e in metric_ev:
        k = metric_kind(e.metric)
        if k and k not in parts:
            parts.append(k)
        if len(parts) >= max_parts:
            break
    if not parts and any(e.kind == "log" for e in ev):
        parts.append("logs")
    return "+".join(parts) or "unknown"
