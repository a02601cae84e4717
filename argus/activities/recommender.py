"""Recommender: matches playbooks to the incident (alert labels, top hypotheses and their fault
signature), ranks them by fit and by past success from the archive, and turns the best into a
concrete proposal for approval.

Two libraries feed it: the YAML playbooks (`playbooks/`), and runbooks published to the docs
repository. A runbook's front matter says when it applies and which playbook carries it out:

    kind: runbook
    match: {services: [payments], signatures: [deploy+errors], labels: {...}, alertnames: [...]}
    playbook: rollback-deploy

A runbook is narrower than its playbook (written for a service and a fault seen before), so a
match through it counts a little more, and its recommendation names the runbook as its source.

Past success is counted from the incident archive: incidents where the playbook's steps really
ran (not dry runs, not rejected proposals); "fixed" counts for it, "not fixed", "rolled back" and
"fixed by someone else" against it. The rate is Laplace-smoothed, so a playbook with no history
starts at one half, and the service's own history is used once it has some.

Recommendations the Executor's guardrails would refuse (a command outside the allow-list, an
action type this worker lacks) are listed with the reason but never proposed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.integrations.git_docs import GitDocsRepo
from argus.integrations.playbooks import fill
from argus.models import IncidentState, Playbook, Proposal, ProposedStep, Recommendation, StepStatus
from argus.models.agents import RecommendRequest, RecommendResult
from argus.models.remediation import ActionSpec, PlaybookMatch

from .executor import Guardrails

RUNBOOK_BONUS = 0.5
HISTORY_LIMIT = 1000


@dataclass
class Candidate:
    playbook: Playbook
    match: PlaybookMatch
    source: str
    runbook: str = ""  # title of the runbook this came through


def _score(match: PlaybookMatch, req: RecommendRequest) -> tuple[float, list[str], str | None]:
    """Fit of a match block: (score, reasons, target service)."""
    reasons: list[str] = []
    score = 0.0
    target = None
    hyps = req.rca.hypotheses if req.rca else []
    if match.labels and not any(
        all(a.labels.get(k) == v for k, v in match.labels.items()) for a in req.alerts
    ):
        return 0.0, [], None  # labels are a precondition: a Kubernetes playbook needs a Kubernetes alert
    if hyps and set(hyps[0].fault_signature.split("+")) & set(match.unless_signatures):
        return 0.0, [], None  # contraindicated by the most likely fault, whatever else matches
    for rank, h in enumerate(hyps[:3]):
        if match.services and h.service not in match.services:
            continue
        # A playbook acts on one service: hypotheses about other services (a caller slowed by the
        # root cause) say nothing about how well it fits that one.
        if target is not None and h.service != target:
            continue
        # Lower-ranked hypotheses count by their confidence: a 0.1% runner-up must not outvote
        # the top one just by matching more playbooks.
        weight = h.confidence * (1.0 if rank == 0 else 0.5)
        reach = 1.0 if rank == 0 else h.confidence
        parts = h.fault_signature.split("+")
        if set(parts) & set(match.unless_signatures):
            continue
        # The signature's first part is the dominant finding; later parts count less. A runbook may
        # name a whole signature ("deploy+errors"), which then must match exactly.
        fits = [1.0 for s in match.signatures if s == h.fault_signature]
        fits += [1.0 / (1 + parts.index(s)) for s in match.signatures if s in parts]
        sig_fit = max(fits, default=0.0)
        if sig_fit:
            score += (2.0 * weight + 1.0) * sig_fit * reach
            reasons.append(f"fault signature '{h.fault_signature}' of {h.service} matches {match.signatures}")
            target = target or h.service
    for alert in req.alerts:
        if match.alertnames and alert.name in match.alertnames:
            if match.services and alert.service not in match.services:
                continue
            score += 0.5
            reasons.append(f"alert {alert.name} is listed")
            target = target or alert.service
            break
    if match.labels:
        for alert in req.alerts:
            if all(alert.labels.get(k) == v for k, v in match.labels.items()):
                score += 0.5
                reasons.append(f"alert labels match {match.labels}")
                target = target or alert.service
                break
    if target is None and score > 0:
        target = hyps[0].service if hyps else req.service
    return score, reasons, target


def _params(pb: Playbook, target: str | None) -> tuple[dict[str, str | int | float | bool] | None, str]:
    """Typed parameter values, or None and why not (a value that breaks its parameter's rules)."""
    params: dict[str, str | int | float | bool] = {}
    for name, spec in pb.parameters.items():
        if name == "service" and target:
            value: object = target
        elif spec.default is not None:
            value = spec.default
        elif spec.required:
            return None, f"parameter {name!r} has no value"
        else:
            continue
        try:
            params[name] = spec.coerce(name, value)
        except ValueError as exc:
            return None, str(exc)
    return params, ""


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


def playbook_history(states: list[IncidentState]) -> dict[tuple[str, str], tuple[int, int]]:
    """(playbook, service) and (playbook, "") -> (fixed, runs), over incidents whose steps ran."""
    out: dict[tuple[str, str], list[int]] = {}
    for s in states:
        if s.proposal is None or not any(a.status == StepStatus.DONE for a in s.actions):
            continue
        if s.outcome.value in ("none", "rejected"):
            continue
        fixed = int(s.outcome.value == "fixed")
        target = str(s.proposal.params.get("service", s.service))
        for key in ((s.proposal.playbook, target), (s.proposal.playbook, "")):
            acc = out.setdefault(key, [0, 0])
            acc[0] += fixed
            acc[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


class Recommender:
    def __init__(
        self,
        playbooks: list[Playbook],
        archive: IncidentArchive,
        docs: GitDocsRepo | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.playbooks = playbooks
        self.archive = archive
        self.docs = docs
        self.guardrails = guardrails

    def candidates(self) -> tuple[list[Candidate], list[str]]:
        out = [Candidate(pb, pb.match, pb.source) for pb in self.playbooks]
        notes: list[str] = []
        if self.docs is None:
            return out, notes
        by_name = {pb.name: pb for pb in self.playbooks}
        for rel, front, _ in self.docs.documents("runbook"):
            ref = front.get("playbook")
            if not ref:
                continue  # a runbook for people only: nothing to run
            pb = by_name.get(str(ref))
            if pb is None:
                notes.append(f"runbook {rel} names playbook {ref!r}, which is not in the playbook library")
                continue
            try:
                match = PlaybookMatch.model_validate(front.get("match") or {})
            except ValueError as exc:
                notes.append(f"runbook {rel}: front matter 'match' is invalid: {exc}")
                continue
            out.append(Candidate(pb, match, f"{self.docs.path}/{rel}", str(front.get("title", rel))))
        return out, notes

    def recommend_sync(self, req: RecommendRequest) -> RecommendResult:
        history = playbook_history(self.archive.all_states(limit=HISTORY_LIMIT))
        cands, notes = self.candidates()
        best: dict[tuple[str, str], tuple[float, Recommendation, Playbook, dict]] = {}
        for c in cands:
            fit, reasons, target = _score(c.match, req)
            if fit <= 0:
                continue
            if c.runbook:
                fit += RUNBOOK_BONUS
                reasons.insert(0, f"runbook '{c.runbook}' covers this")
            params, why = _params(c.playbook, target)
            if params is None:
                notes.append(f"{c.playbook.name} matches but cannot be filled in: {why}")
                continue
            svc = str(params.get("service", target or ""))
            fixed, runs = history.get((c.playbook.name, svc), (0, 0))
            scope = f"on {svc}"
            if runs < 2:
                fixed, runs = history.get((c.playbook.name, ""), (0, 0))
                scope = "overall"
            rate = (fixed + 1) / (runs + 2)
            total = fit * (0.5 + rate)
            refused = self._refusal(c.playbook, params)
            rec = Recommendation(
                playbook=c.playbook.name,
                params=params,
                score=round(total, 4),
                risk=c.playbook.risk,
                expected_effect=c.playbook.expected_effect,
                rollback=c.playbook.rollback_summary,
                reason="; ".join(reasons)
                + (f"; fixed {fixed} of {runs} past incidents {scope}" if runs else "; no history yet"),
                past_success_rate=(fixed / runs) if runs else None,
                past_runs=runs,
                source=c.source,
                refused=refused,
            )
            key = (c.playbook.name, svc)
            if key not in best or total > best[key][0]:
                best[key] = (total, rec, c.playbook, params)
        ranked = sorted(
            best.values(), key=lambda x: (bool(x[1].refused), -x[0], x[1].risk.rank, x[1].playbook)
        )
        recs = [r for _, r, _, _ in ranked]
        for r in recs:
            if r.refused:
                notes.append(f"{r.playbook} not proposed: the guardrails would refuse it ({r.refused})")
        usable = [x for x in ranked if not x[1].refused]
        proposal = build_proposal(req.incident_id, usable[0][2], usable[0][3]) if usable else None
        return RecommendResult(recommendations=recs, proposal=proposal, notes=notes)

    def _refusal(self, pb: Playbook, params: dict) -> str:
        if self.guardrails is None:
            return ""
        proposal = build_proposal("check", pb, params)
        for step in proposal.steps:
            for spec in (step.run, step.rollback):
                if spec is None:
                    continue
                why = self.guardrails.refusal(spec)
                if why:
                    return f"step {step.name}: {why}"
        return ""

    @activity.defn(name="recommend")
    async def recommend(self, req: RecommendRequest) -> RecommendResult:
        return await asyncio.to_thread(self.recommend_sync, req)
