"""Approvals through the gateway against a real IncidentWorkflow and worker (time-skipping server):
Teams `Action.Execute` clicks with Bot Framework tokens signed by keys made here, Slack button
clicks signed with the signing secret, signed links, and ticket webhooks. Every refusal is a 4xx
that says why and leaves the incident as it was; a double click applies once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.client import WorkflowHandle

from argus.integrations.signed_links import NonceStore
from argus.models import ArgusConfig, IncidentStatus
from argus.workers.gateway import GatewayContext, create_app
from argus.workflows.incident import IncidentWorkflow
from tests.fakes.slack import block_action_body, sign_slack_request, start_slack_fake
from tests.fakes.teams import BotSigningKey, bot_claims, invoke_activity, start_teams_fake
from tests.workflows import kit

APP_ID = "bot-app-id"
TENANT = "tenant-1"
CONVERSATION = "19:argus@thread.tacv2"
SLACK_SECRET = "slack-signing-secret-for-tests"
JIRA_SECRET = "jira-webhook-secret"


async def wait_for(handle: WorkflowHandle, pred, what: str, tries: int = 300):
    for _ in range(tries):
        try:
            s = await handle.query(IncidentWorkflow.status)
            if pred(s):
                return s
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def teams():
    fake = start_teams_fake(tenant_id=TENANT, app_id=APP_ID, conversations=(CONVERSATION,))
    key = BotSigningKey("key-main")
    fake.publish_key(key)
    fake.signing_key = key
    yield fake
    fake.stop()


@pytest.fixture
def slack():
    fake = start_slack_fake()
    yield fake
    fake.stop()


POLICY = kit.policy(approval={"approvers": ["alice"], "approver_groups": [], "timeout": "7d"})


def people_config(tmp_path, teams, slack) -> ArgusConfig:
    base = kit.test_config(tmp_path).model_dump(mode="json", by_alias=True)
    base["policy"] = POLICY.model_dump(mode="json", by_alias=True)  # the gateway checks the same policy
    base["sandbox"] = {"enabled": True, "url": "http://127.0.0.1:9"}
    base["people"] = {
        "alice": {"teams": "aad-alice", "slack": "UALICE", "display_name": "Alice A", "groups": ["sre"]},
        "mallory": {"teams": "aad-mallory", "slack": "UMALLORY"},
    }
    base["notify"] = {
        "channels": ["outbox", "teams", "slack"],
        "echo": False,
        "teams": {
            "app_id": APP_ID,
            "tenant_id": TENANT,
            "service_url": teams.service_url,
            "conversation_id": CONVERSATION,
            "authority": teams.url,
            "openid_url": teams.openid_url,
        },
        "slack": {"webhook_url_secret": "slack_webhook_url"},
    }
    return ArgusConfig.model_validate(base)


class Stack:
    """A worker and the gateway app on one incident awaiting approval."""

    async def start(self, ts_env, tmp_path, teams, slack):
        self.config = people_config(tmp_path, teams, slack)
        secrets = {
            "teams_app_password": "bot-secret",
            "slack_webhook_url": slack.webhook_url,
            "slack_signing_secret": SLACK_SECRET,
            "jira_webhook_secret": JIRA_SECRET,
        }
        tq = f"tq-{uuid.uuid4().hex[:6]}"
        self.worker, self.rt = kit.make_worker(
            ts_env.client, tmp_path, kit.World(signature="cpu"), tq, config=self.config, secrets=secrets
        )
        await self.worker.__aenter__()
        inp = kit.incident_input(POLICY)
        self.handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        self.state = await wait_for(
            self.handle,
            lambda s: (
                s.status == IncidentStatus.AWAITING_APPROVAL
                and any("Approval request" in e.message for e in s.timeline)
            ),
            "approval requested",
        )
        ctx = GatewayContext(
            self.config,
            ts_env.client,
            self.rt.archive,
            self.rt.signer,
            NonceStore(tmp_path / "nonces.db"),
            extras={"secrets": self.rt.secrets, "directory": self.rt.directory},
        )
        self.ctx = ctx
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://gw"
        )
        return self

    async def stop(self):
        await self.http.aclose()
        try:
            await self.handle.terminate("test over")
        except Exception:
            pass
        await self.worker.__aexit__(None, None, None)

    async def undecided(self):
        s = await self.handle.query(IncidentWorkflow.status)
        assert s.decision is None and s.status == IncidentStatus.AWAITING_APPROVAL
        assert not [e for e in s.timeline if e.kind == "decision"]


def card_data(teams) -> tuple[str, dict]:
    """The approval card the bot posted (the first card is the "opened" one, without buttons)."""
    for activity_id, activity in teams.activities[CONVERSATION].items():
        card = activity["attachments"][0]["content"]
        execute = [a for a in card["actions"] if a["type"] == "Action.Execute"]
        if execute:
            assert [a["verb"] for a in execute] == ["approve", "reject"]
            return activity_id, execute[0]["data"]
    raise AssertionError("no approval card was posted")


def click(teams, *, claims=None, key=None, kid=None, **kw) -> tuple[dict, dict]:
    activity = invoke_activity(service_url=teams.service_url, tenant_id=TENANT, bot_app_id=APP_ID, **kw)
    token = (key or teams.signing_key).token(claims or bot_claims(APP_ID, teams.service_url), kid=kid)
    return activity, {"Authorization": f"Bearer {token}"}


async def test_teams_click_refusals_then_approval_applies_once(ts_env, tmp_path, teams, slack):
    stack = await Stack().start(ts_env, tmp_path, teams, slack)
    try:
        card_id, data = card_data(teams)
        assert data["wf"] == stack.handle.id and data["proposal"] == stack.state.proposal.hash
        ok = {
            "verb": "approve",
            "data": data,
            "aad_object_id": "aad-alice",
            "name": "Alice",
            "reply_to_id": card_id,
        }
        other = BotSigningKey("key-main")  # same kid, key nobody published
        now = int(time.time())
        cases = [
            ("no token", {}, None, 401, "missing bearer token"),
            ("bad signature", {"key": other}, None, 401, "bad signature"),
            (
                "wrong issuer",
                {"claims": bot_claims(APP_ID, teams.service_url, issuer="https://evil.example")},
                None,
                401,
                "wrong issuer",
            ),
            (
                "wrong audience",
                {"claims": bot_claims("someone-else", teams.service_url)},
                None,
                401,
                "wrong audience",
            ),
            (
                "expired",
                {"claims": {**bot_claims(APP_ID, teams.service_url), "exp": now - 3600, "nbf": now - 7200}},
                None,
                401,
                "token expired",
            ),
            ("unknown key", {"kid": "never-published"}, None, 401, "unknown signing key"),
            (
                "service url",
                {"claims": bot_claims(APP_ID, "https://elsewhere.example/")},
                None,
                401,
                "serviceurl claim",
            ),
            ("wrong tenant", {"tenant": "tenant-evil"}, None, 403, "tenant tenant-evil is not allowed"),
            ("not allowed", {"aad_object_id": "aad-mallory"}, None, 403, "mallory may not approve"),
            ("unknown user", {"aad_object_id": "aad-nobody"}, None, 403, "is not an ARGUS user"),
            ("stale", {"data": {**data, "proposal": "0000stale"}}, None, 409, "stale proposal"),
            (
                "unknown incident",
                {"data": {**data, "wf": "incident-does-not-exist"}},
                None,
                404,
                "unknown incident",
            ),
            ("malformed", {"malformed": True}, None, 400, "no value.action"),
        ]
        for name, how, _, status, reason in cases:
            fields = dict(ok)
            for k in ("data", "aad_object_id"):
                if k in how:
                    fields[k] = how[k]
            activity, headers = click(
                teams, claims=how.get("claims"), key=how.get("key"), kid=how.get("kid"), **fields
            )
            if "tenant" in how:
                activity["conversation"]["tenantId"] = how["tenant"]
                activity["channelData"]["tenant"]["id"] = how["tenant"]
            if how.get("malformed"):
                activity["value"] = {"trigger": "manual"}
            if name == "no token":
                headers = {}
            response = await stack.http.post("/api/teams/messages", json=activity, headers=headers)
            assert response.status_code == status, (name, response.text)
            assert reason in response.text, (name, response.text)
        await stack.undecided()

        activity, headers = click(teams, **ok)
        first = await stack.http.post("/api/teams/messages", json=activity, headers=headers)
        assert first.status_code == 200, first.text
        reply = first.json()
        assert reply["type"] == "application/vnd.microsoft.card.adaptive"
        texts = [b.get("text", "") for b in reply["value"]["body"]]
        assert any(t.startswith("Approved by Alice A at ") for t in texts)
        assert reply["value"]["actions"] == []
        # Double click: same card, person and verb → same update id → applied once.
        activity2, headers2 = click(teams, invoke_id="f:invoke-2", **ok)
        again = await stack.http.post("/api/teams/messages", json=activity2, headers=headers2)
        assert again.status_code == 200, again.text
        s = await wait_for(stack.handle, lambda s: s.decision is not None, "decided")
        assert s.decision.approver == "alice" and s.decision.via == "teams"
        assert (
            s.decision.origin
            == f"teams tenant {TENANT} conversation 19:argus@thread.tacv2;messageid=1700000000001"
        )
        assert len([e for e in s.timeline if e.kind == "decision"]) == 1
    finally:
        await stack.stop()


async def test_slack_click_refusals_then_reject(ts_env, tmp_path, teams, slack):
    stack = await Stack().start(ts_env, tmp_path, teams, slack)
    try:
        value = json.dumps({"incident": stack.handle.id, "proposal": stack.state.proposal.hash})
        url = slack.url + "/actions/T1/1/abc"

        def body(**kw):
            return block_action_body(value=kw.pop("value", value), response_url=url, **kw)

        good = body(action_id="argus_reject", user_id="UALICE")
        cases = [
            ("unsigned", good, {}, 401, "missing X-Slack-Request-Timestamp"),
            ("bad signature", good, sign_slack_request("not-the-secret", good), 401, "bad signature"),
            (
                "tampered",
                good.replace(b"UALICE", b"UMALLOR"),
                sign_slack_request(SLACK_SECRET, good),
                401,
                "bad signature",
            ),
            (
                "replayed late",
                good,
                sign_slack_request(SLACK_SECRET, good, int(time.time()) - 600),
                401,
                "stale request",
            ),
            (
                "malformed",
                b"payload=%7Bnot-json",
                sign_slack_request(SLACK_SECRET, b"payload=%7Bnot-json"),
                400,
                "not JSON",
            ),
            (
                "not allowed",
                body(action_id="argus_reject", user_id="UMALLORY"),
                None,
                403,
                "mallory may not approve",
            ),
            (
                "stale",
                body(
                    action_id="argus_reject",
                    user_id="UALICE",
                    value=json.dumps({"incident": stack.handle.id, "proposal": "old"}),
                ),
                None,
                409,
                "stale proposal",
            ),
            (
                "unknown incident",
                body(
                    action_id="argus_reject",
                    user_id="UALICE",
                    value=json.dumps({"incident": "incident-nope", "proposal": "x"}),
                ),
                None,
                404,
                "unknown incident",
            ),
        ]
        for name, raw, headers, status, reason in cases:
            headers = sign_slack_request(SLACK_SECRET, raw) if headers is None else headers
            response = await stack.http.post("/api/slack/actions", content=raw, headers=headers)
            assert response.status_code == status, (name, response.text)
            assert reason in response.text, (name, response.text)
        await stack.undecided()

        response = await stack.http.post(
            "/api/slack/actions", content=good, headers=sign_slack_request(SLACK_SECRET, good)
        )
        assert response.status_code == 200, response.text
        assert response.json()["text"].startswith("Rejected by alice at ")
        again = await stack.http.post(
            "/api/slack/actions", content=good, headers=sign_slack_request(SLACK_SECRET, good)
        )
        assert again.status_code == 200, "a double click is the same update: same answer"
        s = await wait_for(stack.handle, lambda s: s.decision is not None, "decided")
        assert s.decision.decision.value == "reject" and s.decision.via == "slack"
        assert len([e for e in s.timeline if e.kind == "decision"]) == 1
        await asyncio.gather(*stack.ctx.extras.get("slack_responses", []))
        replaced = [r for r in slack.responses if r.get("replace_original") is True]
        assert replaced and replaced[-1]["text"].startswith("Rejected by alice")
        ephemeral = [r for r in slack.responses if r.get("response_type") == "ephemeral"]
        assert any("stale proposal" in r["text"] for r in ephemeral), "the clicker is told why"
    finally:
        await stack.stop()


async def test_signed_link_expiry_tamper_replay_and_get_never_acts(ts_env, tmp_path, teams, slack):
    stack = await Stack().start(ts_env, tmp_path, teams, slack)
    try:
        request = next(r for r in stack.rt.channels["outbox"].records() if r["kind"] == "approval_request")
        link = request["links"]["approve:alice"]
        token = parse_qs(urlsplit(link).query)["t"][0]
        # GET shows the confirm page and acts on nothing (link scanners fetch URLs).
        page = await stack.http.get("/approve", params={"t": token})
        assert page.status_code == 200 and "approve" in page.text.lower()
        await stack.undecided()
        payload, sig = token.split(".")
        tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
        r = await stack.http.post("/approve", data={"t": tampered})
        assert r.status_code == 400 and "signature is invalid" in r.text
        expired = stack.rt.signer.token(stack.handle.id, "approve", stack.state.proposal.hash, "alice", -10)
        r = await stack.http.post("/approve", data={"t": expired})
        assert r.status_code == 400 and "expired" in r.text
        stale = stack.rt.signer.token(stack.handle.id, "approve", "old-hash", "alice", 600)
        r = await stack.http.post("/approve", data={"t": stale})
        assert r.status_code == 409 and "stale proposal" in r.text
        mallory = stack.rt.signer.token(stack.handle.id, "approve", stack.state.proposal.hash, "mallory", 600)
        r = await stack.http.post("/approve", data={"t": mallory})
        assert r.status_code == 409 and "mallory may not approve" in r.text
        await stack.undecided()
        r = await stack.http.post("/approve", data={"t": token, "comment": "go"})
        assert r.status_code == 200, r.text
        replay = await stack.http.post("/approve", data={"t": token})
        assert replay.status_code == 409 and "already used" in replay.text
        s = await wait_for(stack.handle, lambda s: s.decision is not None, "decided")
        assert s.decision.approver == "alice" and s.decision.via == "link" and s.decision.comment == "go"
    finally:
        await stack.stop()


def jira_hook(issue_key: str, wf: str | None, category: str, to: str, user: str = "bob") -> bytes:
    labels = ["argus"] + ([f"argus-wf-{wf}"] if wf else [])
    return json.dumps(
        {
            "webhookEvent": "jira:issue_updated",
            "user": {"name": user, "displayName": user.title()},
            "issue": {
                "key": issue_key,
                "fields": {"labels": labels, "status": {"name": to, "statusCategory": {"key": category}}},
            },
            "changelog": {"items": [{"field": "status", "fromString": "Open", "toString": to}]},
        }
    ).encode()


def hub(raw: bytes, secret: str = JIRA_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}


async def test_ticket_webhooks_resolve_and_reopen_reach_the_incident(ts_env, tmp_path, teams, slack):
    stack = await Stack().start(ts_env, tmp_path, teams, slack)
    try:
        wf = stack.handle.id
        resolved = jira_hook("OPS-7", wf, "done", "Resolved")
        for headers, status, reason in [
            ({}, 401, "unsigned request"),
            (hub(resolved, "wrong"), 401, "bad signature"),
            ({"Authorization": "Bearer wrong"}, 401, "wrong bearer token"),
        ]:
            r = await stack.http.post("/api/tickets/jira", content=resolved, headers=headers)
            assert r.status_code == status and reason in r.text
        for raw, status, reason in [
            (b"{not json", 400, "not JSON"),
            (json.dumps({"webhookEvent": "jira:issue_updated"}).encode(), 400, "no issue.key"),
            (jira_hook("OPS-9", None, "done", "Done"), 404, "not an ARGUS ticket"),
            (jira_hook("OPS-9", "incident-unknown", "done", "Done"), 404, "unknown incident"),
        ]:
            r = await stack.http.post("/api/tickets/jira", content=raw, headers=hub(raw))
            assert r.status_code == status and reason in r.text, r.text
        s = await stack.handle.query(IncidentWorkflow.status)
        assert not [e for e in s.timeline if e.kind == "ticket_sync"], "refusals signal nothing"

        r = await stack.http.post("/api/tickets/jira", content=resolved, headers=hub(resolved))
        assert r.status_code == 200 and r.json()["state"] == "resolved"
        final = await stack.handle.result()
        assert final.status == IncidentStatus.CLOSED
        assert any(e.kind == "ticket_sync" and "OPS-7" in e.message for e in final.timeline)
        closed = await stack.http.post("/api/tickets/jira", content=resolved, headers=hub(resolved))
        assert closed.status_code == 409 and "already closed" in closed.text
    finally:
        await stack.stop()
