"""IncidentWorkflow driving the real vendor clients through a real worker, wired from configuration
with secrets from the secrets store: Jira (the `jira` library) for the ticket, email over SMTP to a
real aiosmtpd server, PagerDuty Events v2, a Teams Workflows webhook and Twilio SMS as channels.
Faults on the way (Jira 500, 429 with Retry-After, a timeout whose request Jira still carried out,
an SMTP outage): Temporal retries, and nothing is duplicated. Afterwards the incident's history
holds none of the secrets."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

from google.protobuf.json_format import MessageToJson

from argus.models import ApprovalDecision, ArgusConfig, DecisionKind, IncidentStatus, ResolveSignal
from argus.workflows.incident import IncidentWorkflow
from tests.fakes.jira import start_jira_fake
from tests.fakes.pagerduty import start_pagerduty_fake
from tests.fakes.servicenow import start_servicenow_fake
from tests.fakes.smtp import start_smtp_fake
from tests.fakes.teams import start_teams_fake
from tests.fakes.twilio import start_twilio_fake

from . import kit

SECRETS = {
    "jira_api_token": "jira-token-Secret-1234",
    "smtp_password": "smtp-Pass-5678",
    "pagerduty_routing_key": "R0UT1NGKEY" + "x" * 22,
    "twilio_auth_token": "twilio-token",
    "servicenow_password": "snow-Secret-9999",
}


async def wait_for(handle, pred, what: str, tries: int = 400):
    for _ in range(tries):
        try:
            s = await handle.query(IncidentWorkflow.status)
            if pred(s):
                return s
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def vendor_config(
    tmp_path, *, jira=None, servicenow=None, smtp=None, pd=None, teams=None, twilio=None
) -> ArgusConfig:
    base = kit.test_config(tmp_path).model_dump(mode="json", by_alias=True)
    base["sandbox"] = {"enabled": True, "url": "http://127.0.0.1:9"}
    base["people"] = {
        "carol": {"email": "carol@example.com", "phone": "+4915100000001"},
        "alice": {"email": "alice@example.com", "phone": "+4915100000002"},
        "dave": {"email": "dave@example.com"},
    }
    channels = ["outbox"]
    notify: dict = {"echo": False}
    if smtp is not None:
        channels.append("email")
        notify["email"] = {
            "host": smtp.host,
            "port": smtp.port,
            "sender": "argus@example.com",
            "username": "argus",
        }
    if pd is not None:
        channels.append("pagerduty")
        notify["pagerduty"] = {"url": pd.url}
    if teams is not None:
        channels.append("teams-webhook")
        notify["teams_webhook"] = {"url_secret": "teams_webhook_url"}
    if twilio is not None:
        channels.append("sms")
        notify["sms"] = {
            "account_sid": twilio.account_sid,
            "from_number": "+15550000000",
            "url": twilio.url,
            "voice_kinds": [],
        }
    notify["channels"] = channels
    base["notify"] = notify
    if jira is not None:
        base["tickets"] = {
            "system": "jira",
            "jira": {"url": jira.url, "project": "OPS", "email": "argus@example.com", "timeout": "1s"},
        }
    if servicenow is not None:
        base["tickets"] = {
            "system": "servicenow",
            "servicenow": {
                "url": servicenow.url,
                "username": "argus",
                "cmdb_ci_by_service": {"checkout": "ci-1"},
            },
        }
    return ArgusConfig.model_validate(base)


async def close_by_hand(ts_env, handle):
    s = await wait_for(
        handle, lambda s: s.status == IncidentStatus.AWAITING_APPROVAL and s.tickets, "awaiting approval"
    )
    await handle.execute_update(
        IncidentWorkflow.decide,
        ApprovalDecision(
            approver="alice", decision=DecisionKind.REJECT, proposal_hash=s.proposal.hash, via="test"
        ),
    )
    await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="alice", reason="fixed by hand"))
    return await handle.result()


async def history_text(handle) -> str:
    history = await handle.fetch_history()
    return "\n".join(MessageToJson(e) for e in history.events)


async def test_jira_email_pagerduty_teams_sms_with_faults_and_no_secrets_in_history(ts_env, tmp_path):
    jira = start_jira_fake("Server")
    smtp = start_smtp_fake(username="argus", password=SECRETS["smtp_password"])
    pd = start_pagerduty_fake()
    teams = start_teams_fake()
    twilio = start_twilio_fake()
    try:
        # Jira: the first create fails 500, the second is throttled (Retry-After), the third is
        # answered too late for the client (1 s timeout) although Jira makes the issue.
        jira.fail("POST", r"/rest/api/2/issue", status=500, times=1)
        jira.rate_limit("POST", r"/rest/api/2/issue", retry_after="3", times=1)
        jira.slow("POST", r"/rest/api/2/issue", delay=1.5, times=1)
        smtp_down = smtp.inbox.refuse_rcpt
        smtp_down["carol@example.com"] = "451 4.3.0 try again later"
        cfg = vendor_config(tmp_path, jira=jira, smtp=smtp, pd=pd, teams=teams, twilio=twilio)
        secrets = {**SECRETS, "teams_webhook_url": teams.workflows_url}
        tq = f"tq-{uuid.uuid4().hex[:6]}"
        worker, _ = kit.make_worker(
            ts_env.client, tmp_path, kit.World(signature="cpu"), tq, config=cfg, secrets=secrets
        )
        async with worker:
            inp = kit.incident_input(kit.policy())
            handle = await ts_env.client.start_workflow(
                IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
            )
            await wait_for(handle, lambda s: s.tickets, "ticket created through the faults")
            await asyncio.sleep(0.2)
            smtp_down.clear()  # the mail server is back: the queued email goes out once
            await ts_env.sleep(timedelta(minutes=1))
            final = await close_by_hand(ts_env, handle)
            text = await history_text(handle)

        issues = list(jira.issues.values())
        assert len(issues) == 1, "exactly one Jira issue despite 500, 429 and a timeout"
        issue = issues[0]
        assert f"argus-wf-{inp.incident_id}" in issue["fields"]["labels"]
        assert issue["fields"]["priority"]["name"] == "Highest"
        assert issue["fields"]["status"]["statusCategory"]["key"] == "done", "resolved on close"
        comments = jira.comments.get(issue["key"], [])
        assert any("ARGUS analysis" in c["body"] for c in comments), "the Enricher wrote the RCA"
        assert final.tickets[0].key == issue["key"]

        opened = [m for m in smtp.messages if "opened" in m[2]["X-Argus-Kind"]]
        assert [m[1] for m in opened] == [["carol@example.com"]], "the opened page reached carol once"
        kinds = [m[2]["X-Argus-Kind"] for m in smtp.messages]
        assert kinds.count("approval_request") == 2, "carol and alice, one each"
        assert len({m[2]["Message-ID"] for m in smtp.messages}) == len(smtp.messages)
        assert any(
            e.kind == "notify_failed" and "email" in e.message and "451" in e.message for e in final.timeline
        )

        alert = next(iter(pd.alerts.values()))
        assert alert["events"][0]["event_action"] == "trigger"
        assert alert["status"] == "resolved" and pd.incidents == 1
        assert teams.webhook_posts and all(
            p["attachments"][0]["content"]["type"] == "AdaptiveCard" for p in teams.webhook_posts
        )
        assert {m["To"] for m in twilio.messages} >= {"+4915100000001"}

        for name, value in secrets.items():
            assert value not in text, f"secret {name} is in the workflow history"
        assert "SECRETSIG" not in text, "the Teams webhook signature (part of its URL) is a secret too"
    finally:
        for fake in (jira, pd, teams, twilio):
            fake.stop()
        smtp.stop()


async def test_servicenow_ticket_once_under_retries_and_resolve_codes(ts_env, tmp_path):
    snow = start_servicenow_fake(username="argus", password=SECRETS["servicenow_password"])
    try:
        snow.fail("POST", r"/api/now/table/incident", status=503, times=2)
        cfg = vendor_config(tmp_path, servicenow=snow)
        tq = f"tq-{uuid.uuid4().hex[:6]}"
        worker, _ = kit.make_worker(
            ts_env.client, tmp_path, kit.World(signature="cpu"), tq, config=cfg, secrets=SECRETS
        )
        async with worker:
            inp = kit.incident_input(kit.policy())
            handle = await ts_env.client.start_workflow(
                IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
            )
            final = await close_by_hand(ts_env, handle)
            text = await history_text(handle)
        records = list(snow.tables["incident"].values())
        assert len(records) == 1
        rec = records[0]
        assert rec["correlation_id"].startswith(f"argus:{inp.incident_id}/")
        assert rec["cmdb_ci"] == "ci-1"
        assert rec["state"] == "6" and rec["close_code"] and rec["close_notes"]
        notes = snow.journal.get(rec["sys_id"], [])
        assert any("ARGUS analysis" in json.dumps(n) for n in notes)
        assert final.tickets[0].state == "resolved"
        assert SECRETS["servicenow_password"] not in text
    finally:
        snow.stop()
