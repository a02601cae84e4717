"""The Enricher against the Jira fake with the real `jira` library: RCA summary, runbook links and
similar past incidents in one comment, the past incidents' issues linked, once under retries."""

from __future__ import annotations

from datetime import UTC, datetime

from argus.activities.enricher import Enricher
from argus.integrations.archive import IncidentArchive
from argus.integrations.jira import JiraTickets
from argus.integrations.sql import sqlite_url
from argus.models import IncidentState, Severity, TicketRequest
from argus.models.agents import EnrichRequest
from argus.models.rca import Evidence, EvidenceKind, Hypothesis, RcaReport
from tests.fakes.jira import start_jira_fake


def request(key: str) -> TicketRequest:
    return TicketRequest(
        key=key, incident_id=f"incident-{key}", title=f"{key} errors", description="d", service="checkout",
        severity="critical",
    )  # fmt: skip


async def test_enrich_writes_rca_runbooks_similar_and_links_past_issues(tmp_path):
    fake = start_jira_fake("Server")
    try:
        jira = JiraTickets(fake.url, "OPS", pat="pat", key_map=tmp_path / "keys.db", timeout=5)
        past_ref = jira.create(request("past"))
        now_ref = jira.create(request("now"))
        archive = IncidentArchive(sqlite_url(tmp_path / "archive.db"))
        past = IncidentState(
            incident_id="incident-past", title="checkout errors", service="checkout",
            severity=Severity.CRITICAL, group_key="g", opened_at=datetime(2026, 1, 1, tzinfo=UTC),
            closed_at=datetime(2026, 1, 1, 1, tzinfo=UTC), tickets=[past_ref],
        )  # fmt: skip
        number = archive.open(past, "run-1")
        archive.save(past.model_copy(update={"number": number}), "run-1")
        rca = RcaReport(
            hypotheses=[
                Hypothesis(
                    service="payments", confidence=0.7, score=2.0, summary="payments moved first",
                    evidence=[Evidence(kind=EvidenceKind.METRIC, summary="cpu 0.2 -> 0.9", metric="cpu")],
                )
            ],
            window_start=datetime(2026, 1, 2, tzinfo=UTC), window_end=datetime(2026, 1, 2, 1, tzinfo=UTC),
            anomaly_start=datetime(2026, 1, 2, tzinfo=UTC),
        )  # fmt: skip
        enricher = Enricher(jira, archive, docs=None)
        req = EnrichRequest(
            key="wf/run/enrich", incident_id="incident-now", number="INC-2", service="checkout",
            ticket=now_ref, rca=rca, runbook_urls=["https://runbooks.example/checkout-errors"],
        )  # fmt: skip
        await enricher.enrich(req)
        await enricher.enrich(req)  # a retry: the comment is not written twice, the link not added twice
        comments = fake.comments[now_ref.key]
        assert len(comments) == 1
        body = comments[0]["body"]
        assert "payments — confidence 70%" in body and "cpu 0.2 -> 0.9" in body
        assert "https://runbooks.example/checkout-errors" in body
        assert f"jira {past_ref.key}" in body
        links = fake.requests_to("POST", r"/rest/api/2/issueLink")
        assert len(links) == 1 and links[0].json()["outwardIssue"]["key"] == past_ref.key
    finally:
        fake.stop()
