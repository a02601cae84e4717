"""SendGrid as a notification channel wired from configuration: `notify.channels:
[email-sendgrid]` with a `notify.email_sendgrid` section and the API key from the secrets store,
built by the worker's wiring and driven through the Notifier's `notify` activity (in Temporal's
activity environment) against a SendGrid v3 wire fake. One message per person, tagged with the
notification key; a retried activity sends nothing twice; refusals and missing configuration
say what is wrong."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from argus.models import ArgusConfig, Notification, NotificationKind
from argus.workers.settings import ConfigError, Secrets
from argus.workers.wiring import build_activities, build_runtime
from tests.fakes.sendgrid import FakeSendGrid, start_sendgrid_fake
from tests.workflows import kit

API_KEY = "SG.test-key-from-the-secrets-store"


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = start_sendgrid_fake(api_key=API_KEY)
    yield fake
    fake.stop()


def config(tmp_path, sendgrid: FakeSendGrid | None, **section) -> ArgusConfig:
    base = kit.test_config(tmp_path).model_dump(mode="json", by_alias=True)
    base["people"] = {"alice": {"email": "alice@example.com"}, "carol": {"email": "carol@example.com"}}
    base["notify"] = {
        "echo": False,
        "channels": ["email-sendgrid"],
        "email_sendgrid": {
            "sender": "argus@example.com",
            **({"base_url": sendgrid.url} if sendgrid else {}),
            **section,
        },
    }
    return ArgusConfig.model_validate(base)


def notify_activity(cfg: ArgusConfig, secrets: dict[str, str]):  # type: ignore[no-untyped-def]
    rt = build_runtime(cfg, Secrets({"link_secret": "x" * 32, **secrets}))
    return next(a for a in build_activities(rt) if a.__temporal_activity_definition.name == "notify")


def approval(key: str = "incident-test:42:solicit:0") -> Notification:
    return Notification(
        key=key,
        kind=NotificationKind.APPROVAL_REQUEST,
        incident_id="incident-test:42",
        subject="Approval needed: restart payments",
        body="Restart **payments** pods.",
        severity="critical",
        service="payments",
        recipients=["alice", "carol"],
        actions=["approve", "reject"],
        proposal_hash="abc123",
    )


async def test_configured_sendgrid_channel_sends_through_the_notifier_once(tmp_path, sendgrid):
    notify = notify_activity(config(tmp_path, sendgrid), {"sendgrid_api_key": API_KEY})
    env = ActivityEnvironment()
    deliveries = await env.run(notify, approval())
    assert [(d.channel, d.ok) for d in deliveries] == [("email-sendgrid", True)]
    assert "alice@example.com:" in deliveries[0].detail and "carol@example.com:" in deliveries[0].detail

    assert len(sendgrid.mail) == 2
    sent = sendgrid.requests_to("POST", r"/v3/mail/send")
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in sent)
    to = sorted(m["personalizations"][0]["to"][0]["email"] for m in sendgrid.mail)
    assert to == ["alice@example.com", "carol@example.com"]
    mail = sendgrid.mail[0]
    assert mail["from"]["email"] == "argus@example.com" and "restart payments" in mail["subject"]
    assert mail["personalizations"][0]["custom_args"]["argus_key"] == "incident-test:42:solicit:0"
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]

    # The activity retried (e.g. after a worker crash): the sent-keys record answers, no new mail.
    again = await env.run(notify, approval())
    assert again[0].ok and len(sendgrid.mail) == 2


async def test_a_sendgrid_outage_is_retried_by_temporal_and_a_refusal_is_not(tmp_path, sendgrid):
    notify = notify_activity(config(tmp_path, sendgrid), {"sendgrid_api_key": API_KEY})
    env = ActivityEnvironment()
    sendgrid.fail("POST", r"/v3/mail/send", status=503, times=1)
    with pytest.raises(ApplicationError, match="email-sendgrid") as err:
        await env.run(notify, approval("k-outage"))
    assert err.value.type == "ChannelFailed" and not err.value.non_retryable
    deliveries = await env.run(notify, approval("k-outage"))  # Temporal's next attempt
    assert deliveries[0].ok and len(sendgrid.mail) == 2

    sendgrid.fail("POST", r"/v3/mail/send", status=400, json={"errors": [
        {"message": "The from address does not match a verified Sender Identity.", "field": "from"}
    ]}, times=None)  # fmt: skip
    deliveries = await env.run(notify, approval("k-refused"))  # no retry can fix this: reported
    assert not deliveries[0].ok and not deliveries[0].retryable
    assert "from: The from address does not match a verified Sender Identity" in deliveries[0].detail


async def test_a_wrong_api_key_is_refused_and_said(tmp_path, sendgrid):
    notify = notify_activity(config(tmp_path, sendgrid), {"sendgrid_api_key": "SG.revoked"})
    deliveries = await ActivityEnvironment().run(notify, approval())
    assert not deliveries[0].ok and "authorization grant is invalid" in deliveries[0].detail
    assert sendgrid.mail == []


def test_configuration_errors_name_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"notify\.email_sendgrid needs secret 'sendgrid_api_key'"):
        notify_activity(config(tmp_path, None), {})
    with pytest.raises(ConfigError, match=r"needs secret 'sg_key'"):
        notify_activity(config(tmp_path, None, api_key_secret="sg_key"), {"sendgrid_api_key": API_KEY})
    base = kit.test_config(tmp_path).model_dump(mode="json", by_alias=True)
    base["notify"] = {"channels": ["email-sendgrid"]}
    with pytest.raises(ValueError, match=r"lists 'email-sendgrid' but notify\.email_sendgrid is not set"):
        ArgusConfig.model_validate(base)
    base["notify"] = {"channels": ["email-sendgrid"], "email_sendgrid": {"base_url": "http://x"}}
    with pytest.raises(ValueError, match=r"email_sendgrid\.sender"):
        ArgusConfig.model_validate(base)
