"""Teams: Workflows webhook and bot channels against the fake; the bot's inbound JWT checks with keys
made here; invoke parsing and replies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.teams import (
    BotFrameworkAuth,
    TeamsAuthError,
    TeamsBotChannel,
    TeamsInvokeError,
    TeamsNotification,
    TeamsWorkflowsChannel,
    card_reply,
    decided_card,
    error_reply,
    parse_invoke,
)
from argus.models import Notification, NotificationKind
from tests.fakes.teams import BotSigningKey, FakeTeams, bot_claims, invoke_activity

APP_ID = "bot-app-id"
CONVERSATION = "19:argus@thread.tacv2"


@pytest.fixture
def fake() -> Iterator[FakeTeams]:
    with FakeTeams(app_id=APP_ID) as server:
        yield server


@pytest.fixture(scope="module")
def keys() -> dict[str, BotSigningKey]:
    return {
        "main": BotSigningKey("key-main"),
        "rotated": BotSigningKey("key-rotated"),
        "webchat": BotSigningKey("key-webchat", endorsements=("webchat",)),
    }


def approval(**extra: object) -> TeamsNotification:
    fields: dict[str, object] = dict(
        key="n1",
        kind=NotificationKind.APPROVAL_REQUEST,
        incident_id="INC-42",
        subject="Approval needed: restart checkout",
        body="Restart checkout pods (low risk).",
        severity="critical",
        service="checkout",
        actions=["approve", "reject"],
        proposal_hash="abc123",
        links={
            "approve:anyone": "https://argus/l/yes",
            "reject:anyone": "https://argus/l/no",
            "approve:bob": "https://argus/l/bob",
        },
        workflow_id="incident-grp-7",
    )
    return TeamsNotification.model_validate({**fields, **extra})


def bot(fake: FakeTeams, **kwargs: object) -> TeamsBotChannel:
    kwargs.setdefault("timeout", 2.0)
    return TeamsBotChannel(
        APP_ID, "bot-secret", "tenant-1", fake.service_url, CONVERSATION, authority=fake.url, **kwargs
    )  # type: ignore[arg-type]


# ---- outbound --------------------------------------------------------------------------------


def test_bot_posts_card_with_execute_and_openurl_once(fake: FakeTeams) -> None:
    channel = bot(fake)
    delivery = channel.send(approval())
    assert channel.send(approval()).duplicate
    activity = fake.activities[CONVERSATION][delivery.detail]
    assert activity["type"] == "message" and activity["summary"] == "Approval needed: restart checkout"
    (attachment,) = activity["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    execute = [a for a in card["actions"] if a["type"] == "Action.Execute"]
    assert [a["verb"] for a in execute] == ["approve", "reject"]
    assert execute[0]["data"] == {"incident": "INC-42", "wf": "incident-grp-7", "proposal": "abc123"}
    urls = [a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"]
    assert urls == ["https://argus/l/yes", "https://argus/l/no"]  # bob's personal link stays out
    post = fake.last("POST", rf"/v3/conversations/{CONVERSATION}/activities")
    assert "%3A" in post.raw_path  # the conversation id is percent-encoded on the wire
    assert post.headers["authorization"].startswith("Bearer eyFake.")


def test_bot_token_is_fetched_once_and_cached(fake: FakeTeams) -> None:
    channel = bot(fake)
    channel.send(approval())
    channel.send(approval(key="n2"))
    (token_request,) = fake.requests_to("POST", r"/tenant-1/oauth2/v2\.0/token")
    form = token_request.form()
    assert (
        form["grant_type"] == "client_credentials"
        and form["scope"] == "https://api.botframework.com/.default"
    )


def test_revoked_token_is_retryable_and_refreshed(fake: FakeTeams) -> None:
    channel = bot(fake)
    channel.send(approval())
    fake.revoke_tokens()
    with pytest.raises(IntegrationError, match="401") as caught:
        channel.send(approval(key="n2"))
    assert not isinstance(caught.value, PermanentError)
    assert channel.send(approval(key="n2")).ok  # the retry got a fresh token
    assert len(fake.requests_to("POST", r".*/oauth2/v2\.0/token")) == 2


def test_update_card_replaces_the_activity(fake: FakeTeams) -> None:
    channel = bot(fake)
    activity_id = channel.send(approval()).detail
    card = decided_card(
        incident="INC-42", decision="approve", approver="Alice", at=datetime(2026, 11, 26, 10, 2, tzinfo=UTC)
    )
    channel.update_card(activity_id, card)
    updated = fake.activities[CONVERSATION][activity_id]
    assert updated["attachments"][0]["content"]["body"][-1]["text"] == "Approved by Alice at 10:02 UTC"
    with pytest.raises(PermanentError, match="Activity not found"):
        channel.update_card("nope", card)


def test_bot_errors(fake: FakeTeams) -> None:
    wrong_secret = TeamsBotChannel(
        APP_ID, "nope", "tenant-1", fake.service_url, CONVERSATION, authority=fake.url, timeout=2.0
    )
    with pytest.raises(PermanentError, match="AADSTS7000215") as caught:
        wrong_secret.send(approval())
    assert "nope" not in str(caught.value)
    missing = TeamsBotChannel(
        APP_ID,
        "bot-secret",
        "tenant-1",
        fake.service_url,
        "19:gone@thread.tacv2",
        authority=fake.url,
        timeout=2.0,
    )
    with pytest.raises(PermanentError, match="Conversation not found"):
        missing.send(approval())
    channel = bot(fake, timeout=0.2)
    fake.rate_limit("POST", r"/v3/.*", retry_after="4")
    with pytest.raises(IntegrationError) as caught:
        channel.send(approval())
    assert caught.value.retry_after == 4.0
    fake.fail("POST", r"/v3/.*", status=500)
    with pytest.raises(IntegrationError, match="Injected failure 500"):
        channel.send(approval())
    fake.slow("POST", r"/v3/.*", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        channel.send(approval())
    assert channel.send(approval()).ok


def test_workflows_webhook_envelope(fake: FakeTeams) -> None:
    channel = TeamsWorkflowsChannel(fake.workflows_url, timeout=2.0)
    delivery = channel.send(approval())
    assert delivery.ok and delivery.detail == "HTTP 202" and channel.send(approval()).duplicate
    (post,) = fake.webhook_posts
    assert post["type"] == "message"
    (attachment,) = post["attachments"]
    assert (
        attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        and attachment["contentUrl"] is None
    )
    actions = attachment["content"]["actions"]
    assert {a["type"] for a in actions} == {"Action.OpenUrl"}  # no bot behind a webhook card
    assert [a["title"] for a in actions] == ["Approve", "Reject"]


def test_workflows_webhook_faults(fake: FakeTeams) -> None:
    channel = TeamsWorkflowsChannel(fake.workflows_url, timeout=2.0)
    fake.fail(
        "POST",
        r"/workflows/.*",
        status=400,
        json={"error": {"code": "InvalidRequestContent", "message": "bad card"}},
    )
    with pytest.raises(PermanentError, match="bad card") as caught:
        channel.send(approval())
    assert "SECRETSIG" not in str(caught.value)
    fake.fail("POST", r"/workflows/.*", status=502)
    with pytest.raises(IntegrationError):
        channel.send(approval())


def test_plain_notification_card_has_no_buttons(fake: FakeTeams) -> None:
    channel = bot(fake)
    note = Notification(
        key="n9", kind=NotificationKind.OPENED, incident_id="INC-1", subject="db slow", body="p99 2s"
    )
    activity_id = channel.send(note).detail
    assert fake.activities[CONVERSATION][activity_id]["attachments"][0]["content"]["actions"] == []


# ---- inbound: JWT --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def auth(fake: FakeTeams, clock: Clock | None = None) -> BotFrameworkAuth:
    return BotFrameworkAuth(APP_ID, openid_url=fake.openid_url, timeout=2.0, clock=clock or Clock())


async def test_valid_token_passes(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    activity = invoke_activity(service_url="https://smba.trafficmanager.net/amer/")
    for alg in ("RS256", "RS384", "RS512"):
        token = keys["main"].token(bot_claims(APP_ID, activity["serviceUrl"]), alg=alg)
        claims = await auth(fake).authenticate(f"Bearer {token}", activity)
        assert claims.aud == APP_ID and claims.serviceurl == activity["serviceUrl"]


async def expect_refusal(fake: FakeTeams, token: str, reason: str, activity: dict | None = None) -> None:
    with pytest.raises(TeamsAuthError, match=reason):
        await auth(fake).authenticate(f"Bearer {token}", activity or invoke_activity())


async def test_bad_signature(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    forged = keys["rotated"].token(bot_claims(APP_ID, invoke_activity()["serviceUrl"]), kid="key-main")
    await expect_refusal(fake, forged, "bad signature")


async def test_wrong_issuer(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    token = keys["main"].token(
        bot_claims(APP_ID, invoke_activity()["serviceUrl"], issuer="https://evil.example")
    )
    await expect_refusal(fake, token, "wrong issuer")


async def test_wrong_audience(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    token = keys["main"].token(bot_claims("another-bot", invoke_activity()["serviceUrl"]))
    await expect_refusal(fake, token, "wrong audience")


async def test_expired_beyond_skew(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    url = invoke_activity()["serviceUrl"]
    stale = bot_claims(APP_ID, url, lifetime=-301)
    await expect_refusal(fake, keys["main"].token(stale), "token expired")
    within_skew = bot_claims(APP_ID, url, lifetime=-200)  # 200 s late is inside the 5-minute skew
    assert await auth(fake).authenticate(f"Bearer {keys['main'].token(within_skew)}", invoke_activity())


async def test_missing_endorsement(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["webchat"])
    token = keys["webchat"].token(bot_claims(APP_ID, invoke_activity()["serviceUrl"]))
    await expect_refusal(fake, token, "not endorsed for channel 'msteams'")


async def test_serviceurl_mismatch(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    token = keys["main"].token(bot_claims(APP_ID, "https://attacker.example/"))
    await expect_refusal(fake, token, "serviceurl claim does not match")
    no_claim = bot_claims(APP_ID, "x")
    del no_claim["serviceurl"]
    await expect_refusal(fake, keys["main"].token(no_claim), "no serviceurl claim")


async def test_disallowed_algorithm_and_malformed_tokens(
    fake: FakeTeams, keys: dict[str, BotSigningKey]
) -> None:
    import jwt

    fake.publish_key(keys["main"])
    hs = jwt.encode(
        bot_claims(APP_ID, "x"),
        "shared-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
        headers={"kid": "key-main"},
    )
    await expect_refusal(fake, hs, "algorithm 'HS256' not allowed")
    await expect_refusal(fake, "not-a-jwt", "malformed token")
    with pytest.raises(TeamsAuthError, match="missing bearer token"):
        await auth(fake).authenticate(None, invoke_activity())


async def test_unknown_kid_refreshes_at_most_hourly(fake: FakeTeams, keys: dict[str, BotSigningKey]) -> None:
    fake.publish_key(keys["main"])
    clock = Clock()
    validator = auth(fake, clock)
    activity = invoke_activity()
    good = keys["main"].token(bot_claims(APP_ID, activity["serviceUrl"]))
    rotated = keys["rotated"].token(bot_claims(APP_ID, activity["serviceUrl"]))
    await validator.authenticate(f"Bearer {good}", activity)
    fake.publish_key(keys["rotated"])  # Microsoft rotates keys
    clock.now += 600
    with pytest.raises(TeamsAuthError, match="unknown signing key kid 'key-rotated'"):
        await validator.authenticate(f"Bearer {rotated}", activity)  # fetched < 1 h ago: no refetch
    assert len(fake.requests_to("GET", r"/v1/\.well-known/keys")) == 1
    clock.now += 3600
    assert await validator.authenticate(f"Bearer {rotated}", activity)  # refetched on the unknown kid
    assert len(fake.requests_to("GET", r"/v1/\.well-known/keys")) == 2
    clock.now += 25 * 3600
    fake.fail("GET", r"/v1/\.well-known/openidconfiguration", status=503)
    assert await validator.authenticate(f"Bearer {good}", activity)  # daily refresh failed: cached keys serve
    assert len(fake.requests_to("GET", r"/v1/\.well-known/openidconfiguration")) == 3


async def test_keys_unreachable_without_cache_is_retryable(
    fake: FakeTeams, keys: dict[str, BotSigningKey]
) -> None:
    fake.fail("GET", r"/v1/\.well-known/openidconfiguration", status=500)
    token = keys["main"].token(bot_claims(APP_ID, invoke_activity()["serviceUrl"]))
    with pytest.raises(IntegrationError, match="cannot fetch"):
        await auth(fake).authenticate(f"Bearer {token}", invoke_activity())


# ---- inbound: invoke parsing and replies -----------------------------------------------------


def test_parse_invoke() -> None:
    invoke = parse_invoke(invoke_activity())
    assert (invoke.verb, invoke.incident, invoke.workflow_id, invoke.proposal_hash) == (
        "approve",
        "INC-42",
        "incident-INC-42",
        "abc123",
    )
    assert (invoke.user_aad_id, invoke.user_name, invoke.tenant_id) == ("aad-alice", "Alice", "tenant-1")
    assert (invoke.invoke_id, invoke.reply_to_id) == ("f:invoke-1", "1700000000001")
    assert invoke.idempotency_key == "teams:f:invoke-1:approve"
    import json

    assert parse_invoke(json.dumps(invoke_activity()).encode()) == invoke


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.update(type="message"), "expected 'invoke'"),
        (lambda a: a.update(name="composeExtension/query"), "expected 'adaptiveCard/action'"),
        (lambda a: a["value"].pop("action"), "no value.action"),
        (lambda a: a["value"]["action"].update(type="Action.Submit"), "expected 'Action.Execute'"),
        (lambda a: a["value"]["action"].pop("verb"), "no verb"),
        (lambda a: a["from"].pop("aadObjectId"), "aadObjectId is missing"),
        (lambda a: (a["conversation"].pop("tenantId"), a.pop("channelData")), "no tenant id"),
        (lambda a: a.pop("serviceUrl"), "no serviceUrl"),
    ],
)
def test_parse_invoke_refuses_malformed(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    activity = invoke_activity()
    mutate(activity)
    with pytest.raises(TeamsInvokeError, match=message):
        parse_invoke(activity)
    with pytest.raises(TeamsInvokeError, match="not JSON"):
        parse_invoke(b"{nope")


def test_replies() -> None:
    card = decided_card(
        incident="INC-42",
        decision="reject",
        approver="Bob",
        at=datetime(2026, 11, 26, 11, 15, 30, tzinfo=UTC),
        title="Restart checkout",
        proposal_hash="abc123",
    )
    reply = card_reply(card)
    assert reply["statusCode"] == 200 and reply["type"] == "application/vnd.microsoft.card.adaptive"
    assert reply["value"]["actions"] == [] and reply["value"]["version"] == "1.5"
    assert reply["value"]["body"][-1]["text"] == "Rejected by Bob at 11:15 UTC"
    assert error_reply(400, "StaleProposal", "This proposal was replaced.") == {
        "statusCode": 400,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "StaleProposal", "message": "This proposal was replaced."},
    }
