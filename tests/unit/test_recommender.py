"""Playbook loading errors, and the Recommender: runbooks from the docs repository, ranking by
past success in the archive, risk/effect/rollback stated, guardrail refusals never proposed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from argus.activities.executor import Guardrails
from argus.activities.recommender import Recommender
from argus.integrations.archive import IncidentArchive
from argus.integrations.git_docs import GitDocsRepo
from argus.integrations.playbooks import PlaybookError, load_playbook, load_playbooks
from argus.integrations.sql import sqlite_url
from argus.models import (
    ActionResult,
    Alert,
    DocKind,
    Document,
    Hypothesis,
    IncidentState,
    RcaReport,
    RemediationOutcome,
    Severity,
    StepStatus,
)
from argus.models.agents import RecommendRequest
from argus.models.config import RemediationConfig

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nsteps: []\n", "field steps: Value error, a playbook needs at least one step"),
        (
            "name: x\nrisk: extreme\nsteps: [{name: a, run: {type: sandbox, action: restart}}]\n",
            "field risk:",
        ),
        ("name: x\nsteps: [{name: a, run: {type: ftp, action: put}}]\n", "field steps.0.run.type:"),
        (
            "name: x\nsteps: [{name: a, run: {type: sandbox, action: restart, "
            "args: {service: '{{ svc }}'}}}]\n",
            "field steps.a.run.args.service: parameter {{ svc }} is not declared",
        ),
        (
            "name: x\nparameters: {host: {type: string}}\n"
            "steps: [{name: a, run: {type: shell, action: ping, args: {argv: ['{{ host }}']}}}]\n",
            "field parameters.host: a string used by a shell step (a) needs a pattern or choices",
        ),
        (
            "name: x\nparameters: {n: {type: int, default: 99, maximum: 10}}\n"
            "steps: [{name: a, run: {type: sandbox, action: scale, args: {replicas: '{{ n }}'}}}]\n",
            "field parameters.n.default: parameter 'n': 99 is above the maximum 10",
        ),
        (
            "name: x\nparameters: {s: {pattern: '[unclosed'}}\n"
            "steps: [{name: a, run: {type: sandbox, action: restart}}]\n",
            "field parameters.s.pattern:",
        ),
        ("- not a mapping\n", "a playbook must be a mapping"),
        ("name: [unterminated\n", "not valid YAML"),
    ],
)
def test_invalid_playbook_names_file_and_field(tmp_path, text, expected):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(PlaybookError) as err:
        load_playbook(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_shipped_playbooks_load(tmp_path):
    books = {b.name: b for b in load_playbooks(REPO / "playbooks")}
    assert {"restart-service", "rollback-deploy", "scale-out"} <= set(books)
    assert all(b.expected_effect and b.risk for b in books.values())


def rca(service: str, signature: str, confidence: float = 0.8) -> RcaReport:
    return RcaReport(
        hypotheses=[
            Hypothesis(
                service=service, confidence=confidence, score=1.0, summary="x", fault_signature=signature
            )
        ],
        window_start=T0,
        window_end=T0,
        anomaly_start=T0,
    )


def request(service: str, signature: str) -> RecommendRequest:
    alert = Alert(
        labels={"alertname": "HighErrorRate", "service": "frontend", "severity": "critical"}, starts_at=T0
    )
    return RecommendRequest(
        incident_id="incident-x", service="frontend", alerts=[alert], rca=rca(service, signature)
    )


def closed(
    archive: IncidentArchive, n: int, playbook: str, service: str, outcome: str, ran: bool = True
) -> None:
    from argus.activities.recommender import build_proposal

    pb = {b.name: b for b in load_playbooks(REPO / "playbooks")}[playbook]
    state = IncidentState(
        incident_id=f"incident-h{n}", title="t", service=service, severity=Severity.CRITICAL,
        group_key=f"g{n}", opened_at=T0 + timedelta(hours=n),
    )  # fmt: skip
    archive.open(state, f"run{n}")
    state.proposal = build_proposal(
        state.incident_id, pb, {"service": service} | ({"replicas": 4} if playbook == "scale-out" else {})
    )
    state.actions = [
        ActionResult(step="s", action="a", status=StepStatus.DONE if ran else StepStatus.DRY_RUN)
    ]
    state.outcome = RemediationOutcome(outcome)
    state.closed_at = state.opened_at + timedelta(minutes=5)
    archive.save(state, f"run{n}")


def test_recommendation_states_risk_effect_and_rollback(tmp_path):
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    rec = Recommender(load_playbooks(REPO / "playbooks"), archive).recommend_sync(
        request("payments", "deploy+errors")
    )
    top = rec.recommendations[0]
    assert top.playbook == "rollback-deploy" and top.params == {"service": "payments"}
    assert top.risk.value == "medium" and "Error ratio" in top.expected_effect and top.rollback
    assert rec.proposal is not None and rec.proposal.steps[0].run.args == {"service": "payments"}
    assert "no history yet" in top.reason


def test_past_success_reorders_candidates(tmp_path):
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    books = load_playbooks(REPO / "playbooks")
    # "cpu" matches restart-service and scale-out equally; history decides.
    first = Recommender(books, archive).recommend_sync(request("catalog", "cpu"))
    assert first.recommendations[0].playbook == "restart-service"  # tie: lower risk, then name
    for n in range(4):
        closed(archive, n, "restart-service", "catalog", "not_fixed" if n < 3 else "fixed_by_other")
    for n in range(4, 7):
        closed(archive, n, "scale-out", "catalog", "fixed")
    closed(archive, 7, "scale-out", "catalog", "not_fixed", ran=False)  # a dry run is no evidence
    again = Recommender(books, archive).recommend_sync(request("catalog", "cpu"))
    top = again.recommendations[0]
    assert top.playbook == "scale-out" and top.past_success_rate == 1.0 and top.past_runs == 3
    assert "fixed 3 of 3 past incidents on catalog" in top.reason
    restart = next(r for r in again.recommendations if r.playbook == "restart-service")
    assert restart.past_success_rate == 0.0 and restart.past_runs == 4


def test_runbooks_from_the_docs_repository(tmp_path):
    docs = GitDocsRepo(tmp_path / "docs")
    front = {"match": {"services": ["payments"], "signatures": ["latency"]}, "playbook": "restart-service"}
    docs.publish(Document(kind=DocKind.RUNBOOK, slug="payments-latency", title="Runbook: latency on payments",
                          content="steps", service="payments", front_matter=front))  # fmt: skip
    docs.publish(Document(kind=DocKind.RUNBOOK, slug="ghost", title="Runbook: ghost", content="x",
                          front_matter={"match": {"signatures": ["latency"]},
                                        "playbook": "no-such-playbook"}))  # fmt: skip
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    books = load_playbooks(REPO / "playbooks")
    rec = Recommender(books, archive, docs=docs).recommend_sync(request("payments", "latency"))
    top = rec.recommendations[0]
    assert top.playbook == "restart-service" and top.source.endswith("runbooks/payments-latency.md")
    assert "runbook 'Runbook: latency on payments' covers this" in top.reason
    assert any("no-such-playbook" in n and "not in the playbook library" in n for n in rec.notes)
    # Without the runbook, latency alone points at scale-out.
    plain = Recommender(books, archive).recommend_sync(request("payments", "latency"))
    assert plain.recommendations[0].playbook == "scale-out"
    # The runbook is for payments only.
    other = Recommender(books, archive, docs=docs).recommend_sync(request("checkout", "latency"))
    assert other.recommendations[0].playbook == "scale-out"


def test_guardrail_refusals_are_listed_but_never_proposed(tmp_path):
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    books = load_playbooks(REPO / "playbooks")
    no_sandbox = Guardrails(RemediationConfig(), sandbox=False, kubernetes=False)
    rec = Recommender(books, archive, guardrails=no_sandbox).recommend_sync(
        request("payments", "deploy+errors")
    )
    assert rec.proposal is None
    assert rec.recommendations and all(r.refused for r in rec.recommendations)
    assert any(
        "rollback-deploy not proposed" in n and "sandbox action type is not configured" in n
        for n in rec.notes
    )


def test_faint_runner_ups_do_not_outvote_the_top_hypothesis(tmp_path):
    # What a bad deploy at payments gave live: payments 99.9% "deploy+cpu", its callers ~0.1% with
    # cpu/overload signatures. Three faint matches must not beat one strong one.
    report = RcaReport(
        hypotheses=[
            Hypothesis(
                service="payments", confidence=0.998, score=9, summary="", fault_signature="deploy+cpu"
            ),
            Hypothesis(
                service="frontend", confidence=0.001, score=0.1, summary="", fault_signature="overload+cpu"
            ),
            Hypothesis(
                service="checkout", confidence=0.001, score=0.1, summary="", fault_signature="cpu+errors"
            ),
        ],
        window_start=T0,
        window_end=T0,
        anomaly_start=T0,
    )
    req = request("payments", "deploy+cpu").model_copy(update={"rca": report})
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    rec = Recommender(load_playbooks(REPO / "playbooks"), archive).recommend_sync(req)
    assert rec.proposal is not None and rec.proposal.playbook == "rollback-deploy"
    assert rec.proposal.params["service"] == "payments"


def test_a_restart_is_not_proposed_for_an_overload_even_when_cpu_reads_first(tmp_path):
    # A traffic surge read as "cpu+overload": restart-service and scale-out both match "cpu"
    # first, and the tie went to the restart, which drops the surge's requests and brings it back
    # on the same capacity. restart-service says `unless_signatures: [overload]`.
    archive = IncidentArchive(sqlite_url(tmp_path / "a.db"))
    recommender = Recommender(load_playbooks(REPO / "playbooks"), archive)
    rec = recommender.recommend_sync(request("frontend", "cpu+overload"))
    assert rec.proposal is not None and rec.proposal.playbook == "scale-out"
    assert "restart-service" not in [r.playbook for r in rec.recommendations]
    # A CPU hog still gets its restart.
    rec = recommender.recommend_sync(request("frontend", "cpu+latency"))
    assert rec.proposal is not None and rec.proposal.playbook == "restart-service"
    # Ruled out, not just not matched by signature: a Kubernetes alert's label bonus does not
    # bring kubernetes-restart back for an overload.
    kube = request("frontend", "cpu+overload")
    kube.alerts[0].labels["platform"] = "kubernetes"
    names = [r.playbook for r in recommender.recommend_sync(kube).recommendations]
    assert "kubernetes-restart" not in names and "restart-service" not in names, names
    kube.rca.hypotheses[0].fault_signature = "cpu+latency"
    names = [r.playbook for r in recommender.recommend_sync(kube).recommendations]
    assert "kubernetes-restart" in names, names
