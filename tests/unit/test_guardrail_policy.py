"""The pure guardrail decisions: which services a proposal touches, the per-proposal blast radius,
and change freezes (fixed windows and recurring routing time intervals)."""

from __future__ import annotations

from datetime import UTC, datetime

from argus.analysis.guardrails import active_freeze, blast_radius_refusal, freeze_refusal, proposal_services
from argus.models import ActionSpec, Proposal, ProposedStep
from argus.models.config import FreezeWindow
from argus.models.remediation import BlastRadius, Risk
from argus.models.routing import TimeInterval


def proposal(risk: str = "medium", *targets: dict) -> Proposal:
    steps = [
        ProposedStep(name=f"s{i}", run=ActionSpec(type="kubernetes", action="restart", args=t))
        for i, t in enumerate(targets)
    ]
    return Proposal(incident_id="i", playbook="pb", params={"service": "payments"}, steps=steps,
                    risk=Risk(risk), summary="x")  # fmt: skip


def test_services_of_a_proposal_and_the_per_proposal_blast_radius():
    p = proposal(
        "low", {"namespace": "prod", "deployment": "payments"}, {"service": "checkout"}, {"service": "ledger"}
    )
    assert proposal_services(p) == ["checkout", "ledger", "payments"]
    msg = blast_radius_refusal(proposal_services(p), BlastRadius(max_services=2))
    assert msg and "touches 3 services (checkout, ledger, payments)" in msg and "limit of 2" in msg
    assert blast_radius_refusal(["payments"], BlastRadius(max_services=2)) is None


def test_fixed_freeze_window_with_a_risk_ceiling():
    f = FreezeWindow(
        name="release",
        starts_at=datetime(2026, 12, 1, tzinfo=UTC),
        ends_at=datetime(2026, 12, 2, tzinfo=UTC),
        services=["payments"],
        max_risk=Risk.LOW,
    )
    inside = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert freeze_refusal(proposal("low"), ["payments"], [f], inside, []) is None
    msg = freeze_refusal(proposal("medium"), ["payments"], [f], inside, [])
    assert msg and "change freeze 'release' until 2026-12-02 00:00 UTC: only low-risk changes" in msg
    assert freeze_refusal(proposal("high"), ["checkout"], [f], inside, []) is None, (
        "other services are not frozen"
    )
    assert freeze_refusal(proposal("high"), ["payments"], [f], datetime(2026, 12, 2, tzinfo=UTC), []) is None


def test_recurring_freeze_from_routing_time_intervals():
    weekends = TimeInterval.model_validate(
        {"name": "weekends", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]}
    )
    f = FreezeWindow(name="no-weekend-changes", time_intervals=["weekends"])
    saturday = datetime(2026, 11, 28, 10, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert active_freeze([f], ["payments"], saturday, [weekends]) is f
    assert active_freeze([f], ["payments"], monday, [weekends]) is None
    assert "no automatic changes" in (
        freeze_refusal(proposal("low"), ["payments"], [f], saturday, [weekends]) or ""
    )
