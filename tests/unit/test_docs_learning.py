"""The Aggregator's learning (clusters, themes, hotspots, MTT*, playbook rates), the Doc Writer's
runbooks/SOPs/specs/charts, and the git publisher (attachments, push to a remote, no duplicates)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from argus.activities.doc_writer import DocWriter
from argus.analysis.incident_clusters import aggregate
from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore
from argus.integrations.git_docs import GitDocsRepo, split_front_matter
from argus.integrations.playbooks import load_playbooks
from argus.models import (
    ActionResult,
    Alert,
    Evidence,
    EvidenceKind,
    Hypothesis,
    IncidentState,
    IncidentStatus,
    Proposal,
    ProposedStep,
    RcaReport,
    RemediationOutcome,
    StepStatus,
)
from argus.models.agents import PostmortemRequest, RunbookRequest
from argus.models.config import ServiceConfig
from argus.models.remediation import ActionSpec, PlaybookMatch

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SERVICES = [
    ServiceConfig(
        name="checkout",
        owners=["team-payments"],
        depends_on=["payments"],
        slis={"availability": "1 - sandbox_error_ratio"},
        slos={"availability": "99.9%"},
    ),
    ServiceConfig(name="payments", owners=["team-payments"], tier="core"),
]

n = 0


def incident(
    root: str,
    signature: str,
    playbook: str | None,
    outcome: str,
    *,
    at: datetime = T0,
    alert: str = "HighErrorRate",
    service: str = "checkout",
    detect: int = 30,
    ack: int | None = 60,
    resolve: int = 600,
    log: str | None = None,
) -> IncidentState:
    global n
    n += 1
    first = at
    opened = first + timedelta(seconds=detect)
    evidence = [
        Evidence(kind=EvidenceKind.METRIC, summary=f"{signature} moved", metric=f"sandbox_{signature}")
    ]
    if log:
        evidence.append(Evidence(kind=EvidenceKind.LOG, summary=f"new log template (12 occurrences): {log}"))
    proposal = None
    actions = []
    if playbook:
        step = ProposedStep(name="act", run=ActionSpec(type="sandbox", action="restart", args={}))
        proposal = Proposal(
            incident_id=f"i{n}", playbook=playbook, steps=[step], risk="low", summary=playbook
        )
        actions = [ActionResult(step="act", action="restart", status=StepStatus.DONE, at=opened)]
    return IncidentState(
        incident_id=f"incident-{n}",
        number=f"INC-{n}",
        title=f"{alert} on {service}",
        service=service,
        severity="critical",
        group_key=f"g{n}",
        status=IncidentStatus.CLOSED,
        opened_at=opened,
        acknowledged_at=opened + timedelta(seconds=ack) if ack is not None else None,
        acknowledged_by="carol" if ack is not None else None,
        resolved_at=first + timedelta(seconds=resolve),
        closed_at=first + timedelta(seconds=resolve + 5),
        alerts=[
            Alert(labels={"alertname": alert, "service": service, "severity": "critical"}, starts_at=first)
        ],
        rca=RcaReport(
            hypotheses=[
                Hypothesis(
                    service=root,
                    confidence=0.7,
                    score=2.0,
                    summary="moved first",
                    fault_signature=signature,
                    evidence=evidence,
                )
            ],
            window_start=first - timedelta(minutes=10),
            window_end=opened,
            anomaly_start=first,
        ),
        proposal=proposal,
        actions=actions,
        outcome=RemediationOutcome(outcome),
    )


def history() -> list[IncidentState]:
    day = timedelta(days=1)
    return [
        incident("payments", "cpu", "scale-out", "not_fixed", at=T0, detect=20, resolve=900),
        incident("payments", "cpu+latency", "restart-service", "fixed", at=T0 + day, detect=40, resolve=300),
        incident("payments", "cpu", "restart-service", "fixed", at=T0 + 2 * day, detect=30, resolve=420),
        incident("payments", "cpu", "scale-out", "not_fixed", at=T0 + 3 * day, ack=None),
        incident(
            "checkout", "deploy+errors", "rollback-deploy", "fixed", at=T0 + day, log="payment <n> declined"
        ),
        incident(
            "checkout", "deploy+errors", "rollback-deploy", "fixed", at=T0 + 4 * day, log="payment 7 declined"
        ),
        incident(
            "inventory", "latency", None, "fixed_by_other", at=T0, service="catalog", alert="HighLatency"
        ),
        incident(
            "inventory",
            "latency",
            None,
            "fixed_by_other",
            at=T0 + day,
            service="catalog",
            alert="HighLatency",
        ),
    ]


def test_clusters_themes_hotspots_and_rates():
    states = history()
    ins = aggregate(states, focus=states[2])
    keys = [c.key for c in ins.clusters]
    assert keys == ["payments:cpu", "checkout:deploy+errors", "inventory:latency"]
    cpu = ins.clusters[0]
    assert cpu.incidents == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert cpu.fix == "restart-service"
    assert (cpu.fixes["restart-service"].fixed, cpu.fixes["restart-service"].runs) == (2, 2)
    assert (cpu.fixes["scale-out"].fixed, cpu.fixes["scale-out"].runs) == (0, 2)
    deploy = ins.clusters[1]
    assert deploy.log_templates == ["payment <n> declined"] and deploy.fix == "rollback-deploy"
    assert ins.clusters[2].fix == "" and ins.clusters[2].affected == ["catalog"]
    assert ins.similar == ["INC-1", "INC-2", "INC-4"] and ins.focus_cluster == "payments:cpu"

    rates = {p.playbook: (p.fixed, p.runs) for p in ins.playbooks}
    assert rates == {"restart-service": (2, 2), "scale-out": (0, 2), "rollback-deploy": (2, 2)}
    scale = next(p for p in ins.playbooks if p.playbook == "scale-out")
    assert scale.failure_rate == 1.0 and scale.by_signature["cpu"].runs == 2

    checkout = next(s for s in ins.services if s.service == "checkout")
    assert checkout.incidents == 6
    # MTTD, MTTA and MTTR are medians over the service's incidents.
    assert checkout.mttd_seconds == 30.0
    assert checkout.mtta_seconds == 60.0
    assert checkout.mttr_seconds == 600.0
    assert checkout.top_root_causes[0] == "payments"

    themes = {t.kind: t for t in ins.themes}
    assert themes["latency"].incidents == 3 and set(themes["latency"].services) == {"payments", "inventory"}
    # deploy and errors recur only inside one cluster of two: not yet a theme across the system
    assert set(themes) == {"cpu", "latency"} and themes["cpu"].incidents == 4
    top = ins.hotspots[0]
    assert (top.service, top.component, top.incidents) == ("payments", "cpu", 4) and top.share == 0.5


def test_a_different_root_cause_never_joins_a_cluster():
    a = incident("payments", "cpu", "restart-service", "fixed")
    b = incident("inventory", "cpu", "restart-service", "fixed")
    assert len(aggregate([a, b]).clusters) == 2


def writer(**kw) -> DocWriter:
    return DocWriter(SERVICES, playbooks=load_playbooks(REPO / "playbooks"), **kw)


def test_runbooks_and_sops_carry_front_matter_the_recommender_reads(tmp_path):
    ins = aggregate(history())
    docs = writer().runbooks(RunbookRequest(insights=ins))
    by_slug = {d.slug: d for d in docs}
    assert set(by_slug) == {"payments-cpu", "checkout-deploy-errors", "inventory-latency"}
    repo = GitDocsRepo(tmp_path / "docs")
    for d in docs:
        repo.publish(d)
    front, body = split_front_matter((repo.path / "runbooks/payments-cpu.md").read_text())
    assert front["kind"] == "runbook" and front["playbook"] == "restart-service"
    assert front["params"] == {"service": "payments"} and front["avoid"] == ["scale-out"]
    match = PlaybookMatch.model_validate(front["match"])
    assert match.services == ["payments"] and match.signatures == ["cpu"]
    assert front["success"]["restart-service"] == {"fixed": 2, "runs": 2}
    assert "## When this applies" in body and "## Rollback" in body and "## Verification" in body
    assert "Do **not** use scale-out" in body and "`restart`: sandbox action `restart`" in body
    sop_front, sop_body = split_front_matter((repo.path / "sops/inventory-latency.md").read_text())
    assert sop_front["kind"] == "sop" and sop_front["playbook"] is None
    assert "manual procedure" in sop_body
    # Republishing the same documents changes nothing: no commit, no duplicate file.
    commits = len(repo.log())
    assert all(not repo.publish(d).changed for d in docs)
    assert len(repo.log()) == commits and len(repo.documents("runbook")) == 2


def test_service_specs_link_runbooks_and_history(tmp_path):
    repo = GitDocsRepo(tmp_path / "docs")
    ins = aggregate(history())
    specs = {d.slug: d for d in writer(existing_docs=repo).specs(RunbookRequest(insights=ins))}
    assert {"checkout", "payments", "catalog"} <= set(specs)
    co = specs["checkout"].content
    assert "| Depends on | payments |" in co and "| Owners | team-payments |" in co
    assert "| availability | `1 - sandbox_error_ratio` | 99.9% |" in co
    assert "6 incident(s)" in co and "MTTR 10m00s" in co
    pay = specs["payments"].content
    assert (
        "| Used by | checkout |" in pay and "[Runbook: cpu on payments](../runbooks/payments-cpu.md)" in pay
    )


def test_template_syntax_error_names_template_and_line(tmp_path):
    (tmp_path / "runbook.md.j2").write_text("# ok\n\n{% for x in %}\n")
    with pytest.raises(ApplicationError) as caught:
        DocWriter([], tmp_path).render("runbook.md.j2", cluster=None)
    assert caught.value.non_retryable and caught.value.type == "TemplateError"
    assert f"{tmp_path}/runbook.md.j2 line 3" in caught.value.message


def test_postmortem_charts_are_pngs_published_beside_the_markdown(tmp_path):
    store = EmbeddedMetricsStore(tmp_path / "m.db")
    s = history()[1]
    start = s.alerts[0].starts_at - timedelta(minutes=15)
    for i in range(0, 40 * 60, 15):
        ts = start.timestamp() + i
        bad = s.alerts[0].starts_at.timestamp() <= ts <= s.resolved_at.timestamp()
        store.ingest_text(f'sandbox_cpu_utilization{{service="payments"}} {0.95 if bad else 0.3}\n', ts)
        store.ingest_text('sandbox_cpu_utilization{service="frontend"} 0.2\n', ts)
    source = EmbeddedMetricsSource("sandbox", store, ["x"])
    w = writer(
        metrics=source, chart_metrics={"cpu": "sandbox_cpu_utilization", "memory": "sandbox_memory_bytes"}
    )
    req = PostmortemRequest(incident=s, insights=aggregate(history(), focus=s), history=False)

    async def go():
        from argus.activities.doc_charts import incident_charts

        charts, problems = await incident_charts(source, w.chart_metrics, s, "inc-2")
        return w.postmortem(req, charts=charts, chart_problems=problems)

    doc = asyncio.run(go())
    assert [a.name for a in doc.attachments] == ["inc-2-cpu.png"]  # no memory data: no empty chart
    assert doc.attachments[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![cpu around the incident](inc-2-cpu.png)" in doc.content
    repo = GitDocsRepo(tmp_path / "docs")
    result = repo.publish(doc)
    assert (repo.path / "postmortems/inc-2-cpu.png").read_bytes() == doc.attachments[0].data
    assert result.location == f"postmortems/{doc.slug}.md"


def test_git_pushes_to_a_configured_remote_and_republishes_in_place(tmp_path):
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = GitDocsRepo(tmp_path / "docs", remote=str(bare))
    doc = writer().runbooks(RunbookRequest(insights=aggregate(history())))[0]
    first = repo.publish(doc)
    assert first.created and first.changed

    def remote_log() -> list[str]:
        out = subprocess.run(
            ["git", "-C", str(bare), "log", "--format=%s", "main"], capture_output=True, text=True
        )
        return out.stdout.splitlines()

    assert remote_log()[0] == f"Add runbook: {doc.title}"
    again = repo.publish(doc)
    assert not again.created and not again.changed and len(remote_log()) == 2
    edited = doc.model_copy(update={"content": doc.content + "\nEdited.\n"})
    third = repo.publish(edited)
    assert third.changed and not third.created and remote_log()[0] == f"Update runbook: {doc.title}"
    files = subprocess.run(
        ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"], capture_output=True, text=True
    )
    assert files.stdout.split() == ["README.md", f"runbooks/{doc.slug}.md"]
