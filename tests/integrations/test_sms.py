"""SmsChannel (Twilio REST) against the fake: SMS, voice, once per recipient, faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.sms import SmsChannel
from argus.models import Notification, NotificationKind
from tests.fakes.twilio import FakeTwilio

SID = "AC" + "0" * 32
PHONES = {"alice": "+15551230001", "bob": "+15551230002"}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, "twilio-token") as server:
        yield server


def channel(fake: FakeTwilio, **kwargs: object) -> SmsChannel:
    kwargs.setdefault("timeout", 2.0)
    return SmsChannel(SID, "twilio-token", "+15550000000", base_url=fake.url, phone_book=PHONES, **kwargs)  # type: ignore[arg-type]


def note(kind: NotificationKind = NotificationKind.OPENED, key: str = "n1") -> Notification:
    return Notification(
        key=key,
        kind=kind,
        incident_id="INC-42",
        subject="checkout down",
        body="5xx 40%",
        severity="critical",
        service="checkout",
        recipients=["alice", "bob"],
        links={"incident": "https://argus/i/42"},
    )


def test_sms_once_per_recipient(fake: FakeTwilio) -> None:
    sms = channel(fake)
    delivery = sms.send(note())
    assert sms.send(note()).duplicate and len(fake.messages) == 2
    first = fake.messages[0]
    assert first["To"] == "+15551230001" and first["From"] == "+15550000000"
    assert first["Body"] == "ARGUS CRITICAL INC-42: checkout down (checkout) https://argus/i/42"
    request = fake.last("POST", rf"/2010-04-01/Accounts/{SID}/Messages\.json")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert delivery.detail.startswith("+15551230001:SM")


def test_escalation_calls_with_twiml(fake: FakeTwilio) -> None:
    channel(fake).send(note(NotificationKind.ESCALATION))
    assert len(fake.calls) == 2 and not fake.messages
    twiml = fake.calls[0]["Twiml"]
    assert twiml.startswith('<Response><Say voice="alice" loop="2">This is ARGUS. critical incident INC 42')


def test_partial_failure_retries_only_the_missing(fake: FakeTwilio) -> None:
    sms = channel(fake)
    fake.unavailable.add(PHONES["bob"])
    with pytest.raises(IntegrationError, match="Service Unavailable"):
        sms.send(note())
    fake.unavailable.clear()
    sms.send(note())  # the activity's retry
    assert [m["To"] for m in fake.messages] == [PHONES["alice"], PHONES["bob"]]  # alice texted once


def test_faults(fake: FakeTwilio) -> None:
    sms = channel(fake, timeout=0.2)
    fake.rate_limit("POST", r".*/Messages\.json", retry_after="6")
    with pytest.raises(IntegrationError, match="Too Many Requests") as caught:
        sms.send(note())
    assert caught.value.retry_after == 6.0
    fake.slow("POST", r".*/Messages\.json", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        sms.send(note())
    bad = note().model_copy(update={"recipients": ["+1"]})
    with pytest.raises(PermanentError, match=r"not a valid phone number.*21211"):
        sms.send(bad)
    with pytest.raises(PermanentError, match="Authenticate") as caught2:
        SmsChannel(
            SID, "wrong-token", "+15550000000", base_url=fake.url, phone_book=PHONES, timeout=2.0
        ).send(note())
    assert "wrong-token" not in str(caught2.value)
    with pytest.raises(PermanentError, match="no phone number"):
        sms.send(note().model_copy(update={"recipients": ["carol"]}))
