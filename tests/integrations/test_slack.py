"""SlackChannel against the fake (webhook and Web API), signature checks and block_actions parsing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.slack import (
    SlackChannel,
    SlackPayloadError,
    SlackSignatureError,
    parse_block_action,
    verify_slack_request,
)
from argus.integrations.templating import NotificationTemplates
from argus.models import Notification, NotificationKind
from tests.fakes.slack import FakeSlack, block_action_body, sign_slack_request

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def approval(key: str = "n1") -> Notification:
    return Notification(
        key=key,
        kind=NotificationKind.APPROVAL_REQUEST,
        incident_id="INC-42",
        subject="Approval needed: restart checkout",
        body="Restart *checkout* pods (low risk).",
        severity="critical",
        service="checkout",
        actions=["approve", "reject"],
        proposal_hash="abc123",
        links={
            "approve:alice": "https://argus/l/a",
            "approve:anyone": "https://argus/l/any",
            "incident": "https://argus/i/42",
        },
    )


def test_webhook_posts_block_kit_with_approval_buttons_once(fake: FakeSlack) -> None:
    slack = SlackChannel(webhook_url=fake.webhook_url, timeout=2.0)
    first = slack.send(approval())
    assert slack.send(approval()).duplicate and first.ok
    assert len(fake.webhook_messages) == 1
    message = fake.webhook_messages[0]
    assert message["text"] == "[CRITICAL] Approval needed: restart checkout"
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Approval needed: restart checkout", "emoji": True},
    }
    (approval_block,) = [b for b in blocks if b.get("block_id") == "argus_approval"]
    approve, reject = approval_block["elements"]
    assert approve["action_id"] == "argus_approve" and approve["style"] == "primary"
    assert reject["action_id"] == "argus_reject" and reject["style"] == "danger"
    assert json.loads(approve["value"]) == {"incident": "INC-42", "proposal": "abc123"}
    (links_block,) = [b for b in blocks if b.get("block_id") == "argus_links"]
    urls = [e["url"] for e in links_block["elements"]]
    assert urls == ["https://argus/l/any", "https://argus/i/42"]  # never a per-person link in a channel


def test_plain_notification_has_no_buttons(fake: FakeSlack) -> None:
    slack = SlackChannel(webhook_url=fake.webhook_url, timeout=2.0)
    slack.send(Notification(key="n2", kind=NotificationKind.OPENED, subject="db slow", body="p99 2s"))
    assert all(b["type"] != "actions" for b in fake.webhook_messages[0]["blocks"])


def test_web_api_post_update_and_respond(fake: FakeSlack) -> None:
    slack = SlackChannel(bot_token="xoxb-test-token", channel="C0ARGUS", api_base=fake.api_base, timeout=2.0)
    delivery = slack.send(approval())
    channel, ts = delivery.detail.split(":")
    assert (channel, ts) in fake.messages
    sent = fake.last("POST", "/api/chat.postMessage")
    assert sent.headers["authorization"] == "Bearer xoxb-test-token"
    assert sent.json()["channel"] == "C0ARGUS"
    slack.update_message(channel, ts, "Approved by alice")
    assert fake.messages[(channel, ts)]["text"] == "Approved by alice"
    slack.respond(fake.url + "/actions/T1/1/abc", "Approved by alice")
    assert fake.responses == [{"replace_original": True, "text": "Approved by alice"}]


def test_web_api_errors(fake: FakeSlack) -> None:
    wrong_channel = SlackChannel(
        bot_token="xoxb-test-token", channel="C0NOPE", api_base=fake.api_base, timeout=2.0
    )
    with pytest.raises(PermanentError, match="channel_not_found"):
        wrong_channel.send(approval())
    wrong_token = SlackChannel(bot_token="xoxb-bad", channel="C0ARGUS", api_base=fake.api_base, timeout=2.0)
    with pytest.raises(PermanentError, match="invalid_auth") as caught:
        wrong_token.send(approval())
    assert "xoxb-bad" not in str(caught.value)


def test_webhook_faults(fake: FakeSlack) -> None:
    slack = SlackChannel(webhook_url=fake.webhook_url, timeout=0.2)
    fake.rate_limit("POST", WEBHOOK := r"/services/.*", retry_after="11")
    with pytest.raises(IntegrationError) as caught:
        slack.send(approval())
    assert caught.value.retry_after == 11.0
    fake.fail("POST", WEBHOOK, status=500)
    with pytest.raises(IntegrationError, match="internal_error") as caught:
        slack.send(approval())
    assert "XXXXXXXX" not in str(caught.value)  # the webhook URL is a secret
    fake.slow("POST", WEBHOOK, delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        slack.send(approval())
    fake.fail("POST", WEBHOOK, status=400, body="invalid_blocks")
    with pytest.raises(PermanentError, match="invalid_blocks"):
        slack.send(approval())
    assert slack.send(approval()).ok and len(fake.webhook_messages) == 1


def test_team_override_template(tmp_path, fake: FakeSlack) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "approval_request.blocks.json.j2").write_text(
        '[{"type": "section", "text": {"type": "mrkdwn", "text": {{ ("Team says: " ~ n.subject)|tojson }}}}]'
    )
    slack = SlackChannel(webhook_url=fake.webhook_url, templates=NotificationTemplates(tmp_path), timeout=2.0)
    slack.send(approval())
    assert (
        fake.webhook_messages[0]["blocks"][0]["text"]["text"]
        == "Team says: Approval needed: restart checkout"
    )


# ---- inbound ---------------------------------------------------------------------------------

NOW = 1_700_000_200


def test_valid_signature_passes() -> None:
    body = block_action_body()
    verify_slack_request(SECRET, sign_slack_request(SECRET, body, NOW), body, now=NOW + 10)


def test_bad_signature_is_refused() -> None:
    body = block_action_body()
    headers = sign_slack_request("another-secret", body, NOW)
    with pytest.raises(SlackSignatureError, match="bad signature"):
        verify_slack_request(SECRET, headers, body, now=NOW)
    tampered = body.replace(b"argus_approve", b"argus_reject")
    with pytest.raises(SlackSignatureError, match="bad signature"):
        verify_slack_request(SECRET, sign_slack_request(SECRET, body, NOW), tampered, now=NOW)


def test_stale_timestamp_is_refused() -> None:
    body = block_action_body()
    with pytest.raises(SlackSignatureError, match="stale request"):
        verify_slack_request(SECRET, sign_slack_request(SECRET, body, NOW - 301), body, now=NOW)


def test_missing_headers_are_refused() -> None:
    body = block_action_body()
    headers = sign_slack_request(SECRET, body, NOW)
    with pytest.raises(SlackSignatureError, match="missing X-Slack-Signature"):
        verify_slack_request(
            SECRET, {"X-Slack-Request-Timestamp": headers["X-Slack-Request-Timestamp"]}, body, now=NOW
        )
    with pytest.raises(SlackSignatureError, match="missing X-Slack-Request-Timestamp"):
        verify_slack_request(SECRET, {}, body, now=NOW)


def test_parse_block_action() -> None:
    action = parse_block_action(block_action_body())
    assert (action.user, action.action, action.action_ts) == ("U0ALICE", "approve", "1700000123.000200")
    assert action.response_url == "https://hooks.slack.com/actions/T0000001/1/abc"
    assert (action.incident, action.proposal_hash, action.user_name) == ("INC-42", "abc123", "alice")
    assert (action.team, action.channel, action.message_ts) == ("T0000001", "C0ARGUS", "1700000001.000100")


def test_parse_block_action_errors() -> None:
    with pytest.raises(SlackPayloadError, match="no 'payload'"):
        parse_block_action(b"foo=bar")
    with pytest.raises(SlackPayloadError, match="not JSON"):
        parse_block_action(b"payload=%7Bnope")
    with pytest.raises(SlackPayloadError, match="expected 'block_actions'"):
        parse_block_action(b"payload=%7B%22type%22%3A%22view_submission%22%7D")
    with pytest.raises(SlackPayloadError, match="approval value"):
        parse_block_action(block_action_body(value="INC-42:approve"))
