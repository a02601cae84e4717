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
    # False when another service's anomaly explains this one (it is an effect, not the fault).
    origin: bool = True


CHANGE_MIN_WEIGHT = 0.3  # a change the service's own anomaly did not follow is no signature
CAUSE_KINDS = ("cpu", "memory", "overload")
CAUSE_MIN_SHARE = 0.2


def signature(evidence: Iterable[SignalEvidence], max_parts: int = 2) -> str:
    """E.g. "deploy+errors", "cpu+latency", "overload+cpu"; "unknown" when nothing is recognisable.
    Origins come before the anomalies they explain; among origins a cause (cpu, memory, load) before
    the harm it does; then the stronger before the weaker."""
    parts: list[str] = []
    ev = list(evidence)
    if any(e.kind == "change" and e.weight >= CHANGE_MIN_WEIGHT for e in ev):
        parts.append("deploy")

    # Unexplained resource or load movements (a cause) come before unexplained harm (latency,
    # errors), which comes before anything its service's own anomalies explain.
    # A cause must carry a real share of the blame: a faint wobble (the daily load ripple) does not
    # jump ahead of the harm it did not cause.
    metrics = [e for e in ev if e.kind == "metric"]
    top = max((e.weight for e in metrics), default=0.0)

    def rank(e: SignalEvidence) -> tuple[int, float]:
        cause = metric_kind(e.metric) in CAUSE_KINDS and e.weight >= CAUSE_MIN_SHARE * top
        return (0 if e.origin and cause else 1 if e.origin else 2, -e.weight)

    metric_ev = sorted(metrics, key=rank)
    for e in metric_ev:
        k = metric_kind(e.metric)
        if k and k not in parts:
            parts.append(k)
        if len(parts) >= max_parts:
            break
    if not parts and any(e.kind == "log" for e in ev):
        parts.append("logs")
    return "+".join(parts) or "unknown"
