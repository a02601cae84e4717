"""Escalation and notifications in IncidentWorkflow on the time-skipping server: levels with their
own wait and repeat, time-of-day rules, on-call targets resolved when the page goes out, an
acknowledgement that stops escalation and re-notification after it, a channel that is down
(the incident goes on, its retries are in the timeline), per-channel rate limits, and ticket
state arriving as a signal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from argus.models import (
    Acknowledge,
    ApprovalDecision,
    ArgusConfig,
    DecisionKind,
    IncidentStatus,
    ResolveSignal,
    TicketStateSignal,
)
from argus.workflows.incident import IncidentWorkflow
from tests.fakes.slack import start_slack_fake

from . import kit
from .kit import World, incident_input, make_worker, policy


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


async def until(pred, what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def config(tmp, **extra) -> ArgusConfig:
    base = kit.test_config(tmp).model_dump(mode="json", by_alias=True)
    base["sandbox"] = {"enabled": True, "url": "http://127.0.0.1:9"}  # the Executor is scripted
    base.update(extra)
    return ArgusConfig.model_validate(base)


def outbox(rt) -> list[dict]:
    return rt.channels["outbox"].records()


def kinds(state) -> list[str]:
    return [e.kind for e in state.timeline]


async def test_levels_wait_repeat_time_of_day_and_ack(ts_env, tmp_path):
    """Level 0 (wait 10m, repeat 1) → level 1 only at night, skipped by day → level 2; then an
    acknowledgement stops escalation and the incident is re-notified every 2 hours."""
    pol = policy(
        escalation={
            "reminder_interval": "30m",
            "reminders_per_level": 2,
            "renotify_acknowledged_after": "2h",
            "levels": [
                {"name": "on-call", "targets": ["carol"], "wait": "10m", "repeat": 1},
                {
                    "name": "night desk",
                    "targets": ["nina"],
                    # never active: the test's clock never sits in a zero-length window
                    "active": [{"times": [{"start_time": "00:00", "end_time": "00:00"}]}],
                },
                {"name": "lead", "targets": ["dave"], "wait": "20m"},
            ],
        },
    )
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, world, tq, config=config(tmp_path))
    async with worker:
        inp = incident_input(pol)
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_for(handle, lambda s: s.status == IncidentStatus.AWAITING_APPROVAL, "awaiting approval")
        await wait_for(handle, lambda s: "notified" in kinds(s)[-1:] or len(outbox(rt)) >= 2, "request sent")

        await ts_env.sleep(timedelta(minutes=25))  # 10m: reminder at on-call; 20m: escalate (skip night)
        s = await wait_for(handle, lambda s: s.escalation_level == 2, "escalated to the lead")
        esc = [e for e in s.timeline if e.kind == "escalated"]
        assert len(esc) == 1 and "lead" in esc[0].message and "night desk" not in esc[0].message
        subjects = [(r["kind"], r["subject"], r["recipients"]) for r in outbox(rt)]
        assert [k for k, _, _ in subjects].count("approval_request") == 1
        escalated = [x for x in subjects if "escalated to lead" in x[1]]
        assert escalated and "dave" in escalated[0][2] and "nina" not in escalated[0][2]
        assert not any("nina" in r for _, _, r in subjects), "the inactive level is never paged"

        # The lead acknowledges: no more escalation or reminders until the re-notify time.
        await handle.signal(IncidentWorkflow.acknowledge, Acknowledge(by="dave", comment="on it"))
        before = len(outbox(rt))
        await until(lambda: [r["kind"] for r in outbox(rt)[before:]] == ["acknowledged"], "ack notified")
        await ts_env.sleep(timedelta(minutes=100))
        await asyncio.sleep(0.5)
        s = await handle.query(IncidentWorkflow.status)
        sent = outbox(rt)[before:]
        assert [r["kind"] for r in sent] == ["acknowledged"], "acknowledgement stops escalation"
        assert s.escalation_level == 2
        await ts_env.sleep(timedelta(minutes=25))  # past 2h after the ack: re-notified once
        await until(lambda: [r["kind"] for r in outbox(rt)[before:]].count("reminder") == 1, "re-notified")

        # The lead reached by escalation may decide; they reject, and the incident waits for people.
        s = await handle.query(IncidentWorkflow.status)
        result = await handle.execute_update(
            IncidentWorkflow.decide,
            ApprovalDecision(
                approver="dave",
                decision=DecisionKind.REJECT,
                proposal_hash=s.proposal.hash,
                via="test",
                origin="test-host",
                comment="not now",
            ),
        )
        assert result == "rejected by dave"
        s = await wait_for(handle, lambda s: s.decision is not None, "decided")
        assert s.decision.origin == "test-host"
        await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="dave", reason="fixed by hand"))
        final = await handle.result()
    assert final.outcome.value == "rejected"
    assert any("from test-host: not now" in e.message for e in final.timeline if e.kind == "decision")


async def test_oncall_target_resolved_when_paged_and_may_decide(ts_env, tmp_path):
    now = datetime.now(UTC)
    cfg = config(
        tmp_path,
        people={"olga": {"email": "olga@example.com"}, "pete": {"email": "pete@example.com"}},
        oncall=[
            {
                "name": "primary",
                "layers": [
                    {
                        "name": "weekly",
                        "users": ["olga"],
                        "start": (now - timedelta(days=400)).isoformat(),
                        "turn": "1000d",
                    }
                ],
            }
        ],
    )
    pol = policy(
        approval={"approvers": ["alice"], "approver_groups": [], "timeout": "7d"},
        escalation={"levels": [{"name": "on-call", "targets": ["oncall:primary"]}]},
    )
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, world, tq, config=cfg)
    async with worker:
        inp = incident_input(pol)
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        s = await wait_for(
            handle,
            lambda s: any(e.kind == "notified" and "Approval request" in e.message for e in s.timeline),
            "approval request sent",
        )
        request = next(r for r in outbox(rt) if r["kind"] == "approval_request")
        assert request["recipients"] == ["olga", "alice"], "oncall:primary resolved to olga at send time"
        assert any(e.kind == "recipients" and "on call" in e.message for e in s.timeline)
        # Someone never paged and not an approver is refused, and nothing changes.
        try:
            await handle.execute_update(
                IncidentWorkflow.decide,
                ApprovalDecision(
                    approver="pete", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash
                ),
            )
            raise AssertionError("pete may not approve")
        except WorkflowUpdateFailedError as exc:
            assert "pete may not approve" in str(exc.cause)
        s = await handle.query(IncidentWorkflow.status)
        assert s.decision is None
        result = await handle.execute_update(
            IncidentWorkflow.decide,
            ApprovalDecision(approver="olga", decision=DecisionKind.REJECT, proposal_hash=s.proposal.hash),
        )
        assert result == "rejected by olga"
        await handle.signal(
            IncidentWorkflow.ticket_state,
            TicketStateSignal(system="local", key="LOCAL-1", state="Resolved", by="olga"),
        )
        final = await handle.result()
    assert any(e.kind == "ticket_sync" for e in final.timeline)
    assert final.status == IncidentStatus.CLOSED


async def test_an_incident_pages_the_levels_of_its_route_s_receiver(ts_env, tmp_path):
    """The route's receiver travels with the incident: a `dba` incident pages dba's levels, and
    escalates within them; an incident of a receiver not listed pages the default levels."""
    pol = policy(
        routing={"route": {"receiver": "oncall", "routes": [{"matchers": ['team="db"'], "receiver": "dba"}]}},
        escalation={
            "reminder_interval": "30m",
            "reminders_per_level": 0,
            "levels": [{"name": "on-call", "targets": ["carol"]}],
            "receivers": {
                "oncall": [{"name": "on-call", "targets": ["carol"]}],
                "dba": [
                    {"name": "dba on-call", "targets": ["dora"], "wait": "10m"},
                    {"name": "dba lead", "targets": ["dirk"]},
                ],
            },
        },
    )
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, world, tq, config=config(tmp_path))
    async with worker:
        inp = incident_input(pol).model_copy(update={"receiver": "dba"})
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_for(
            handle,
            lambda s: any(e.kind == "notified" and "Approval request" in e.message for e in s.timeline),
            "approval request sent",
        )
        request = next(r for r in outbox(rt) if r["kind"] == "approval_request")
        assert request["recipients"] == ["dora", "alice"], "dba's first level, not the default one"
        await ts_env.sleep(timedelta(minutes=11))
        s = await wait_for(handle, lambda s: "escalated" in kinds(s), "escalated within dba's levels")
        assert any("escalated to dba lead (dirk)" in e.message for e in s.timeline)
        await handle.terminate()


async def test_channel_down_incident_goes_on_retries_in_timeline(ts_env, tmp_path):
    """Slack answers 503 every time: the outbox still gets every page and escalation goes on;
    Slack's failure and each retry are in the timeline, then it gives up; nothing is duplicated."""
    slack = start_slack_fake()
    try:
        slack.fail("POST", r"/services/.*", status=503, times=None)
        cfg = config(
            tmp_path,
            notify={
                "channels": ["outbox", "slack"],
                "echo": False,
                "slack": {"webhook_url_secret": "slack_webhook_url"},
                "rate_limits": {"slack": {"per_minute": 6000, "burst": 100}},
            },
        )
        world = World(signature="cpu")
        tq = f"tq-{uuid.uuid4().hex[:6]}"
        worker, rt = make_worker(
            ts_env.client, tmp_path, world, tq, config=cfg, secrets={"slack_webhook_url": slack.webhook_url}
        )
        async with worker:
            inp = incident_input(policy())
            handle = await ts_env.client.start_workflow(
                IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
            )
            await wait_for(handle, lambda s: s.status == IncidentStatus.AWAITING_APPROVAL, "incident goes on")
            for _ in range(5):  # in steps: one long skip would outlast the RPC deadline
                await ts_env.sleep(timedelta(minutes=20))
            s = await wait_for(handle, lambda s: s.escalation_level == 1, "escalation on the other channel")
            log = [e for e in s.timeline if e.kind in ("notify_failed", "notify_retry", "notify_queued")]
            slack_log = [e.message for e in log if "slack" in e.message]
            assert any("attempt 1 of 8" in m and "HTTP 503" in m for m in slack_log)
            assert any("attempt 2 of 8" in m for m in slack_log)
            assert any("gave up after 8 attempt(s)" in m for m in slack_log)
            assert any("queued behind" in e.message for e in log), "later messages wait their turn"
            out = outbox(rt)
            assert [r["kind"] for r in out].count("opened") == 1
            assert any("escalated to lead" in r["subject"] for r in out)
            assert len({r["key"] for r in out}) == len(out), "one outbox message per step"

            # Slack comes back: the queued messages go out in order, once each.
            slack.clear_faults()
            for _ in range(3):
                await ts_env.sleep(timedelta(minutes=20))
            s = await wait_for(
                handle,
                lambda s: any(e.kind == "notify_retry" and "delivered" in e.message for e in s.timeline),
                "slack delivered after recovery",
            )
            texts = [m["text"] for m in slack.webhook_messages]
            assert len(texts) == len(set(texts)), "no Slack message twice"
            await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="t"))
            await handle.result()
    finally:
        slack.stop()


async def test_rate_limited_channel_sends_later(ts_env, tmp_path):
    cfg = config(
        tmp_path,
        notify={
            "channels": ["outbox"],
            "echo": False,
            "rate_limits": {"outbox": {"per_minute": 120, "burst": 1}},
        },
    )
    world = World(signature="cpu")
    tq = f"tq-{uuid.uuid4().hex[:6]}"
    worker, rt = make_worker(ts_env.client, tmp_path, world, tq, config=cfg)
    async with worker:
        inp = incident_input(policy())
        handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=tq
        )
        await wait_for(
            handle,
            lambda s: any("rate limited" in e.message for e in s.timeline),
            "the approval request hits the limit",
        )
        # The limiter works in real time (per worker process): a token is back within 0.5 s.
        await wait_for(
            handle,
            lambda s: any(e.kind == "notify_retry" and "delivered" in e.message for e in s.timeline),
            "delivered later",
        )
        assert [r["kind"] for r in outbox(rt)][:2] == ["opened", "approval_request"]
        await handle.signal(IncidentWorkflow.resolve, ResolveSignal(by="t"))
        await handle.result()
