"""ServiceNowTickets and ServiceNowKnowledge (httpx) against the fake Table API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.servicenow import ServiceNowKnowledge, ServiceNowTickets, correlation_id
from argus.models import DocKind, Document, TicketRequest, TicketUpdate
from tests.fakes.servicenow import FakeServiceNow

GROUP = "a" * 32
CI = "b" * 32
KB = "c" * 32


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as server:
        yield server


def tickets(fake: FakeServiceNow, **kwargs: object) -> ServiceNowTickets:
    kwargs.setdefault("timeout", 2.0)
    return ServiceNowTickets(
        fake.url,
        username="argus",
        password="secret",
        assignment_group=GROUP,
        cmdb_ci_by_service={"checkout": CI},
        **kwargs,  # type: ignore[arg-type]
    )


def request(key: str = "wf-7:ticket") -> TicketRequest:
    return TicketRequest(
        key=key,
        incident_id="INC-7",
        title="checkout errors",
        description="5xx rate 12%",
        service="checkout",
        severity="critical",
    )


def test_create_sets_correlation_references_and_impact(fake: FakeServiceNow) -> None:
    ref = tickets(fake).create(request())
    assert ref.key == "INC0010001" and ref.state == "open" and ref.system == "servicenow"
    sent = fake.last("POST", "/api/now/table/incident")
    body = sent.json()
    assert body["correlation_id"] == "argus:wf-7:ticket"
    assert body["assignment_group"] == GROUP and body["cmdb_ci"] == CI
    assert (body["impact"], body["urgency"]) == ("1", "1") and "priority" not in body
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["Authorization"].startswith("Basic ")


def test_same_key_twice_makes_one_incident(fake: FakeServiceNow) -> None:
    first = tickets(fake).create(request())
    second = tickets(fake).create(request())  # a fresh client: found by correlation_id
    assert first == second
    assert len(fake.tables["incident"]) == 1
    query = fake.last("GET", "/api/now/table/incident").param("sysparm_query")
    assert query is not None and query.startswith("correlation_id=argus:wf-7:ticket")


def test_long_keys_are_hashed_into_correlation_id() -> None:
    assert len(correlation_id("k" * 300)) <= 100


def test_work_notes_resolve_and_reopen(fake: FakeServiceNow) -> None:
    sn = tickets(fake)
    ref = sn.create(request())
    sys_id = next(iter(fake.tables["incident"]))
    sn.update(TicketUpdate(key="u1", ticket=ref, comment="RCA: bad deploy"))
    sn.update(TicketUpdate(key="u1", ticket=ref, comment="RCA: bad deploy"))  # retried: applied once
    assert fake.journal[sys_id] == [("work_notes", "RCA: bad deploy")]
    resolved = sn.update(TicketUpdate(key="u2", ticket=ref, comment="Rolled back 1.4.2", state="resolved"))
    assert resolved.state == "resolved"
    patch = fake.last("PATCH", rf"/api/now/table/incident/{sys_id}").json()
    assert patch["state"] == "6" and patch["close_code"] == "Solution provided"
    assert patch["close_notes"] == "Rolled back 1.4.2"
    assert fake.tables["incident"][sys_id]["active"] == "false"
    reopened = sn.update(TicketUpdate(key="u3", ticket=resolved, state="reopened", comment="again"))
    assert reopened.state == "in_progress"
    assert sn.get("wf-7:ticket") == reopened and sn.get("INC0010001") == reopened
    assert sn.get("nothing") is None


def test_data_policy_refusal_is_permanent_with_message(fake: FakeServiceNow) -> None:
    sn = tickets(fake, close_code="")
    ref = sn.create(request())
    with pytest.raises(PermanentError, match="mandatory: Resolution code"):
        sn.update(TicketUpdate(key="u1", ticket=ref, state="resolved", comment="done"))


def test_faults(fake: FakeServiceNow) -> None:
    sn = tickets(fake, timeout=0.2)
    fake.fail("POST", "/api/now/table/incident", status=500)
    with pytest.raises(IntegrationError, match="Injected failure 500") as caught:
        sn.create(request())
    assert not isinstance(caught.value, PermanentError)
    fake.rate_limit("GET", "/api/now/table/incident", retry_after="3")
    with pytest.raises(IntegrationError) as caught:
        sn.create(request())
    assert caught.value.retry_after == 3.0
    fake.slow("GET", "/api/now/table/incident", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        sn.create(request())
    fake.fail(
        "GET",
        "/api/now/table/incident",
        status=400,
        json={"error": {"message": "Invalid query", "detail": "x"}, "status": "failure"},
    )
    with pytest.raises(PermanentError, match="Invalid query: x"):
        sn.create(request())
    assert len(fake.tables["incident"]) == 0
    assert sn.create(request()).key == "INC0010001"  # N failures, then success


def test_bad_credentials_are_permanent(fake: FakeServiceNow) -> None:
    sn = ServiceNowTickets(fake.url, username="argus", password="wrong", timeout=2.0)
    with pytest.raises(PermanentError, match="User Not Authenticated") as caught:
        sn.create(request())
    assert "wrong" not in str(caught.value)


def doc(content: str = "## Summary\n\nDisk filled up.") -> Document:
    return Document(
        kind=DocKind.RUNBOOK, slug="checkout-disk-full", title="Checkout: disk full", content=content
    )


def test_knowledge_create_then_update_in_place(fake: FakeServiceNow) -> None:
    kb = ServiceNowKnowledge(fake.url, KB, username="argus", password="secret", timeout=2.0)
    first = kb.publish(doc())
    assert first.created and first.publisher == "servicenow-kb"
    article = next(iter(fake.tables["kb_knowledge"].values()))
    assert article["short_description"] == "Checkout: disk full [argus:runbook/checkout-disk-full]"
    assert article["text"].startswith("<h2>Summary</h2>") and article["workflow_state"] == "draft"
    assert article["kb_knowledge_base"] == KB
    same = kb.publish(doc())  # unchanged: no write
    assert not same.created and len(fake.requests_to("PATCH")) == 0
    changed = kb.publish(doc("## Summary\n\nDisk filled up again."))
    assert not changed.created and len(fake.tables["kb_knowledge"]) == 1
    assert "again" in article["text"] and changed.revision != first.revision


def test_knowledge_custom_key_field_and_publish(fake: FakeServiceNow) -> None:
    kb = ServiceNowKnowledge(
        fake.url, KB, username="argus", password="secret", key_field="u_argus_key", publish=True, timeout=2.0
    )
    kb.publish(doc())
    kb.publish(doc())
    (article,) = fake.tables["kb_knowledge"].values()
    assert article["short_description"] == "Checkout: disk full"
    assert article["u_argus_key"] == "argus:runbook/checkout-disk-full"
    assert article["workflow_state"] == "published"
