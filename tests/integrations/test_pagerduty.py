"""PagerDuty Events API v2 channel and ticket system against the fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.pagerduty import PagerDutyChannel, PagerDutyTickets
from argus.models import Notification, NotificationKind, TicketRequest, TicketUpdate
from tests.fakes.pagerduty import FakePagerDuty

ROUTING_KEY = "R" * 32


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


def note(kind: NotificationKind, key: str) -> Notification:
    return Notification(
        key=key,
        kind=kind,
        incident_id="INC-9",
        subject="db down",
        body="primary unreachable",
        severity="critical",
        service="payments-db",
        links={"incident": "http://argus.local/i/INC-9"},
    )


def test_channel_triggers_once_and_resolves(fake: FakePagerDuty) -> None:
    channel = PagerDutyChannel(ROUTING_KEY, base_url=fake.url, timeout=2.0)
    first = channel.send(note(NotificationKind.OPENED, "n1"))
    again = channel.send(note(NotificationKind.OPENED, "n1"))
    assert first.ok and again.duplicate and len(fake.requests) == 1
    event = fake.last("POST", "/v2/enqueue")
    body = event.json()
    assert body["dedup_key"] == "argus:INC-9" and body["event_action"] == "trigger"
    assert body["payload"]["severity"] == "critical" and body["payload"]["component"] == "payments-db"
    assert body["links"] == [{"href": "http://argus.local/i/INC-9", "text": "incident"}]
    assert "authorization" not in event.headers
    skipped = channel.send(note(NotificationKind.APPROVAL_REQUEST, "n2"))
    assert skipped.ok and skipped.detail.startswith("skipped") and len(fake.requests) == 1
    channel.send(note(NotificationKind.RESOLVED, "n3"))
    assert fake.alerts["argus:INC-9"]["status"] == "resolved" and fake.incidents == 1
    assert fake.last().json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "argus:INC-9",
    }


def test_tickets_create_once_acknowledge_resolve(fake: FakePagerDuty) -> None:
    pd = PagerDutyTickets(ROUTING_KEY, base_url=fake.url, timeout=2.0)
    request = TicketRequest(
        key="wf-9:ticket",
        incident_id="INC-9",
        title="db down",
        description="d",
        service="db",
        severity="error",
    )
    ref = pd.create(request)
    assert pd.create(request) == ref and fake.incidents == 1 and len(fake.requests) == 1
    # a new worker without the local record: PagerDuty folds the repeated trigger into the open alert
    PagerDutyTickets(ROUTING_KEY, base_url=fake.url, timeout=2.0).create(request)
    assert fake.incidents == 1
    acked = pd.update(TicketUpdate(key="u1", ticket=ref, state="acknowledged"))
    assert acked.state == "acknowledged" and fake.alerts[ref.key]["status"] == "acknowledged"
    resolved = pd.update(TicketUpdate(key="u2", ticket=ref, state="resolved"))
    assert resolved.state == "resolved" and pd.get("wf-9:ticket") == resolved == pd.get(ref.key)
    pd.update(TicketUpdate(key="u3", ticket=resolved, state="reopened"))
    assert fake.incidents == 2 and fake.alerts[ref.key]["status"] == "triggered"


def test_faults(fake: FakePagerDuty) -> None:
    channel = PagerDutyChannel(ROUTING_KEY, base_url=fake.url, timeout=0.2)
    fake.rate_limit("POST", "/v2/enqueue", retry_after="30")
    with pytest.raises(IntegrationError, match="arriving too quickly") as caught:
        channel.send(note(NotificationKind.OPENED, "n1"))
    assert caught.value.retry_after == 30.0
    fake.fail("POST", "/v2/enqueue", status=502)
    with pytest.raises(IntegrationError) as caught:
        channel.send(note(NotificationKind.OPENED, "n1"))
    assert not isinstance(caught.value, PermanentError)
    fake.slow("POST", "/v2/enqueue", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        channel.send(note(NotificationKind.OPENED, "n1"))
    assert channel.send(note(NotificationKind.OPENED, "n1")).ok


def test_invalid_event_is_permanent_with_pagerduty_errors(fake: FakePagerDuty) -> None:
    channel = PagerDutyChannel(ROUTING_KEY, base_url=fake.url, timeout=2.0)
    fake.fail(
        "POST",
        "/v2/enqueue",
        status=400,
        json={
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["'payload.summary' is missing or blank"],
        },
    )
    with pytest.raises(
        PermanentError, match=r"Event object is invalid; 'payload\.summary' is missing"
    ) as caught:
        channel.send(note(NotificationKind.OPENED, "n1"))
    assert ROUTING_KEY not in str(caught.value)


def test_routing_key_must_have_32_characters() -> None:
    with pytest.raises(ValueError, match="32"):
        PagerDutyChannel("short")
