"""A history prior for root-cause ranking: past incidents that looked like this one, and where
their fix worked, say where this one's root cause probably is.

Pure: (a ranking, the symptom, past incident records) → a re-ranked list. A past incident
counts as evidence for service S when its remediation targeted S and fixed it — that is a
confirmed root cause, unlike the RCA's own guess. Its weight is the overlap of its symptom
(alert names and services) with the current one. The prior only re-orders candidates the
analysis already found; it never adds a service the metrics did not point at.
"""

from __future__ import annotations

from collections import defaultdict

from argus.models import Alert, Hypothesis, IncidentState

STRENGTH = 0.5  # how much a fully similar, confirmed past incident adds to a confidence in [0, 1]


def symptom(alerts: list[Alert]) -> frozenset[str]:
    return frozenset(f"{a.name}@{a.service}" for a in alerts)


def confirmed_root(s: IncidentState) -> str | None:
    """The service a working fix was applied to, if any."""
    if s.outcome.value != "fixed" or s.proposal is None:
        return None
    target = s.proposal.params.get("service")
    return str(target) if target else None


def prior(alerts: list[Alert], past: list[IncidentState]) -> dict[str, float]:
    """Service → similarity-weighted share of confirmed root causes among similar past incidents."""
    now = symptom(alerts)
    if not now:
        return {}
    mass: dict[str, float] = defaultdict(float)
    total = 0.0
    for s in past:
        root = confirmed_root(s)
        if root is None:
            continue
        then = symptom(s.alerts)
        sim = len(now & then) / len(now | then) if then else 0.0
        if sim <= 0:
            continue
        mass[root] += sim
        total += sim
    return {k: v / total for k, v in mass.items()} if total else {}


def rerank(hypotheses: list[Hypothesis], alerts: list[Alert], past: list[IncidentState]) -> list[Hypothesis]:
    """The hypotheses re-ordered by confidence + STRENGTH x prior (stable for equal scores)."""
    p = prior(alerts, past)
    if not p:
        return list(hypotheses)
    scored = [(h.confidence + STRENGTH * p.get(h.service, 0.0), -i, h) for i, h in enumerate(hypotheses)]
    return [h for _, _, h in sorted(scored, key=lambda x: (x[0], x[1]), reverse=True)]
