"""Opsgenie tickets and channel against the fake, including the asynchronous 202 flow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.opsgenie import OpsgenieChannel, OpsgenieTickets, Responder
from argus.models import Notification, NotificationKind, TicketRequest, TicketUpdate
from tests.fakes.opsgenie import FakeOpsgenie


@pytest.fixture
def fake() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie("genie-key") as server:
        yield server


def tickets(fake: FakeOpsgenie, **kwargs: object) -> OpsgenieTickets:
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("poll_interval", 0.01)
    return OpsgenieTickets("genie-key", base_url=fake.url, app_url="https://acme.app.opsgenie.com", **kwargs)  # type: ignore[arg-type]


REQUEST = TicketRequest(
    key="wf-3:ticket",
    incident_id="INC-3",
    title="queue backlog",
    description="lag 10 min",
    service="orders",
    severity="critical",
    labels=["orders"],
)


def test_create_is_confirmed_and_once(fake: FakeOpsgenie) -> None:
    og = tickets(fake, responders=[Responder(type="team", name="SRE")])
    ref = og.create(REQUEST)
    assert ref.key == "argus:wf-3:ticket" and ref.state == "open"
    assert ref.url.startswith("https://acme.app.opsgenie.com/alert/detail/")
    body = fake.last("POST", "/v2/alerts").json()
    assert body["alias"] == "argus:wf-3:ticket" and body["priority"] == "P1" and body["source"] == "ARGUS"
    assert body["responders"] == [{"type": "team", "name": "SRE"}]
    assert fake.last("POST", "/v2/alerts").headers["authorization"] == "GenieKey genie-key"
    assert fake.requests_to("GET", r"/v2/alerts/requests/.*")  # the 202 outcome was checked
    og.update(TicketUpdate(key="u1", ticket=ref, state="resolved"))
    assert og.create(REQUEST).key == ref.key  # a closed alert is found by alias, not re-created
    assert len(fake.alerts) == 1 and len(fake.requests_to("POST", "/v2/alerts")) == 1


def test_unprocessed_request_leaves_a_pending_ref(fake: FakeOpsgenie) -> None:
    fake.pending_polls = 100
    ref = tickets(fake, confirm_timeout=0.05).create(REQUEST)
    assert ref.state == "pending" and ref.key == "argus:wf-3:ticket"


def test_note_acknowledge_close(fake: FakeOpsgenie) -> None:
    og = tickets(fake)
    ref = og.create(REQUEST)
    og.update(TicketUpdate(key="u1", ticket=ref, comment="looking"))
    og.update(TicketUpdate(key="u1", ticket=ref, comment="looking"))
    acked = og.update(TicketUpdate(key="u2", ticket=ref, state="acknowledged"))
    closed = og.update(TicketUpdate(key="u3", ticket=acked, state="resolved", comment="drained"))
    alert = fake.alerts[0]
    assert fake.notes[alert["id"]] == ["looking", "drained"]
    assert alert["acknowledged"] and alert["status"] == "closed" and closed.state == "closed"
    assert fake.last("POST", r".*/close").param("identifierType") == "alias"
    assert og.get("wf-3:ticket").state == "closed"  # type: ignore[union-attr]
    og.update(TicketUpdate(key="u4", ticket=closed, state="reopened"))
    assert len(fake.alerts) == 2 and og.get("wf-3:ticket").state == "open"  # type: ignore[union-attr]


def test_asynchronous_refusal_is_permanent(fake: FakeOpsgenie) -> None:
    og = tickets(fake)
    ghost = og.create(REQUEST).model_copy(update={"key": "argus:ghost"})
    with pytest.raises(PermanentError, match="Alert does not exist"):
        og.update(TicketUpdate(key="u1", ticket=ghost, state="acknowledged"))


def test_faults(fake: FakeOpsgenie) -> None:
    og = tickets(fake, timeout=0.2)
    fake.rate_limit("GET", r"/v2/alerts/.*", retry_after="2")
    with pytest.raises(IntegrationError) as caught:
        og.create(REQUEST)
    assert caught.value.retry_after == 2.0
    fake.fail("POST", "/v2/alerts", status=503)
    with pytest.raises(IntegrationError, match="Injected failure 503"):
        og.create(REQUEST)
    fake.slow("POST", "/v2/alerts", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        og.create(REQUEST)
    fake.fail(
        "POST",
        "/v2/alerts",
        status=422,
        json={
            "message": "Request body is not processable. Please check the errors.",
            "errors": {"message": "Message can not be empty."},
            "took": 0.0,
        },
    )
    with pytest.raises(PermanentError, match="Message can not be empty"):
        og.create(REQUEST)
    bad_key = OpsgenieTickets("nope", base_url=fake.url, timeout=2.0)
    with pytest.raises(PermanentError, match="Could not authenticate"):
        bad_key.create(REQUEST)


def test_channel_opens_once_and_closes(fake: FakeOpsgenie) -> None:
    channel = OpsgenieChannel("genie-key", base_url=fake.url, timeout=2.0, poll_interval=0.01)
    opened = Notification(
        key="n1",
        kind=NotificationKind.OPENED,
        incident_id="INC-3",
        subject="queue backlog",
        body="lag",
        severity="error",
    )
    assert channel.send(opened).ok and channel.send(opened).duplicate
    assert (
        len(fake.alerts) == 1
        and fake.alerts[0]["alias"] == "argus:INC-3"
        and fake.alerts[0]["priority"] == "P2"
    )
    info = opened.model_copy(update={"key": "n2", "kind": NotificationKind.INFO})
    assert channel.send(info).detail.startswith("skipped")
    resolved = opened.model_copy(update={"key": "n3", "kind": NotificationKind.RESOLVED, "body": "drained"})
    assert channel.send(resolved).ok and fake.alerts[0]["status"] == "closed"
    never = opened.model_copy(
        update={"key": "n4", "kind": NotificationKind.RESOLVED, "incident_id": "INC-404"}
    )
    assert channel.send(never).ok  # nothing to close is not a failure
