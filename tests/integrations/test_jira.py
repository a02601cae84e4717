"""JiraTickets with the real `jira` library against the fake, as Data Center and as Cloud."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys
from argus.integrations.jira import JiraTickets, key_label
from argus.models import TicketRequest, TicketUpdate
from tests.fakes.jira import FakeJira


@pytest.fixture(params=["Server", "Cloud"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    with FakeJira(request.param, credentials=("argus@example.com", "tok-123")) as server:
        yield server


def tickets(fake: FakeJira, **kwargs: object) -> JiraTickets:
    kwargs.setdefault("timeout", 2.0)
    return JiraTickets(fake.url, "OPS", email="argus@example.com", api_token="tok-123", **kwargs)  # type: ignore[arg-type]


def request(key: str = "wf-1:ticket", **kwargs: object) -> TicketRequest:
    return TicketRequest(
        key=key,
        incident_id="INC-42",
        title="checkout p99 latency above 2s",
        description="Latency rose at 10:02 after deploy 1.4.2.",
        service="checkout",
        severity="critical",
        labels=["service checkout", "argus"],
        **kwargs,  # type: ignore[arg-type]
    )


def test_create_sends_fields_auth_and_labels(fake: FakeJira) -> None:
    ref = tickets(fake, components=["checkout"]).create(request())
    assert ref.key == "OPS-1" and ref.system == "jira" and ref.state == "open"
    assert ref.url == f"{fake.url}/browse/OPS-1"
    sent = fake.last("POST", "/rest/api/2/issue")
    fields = sent.json()["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Incident"}
    assert fields["priority"] == {"name": "Highest"}
    assert fields["components"] == [{"name": "checkout"}]
    assert fields["labels"] == ["argus", key_label("wf-1:ticket"), "service-checkout"]
    assert "INC-42" in fields["description"]
    expected = base64.b64encode(b"argus@example.com:tok-123").decode()
    assert sent.headers["AUTHORIZATION"] == f"Basic {expected}"
    # Cloud searches with /search/jql, DC with /search.
    search_path = "/rest/api/2/search/jql" if fake.deployment == "Cloud" else "/rest/api/2/search"
    assert fake.requests_to("GET", search_path)


def test_same_key_twice_makes_one_issue(fake: FakeJira) -> None:
    jira = tickets(fake)
    first, second = jira.create(request()), jira.create(request())
    assert first == second and len(fake.issues) == 1


def test_lost_key_map_is_recovered_by_jql(fake: FakeJira) -> None:
    first = tickets(fake).create(request())
    again = tickets(fake).create(request())  # a new worker: empty in-memory key map
    assert again.key == first.key and len(fake.issues) == 1


def test_cloud_eventual_consistency_is_covered_by_the_key_map(tmp_path) -> None:
    with FakeJira("Cloud", search_lag=60.0) as fake:
        store = SentKeys(tmp_path / "jira-keys.sqlite")
        tickets(fake, key_map=store).create(request())
        # search/jql does not show the new issue yet; a restarted worker with the same map file still finds it
        restarted = tickets(fake, key_map=SentKeys(tmp_path / "jira-keys.sqlite"))
        assert restarted.create(request()).key == "OPS-1"
        assert len(fake.issues) == 1
        assert fake.last("GET", "/rest/api/2/search/jql").json() is None  # it was looked up, found nothing


def test_token_auth_for_data_center() -> None:
    with FakeJira("Server", credentials="pat-xyz") as fake:
        ref = JiraTickets(fake.url, "OPS", pat="pat-xyz", timeout=2.0).create(request())
        assert ref.key == "OPS-1"
        assert fake.last("POST", "/rest/api/2/issue").headers["authorization"] == "Bearer pat-xyz"


def test_links_to_related_issues_once(fake: FakeJira) -> None:
    jira = tickets(fake)
    other = jira.create(request("wf-0:ticket"))
    req = request().model_copy(update={"related": [other.key], "components": ["payments"]})
    ref = jira.create(req)
    jira.create(req)  # retried: the link exists already
    assert len(fake.requests_to("POST", "/rest/api/2/issueLink")) == 1
    link = fake.last("POST", "/rest/api/2/issueLink").json()
    assert link["type"] == {"name": "Relates"}
    assert {link["inwardIssue"]["key"], link["outwardIssue"]["key"]} == {ref.key, other.key}
    assert fake.issues[ref.key]["fields"]["components"] == [{"name": "payments"}]


def test_comment_resolve_reopen(fake: FakeJira) -> None:
    jira = tickets(fake)
    ref = jira.create(request())
    jira.update(TicketUpdate(key="u1", ticket=ref, comment="RCA: bad deploy"))
    assert fake.comments["OPS-1"][-1]["body"] == "RCA: bad deploy"
    resolved = jira.update(
        TicketUpdate(key="u2", ticket=ref, comment="Rolled back", state="resolved", resolution="Fixed")
    )
    assert resolved.state == "resolved"
    body = fake.last("POST", r"/rest/api/2/issue/OPS-1/transitions").json()
    assert str(body["transition"]["id"]) == "31"  # the library sends the id as a number
    assert body["fields"] == {"resolution": {"name": "Fixed"}}
    assert body["update"]["comment"] == [{"add": {"body": "Rolled back"}}]
    assert fake.issues["OPS-1"]["fields"]["resolution"] == {"name": "Fixed"}
    assert jira.get("wf-1:ticket").state == "resolved"  # type: ignore[union-attr]
    reopened = jira.update(TicketUpdate(key="u3", ticket=resolved, state="reopened"))
    assert reopened.state == "open"
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "Reopened"


def test_updates_are_applied_once_per_key(fake: FakeJira) -> None:
    jira = tickets(fake)
    ref = jira.create(request())
    update = TicketUpdate(key="u1", ticket=ref, comment="note")
    jira.update(update)
    jira.update(update)
    assert len(fake.comments["OPS-1"]) == 1


def test_resolving_a_resolved_issue_is_a_no_op(fake: FakeJira) -> None:
    jira = tickets(fake)
    ref = jira.create(request())
    jira.update(TicketUpdate(key="u1", ticket=ref, state="resolved"))
    again = jira.update(TicketUpdate(key="u2", ticket=ref, state="resolved"))
    assert again.state == "resolved"
    assert len(fake.requests_to("POST", r".*/transitions")) == 1


def test_unknown_transition_is_permanent(fake: FakeJira) -> None:
    jira = tickets(fake)
    ref = jira.create(request())
    with pytest.raises(PermanentError, match="available: Start Progress, Resolve Issue"):
        jira.update(TicketUpdate(key="u1", ticket=ref, state="Escalate"))


def test_get_by_idempotency_key_or_issue_key(fake: FakeJira) -> None:
    jira = tickets(fake)
    assert jira.get("never-created") is None
    ref = jira.create(request())
    assert jira.get("wf-1:ticket") == ref and jira.get("OPS-1") == ref
    assert jira.get("OPS-99") is None


def test_500_is_retryable(fake: FakeJira) -> None:
    fake.fail("POST", "/rest/api/2/issue", status=500)
    jira = tickets(fake)
    with pytest.raises(IntegrationError) as caught:
        jira.create(request())
    assert not isinstance(caught.value, PermanentError)
    assert "HTTP 500" in str(caught.value) and "Injected failure 500" in str(caught.value)
    assert "tok-123" not in str(caught.value) and caught.value.__context__ is None
    assert jira.create(request()).key == "OPS-1"  # the retry succeeds, one attempt only before it
    assert len(fake.requests_to("POST", "/rest/api/2/issue")) == 2


def test_429_carries_retry_after(fake: FakeJira) -> None:
    fake.rate_limit("POST", "/rest/api/2/issue", retry_after="7")
    with pytest.raises(IntegrationError) as caught:
        tickets(fake).create(request())
    assert caught.value.retry_after == 7.0
    assert len(fake.requests_to("POST", "/rest/api/2/issue")) == 1  # the library did not retry


def test_timeout_is_retryable(fake: FakeJira) -> None:
    jira = tickets(fake, timeout=0.2)
    jira.client()  # serverInfo answered in time
    fake.slow("POST", "/rest/api/2/issue", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        jira.create(request())


def test_bad_request_is_permanent_with_jira_message(fake: FakeJira) -> None:
    jira = tickets(fake, priorities={"critical": "P0"})
    with pytest.raises(PermanentError, match="The priority selected is invalid"):
        jira.create(request())


def test_wrong_credentials_are_permanent() -> None:
    with FakeJira("Server", credentials=("argus@example.com", "right")) as fake:
        jira = JiraTickets(fake.url, "OPS", email="argus@example.com", api_token="wrong", timeout=2.0)
        with pytest.raises(PermanentError, match="401") as caught:
            jira.create(request())
        assert "wrong" not in str(caught.value)


def test_needs_credentials() -> None:
    with pytest.raises(ValueError, match="pat"):
        JiraTickets("http://127.0.0.1:1", "OPS")
