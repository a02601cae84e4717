"""Recommender: matches playbooks to the incident (alert labels, top hypotheses and their
fault signature), ranks them by fit and by past success from the archive, and turns the
best into a concrete proposal for approval."""

from __future__ import annotations

import asyncio
import re

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.integrations.playbooks import fill
from argus.models import Playbook, Proposal, ProposedStep, Recommendation
from argus.models.agents import RecommendRequest, RecommendResult
from argus.models.remediation import ActionSpec


def _score(pb: Playbook, req: RecommendRequest) -> tuple[float, str, str | None]:
    """Fit of a playbook: (score, reason, target service)."""
    reasons: list[str] = []
    score = 0.0
    target = None
    hyps = req.rca.hypotheses if req.rca else []
    for rank, h in enumerate(hyps[:3]):
        weight = h.confidence * (1.0 if rank == 0 else 0.5)
        parts = h.fault_signature.split("+")
        # The signature's first part is the dominant finding; later parts count less.
        sig_fit = max((1.0 / (1 + parts.index(s)) for s in pb.match.signatures if s in parts), default=0.0)
        svc_hit = not pb.match.services or h.service in pb.match.services
        if sig_fit and svc_hit:
            score += (2.0 * weight + 1.0) * sig_fit
            reasons.append(
                f"fault signature '{h.fault_signature}' of {h.service} matches {pb.match.signatures}"
            )
            target = target or h.service
    for alert in req.alerts:
        if pb.match.alertnames and alert.name in pb.match.alertnames:
            score += 0.5
            reasons.append(f"alert {alert.name} is listed")
            target = target or alert.service
            break
    if pb.match.labels:
        for alert in req.alerts:
            if all(alert.labels.get(k) == v for k, v in pb.match.labels.items()):
                score += 0.5
                reasons.append(f"alert labels match {pb.match.labels}")
                target = target or alert.service
                break
    if target is None and hyps:
        target = hyps[0].service
    return score, "; ".join(reasons), target


def _params(pb: Playbook, target: str | None) -> dict[str, str | int | float | bool] | None:
    params: dict[str, str | int | float | bool] = {}
    for name, spec in pb.parameters.items():
        if name == "service" and target:
            value: object = target
        elif spec.default is not None:
            value = spec.default
        elif spec.required:
            return None
        else:
            continue
        if spec.type == "int":
            value = int(value)  # type: ignore[arg-type]
        elif spec.type == "float":
            value = float(value)  # type: ignore[arg-type]
        elif spec.type == "bool":
            value = bool(value)
        else:
            value = str(value)
            if spec.pattern and not re.fullmatch(spec.pattern, value):
                return None
            if spec.choices and value not in spec.choices:
                return None
        params[name] = value  # type: ignore[assignment]
    return params


def build_proposal(incident_id: str, pb: Playbook, params: dict, revision: int = 1) -> Proposal:
    steps = []
    for s in pb.steps:
        run = ActionSpec.model_validate({**s.run.model_dump(), "args": fill(s.run.args, params)})
        rb = (
            ActionSpec.model_validate({**s.rollback.model_dump(), "args": fill(s.rollback.args, params)})
            if s.rollback
            else None
        )
        steps.append(ProposedStep(name=s.name, run=run, rollback=rb))
    target = params.get("service", "")
    return Proposal(
        incident_id=incident_id,
        playbook=pb.name,
        params=params,
        steps=steps,
        risk=pb.risk,
        summary=f"{pb.name} on {target}: {pb.description}".strip(),
        revision=revision,
    )


class Recommender:
    def __init__(self, playbooks: list[Playbook], archive: IncidentArchive) -> None:
        self.playbooks = playbooks
        self.archive = archive

    def recommend_sync(self, req: RecommendRequest) -> RecommendResult:
        stats = self.archive.playbook_stats()
        ranked: list[tuple[float, Recommendation, Playbook, dict]] = []
        for pb in self.playbooks:
            fit, reason, target = _score(pb, req)
            if fit <= 0:
                continue
            params = _params(pb, target)
            if params is None:
                continue
            fixed, runs = stats.get(pb.name, (0, 0))
            # Laplace-smoothed success rate: a playbook with no history starts at 0.5.
            rate = (fixed + 1) / (runs + 2)
            total = fit * (0.5 + rate)
            ranked.append(
                (
                    total,
                    Recommendation(
                        playbook=pb.name,
                        params=params,
                        score=round(total, 4),
                        risk=pb.risk,
                        expected_effect=pb.expected_effect,
                        rollback=pb.rollback_summary,
                        reason=reason
                        + (f"; fixed {fixed} of {runs} past incidents" if runs else "; no history yet"),
                        past_success_rate=(fixed / runs) if runs else None,
                        source=pb.source,
                    ),
                    pb,
                    params,
                )
            )
        ranked.sort(key=lambda x: (-x[0], x[1].risk.rank, x[1].playbook))
        recs = [r for _, r, _, _ in ranked]
        proposal = build_proposal(req.incident_id, ranked[0][2], ranked[0][3]) if ranked else None
        return RecommendResult(recommendations=recs, proposal=proposal)

    @activity.defn(name="recommend")
    async def recommend(self, req: RecommendRequest) -> RecommendResult:
        return await asyncio.to_thread(self.recommend_sync, req)
