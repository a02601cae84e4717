"""Remediation guardrails that are pure decisions on a proposal: which services it touches, whether
that is within the blast radius, and whether a change freeze forbids it now.

Pure and deterministic (the time is passed in), so IncidentWorkflow can call them directly.
"""

from __future__ import annotations

from datetime import datetime

from argus.analysis.routing import in_time_interval
from argus.models.config import FreezeWindow
from argus.models.remediation import BlastRadius, Proposal
from argus.models.routing import TimeInterval

TARGET_ARGS = ("service", "deployment")


def proposal_services(proposal: Proposal) -> list[str]:
    """Every service the proposal's forward steps act on (`service` or `deployment` arguments), plus
    the `service` parameter; sorted, so locks are always taken in the same order."""
    found: set[str] = set()
    svc = proposal.params.get("service")
    if isinstance(svc, str) and svc:
        found.add(svc)
    for step in proposal.steps:
        for arg in TARGET_ARGS:
            value = step.run.args.get(arg)
            if isinstance(value, str) and value:
                found.add(value)
                break
    return sorted(found)


def blast_radius_refusal(services: list[str], limits: BlastRadius) -> str | None:
    if len(services) > limits.max_services:
        return (
            f"blast radius: the proposal touches {len(services)} services ({', '.join(services)}), "
            f"more than the limit of {limits.max_services} per remediation"
        )
    return None


def active_freeze(
    freezes: list[FreezeWindow],
    services: list[str],
    now: datetime,
    intervals: list[TimeInterval],
) -> FreezeWindow | None:
    """The first freeze window that covers `now` and any of `services`."""
    by_name = {t.name: t for t in intervals}
    for f in freezes:
        if f.services and not set(f.services) & set(services):
            continue
        if f.starts_at is not None and f.ends_at is not None:
            if f.starts_at <= now < f.ends_at:
                return f
            continue
        if any(name in by_name and in_time_interval(by_name[name], now) for name in f.time_intervals):
            return f
    return None


def freeze_refusal(
    proposal: Proposal,
    services: list[str],
    freezes: list[FreezeWindow],
    now: datetime,
    intervals: list[TimeInterval],
) -> str | None:
    f = active_freeze(freezes, services, now, intervals)
    if f is None:
        return None
    if f.max_risk is not None and proposal.risk.rank <= f.max_risk.rank:
        return None
    until = f" until {f.ends_at:%Y-%m-%d %H:%M} UTC" if f.ends_at else ""
    allowed = f"only {f.max_risk.value}-risk changes are allowed" if f.max_risk else "no automatic changes"
    return (
        f"change freeze {f.name!r}{until}: {allowed}, and {proposal.playbook} is {proposal.risk.value} risk"
    )


def unknown_time_intervals(freezes: list[FreezeWindow], intervals: list[TimeInterval]) -> list[str]:
    """Freeze windows that name a time interval routing does not define (a configuration error)."""
    known = {t.name for t in intervals}
    return [
        f"freeze {f.name!r}: unknown time interval {n!r}"
        for f in freezes
        for n in f.time_intervals
        if n not in known
    ]
