"""DocGenWorkflow on the time-skipping server: post-mortems from a real incident's workflow
history, the review gate, publishing to Confluence and ServiceNow wire fakes (republishing
updates in place), a publisher that is down, and a template that fails to render."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from argus.integrations.git_docs import split_front_matter
from argus.models import (
    Acknowledge,
    ApprovalDecision,
    CommentSignal,
    DecisionKind,
    IncidentState,
    IncidentStatus,
)
from argus.models.agents import DocGenInput, DocGenResult
from argus.models.config import ConfluenceDocsConfig, ServiceNowKbConfig
from argus.workers.binaries import find_binary
from argus.workflows import search_attributes as sa
from argus.workflows.docgen import DocGenWorkflow
from argus.workflows.incident import IncidentWorkflow
from tests.fakes.confluence import FakeConfluence
from tests.fakes.servicenow import FakeServiceNow
from tests.integrations.dev_temporal import dev_temporal  # noqa: F401

from .kit import World, incident_input, make_worker, policy, wait_status
from .kit import test_config as kit_config

KB = "c" * 32
DOCGEN_ON = {"monitoring": True, "incident": True, "docgen": True}


def tq() -> str:
    return f"tq-{uuid.uuid4().hex[:6]}"


@pytest_asyncio.fixture
async def own_env():
    """A time-skipping server per test: incidents leave entity workflows (remediation lock and
    budget) with timers on the test's task queue, which would hold a shared server's clock, and
    every test here moves the clock by days."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in sa.ALL},
        )
    )
    yield env
    await env.shutdown()


async def run_incident(env, queue: str, pol) -> tuple[IncidentState, str, WorkflowHandle]:
    """A real incident to closure: acknowledged, commented, approved by a person, fixed, verified."""
    inp = incident_input(pol)
    handle = await env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=queue)
    s = await wait_status(handle, IncidentStatus.AWAITING_APPROVAL)
    await handle.signal(IncidentWorkflow.acknowledge, Acknowledge(by="carol", via="test"))
    await handle.signal(IncidentWorkflow.comment, CommentSignal(by="carol", text="looking at payments cpu"))
    await env.sleep(timedelta(hours=1))
    await handle.execute_update(
        IncidentWorkflow.decide,
        ApprovalDecision(
            approver="alice", decision=DecisionKind.APPROVE, proposal_hash=s.proposal.hash, via="test"
        ),
    )
    final = await handle.result()
    desc = await handle.describe()
    return final, desc.run_id or "", handle


def docgen_id(state: IncidentState, run_id: str) -> str:
    return f"docgen-{state.incident_id}-{run_id[:8]}"


async def test_postmortem_is_built_from_the_real_workflow_history(own_env, tmp_path):
    ts_env = own_env
    world = World(signature="cpu", healthy_after=2)
    queue = tq()
    worker, rt = make_worker(ts_env.client, tmp_path, world, queue)
    async with worker:
        final, run_id, handle = await run_incident(ts_env, queue, policy(phases=DOCGEN_ON))
        assert final.status == IncidentStatus.CLOSED and final.outcome.value == "fixed"
        result = await ts_env.client.get_workflow_handle(
            docgen_id(final, run_id), result_type=DocGenResult
        ).result()
        history = await handle.fetch_history()
    assert result.published and not result.failed
    ((_, front, body),) = rt.docs.documents("postmortem")
    assert front["incident"] == final.number and front["outcome"] == "fixed" and front["kind"] == "postmortem"
    assert f"Temporal workflow history of {final.incident_id}" in body
    # Every kind of event the issue names, taken from the history rather than the workflow's own log:
    assert "Approved by alice via test" in body  # the approval (update)
    assert "Acknowledged via test" in body and "looking at payments cpu" in body  # signals
    assert "Ran step restart: done" in body  # the action and its outcome
    assert "Recovery check: not yet recovered" in body and "Recovery check: healthy" in body  # verification
    assert "Root cause ranked: payments 80%" in body and "Proposed restart-service" in body
    assert "started firing on checkout" in body  # the alert
    # The approval's time in the document is the server's event time of the update.
    accepted = [
        e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    at = accepted[0].event_time.ToDatetime().replace(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"`{at}` **decision** (alice)" in body
    assert "## What went well" in body and "restart-service` fixed the symptom" in body
    notes = [r for r in rt.channels["outbox"].records() if r["kind"] == "document"]
    assert any(r["subject"].startswith("New postmortem for checkout") for r in notes)
    assert rt.docs.log()[0].split(" ", 1)[1].startswith("Add postmortem: Post-mortem " + final.number)


async def test_template_that_fails_names_template_and_line_and_incident_is_unaffected(own_env, tmp_path):
    ts_env = own_env
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "postmortem.md.j2").write_text(
        "# {{ incident.title }}\n\nok\n{{ incident.no_such_field }}\n"
    )
    cfg = kit_config(tmp_path / "state")
    cfg.docs.templates_dir = str(overrides)
    queue = tq()
    worker, rt = make_worker(ts_env.client, tmp_path, World(signature="cpu"), queue, config=cfg)
    async with worker:
        final, run_id, _ = await run_incident(ts_env, queue, policy(phases=DOCGEN_ON))
        with pytest.raises(WorkflowFailureError) as caught:
            await ts_env.client.get_workflow_handle(docgen_id(final, run_id)).result()
    assert final.status == IncidentStatus.CLOSED and final.outcome.value == "fixed"
    assert rt.archive.get(final.number).status.value == "closed"
    message = str(caught.value.cause)
    assert "postmortem.md.j2 line 4" in message and "no_such_field" in message, message
    assert str(overrides) in message
    assert rt.docs.documents("postmortem") == []


def closed_incident(number: str = "INC-900") -> IncidentState:
    opened = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    return IncidentState(
        incident_id=f"incident-test-{number}",
        number=number,
        title="HighErrorRate on checkout",
        service="checkout",
        severity="critical",
        group_key="k",
        opened_at=opened,
        closed_at=opened + timedelta(minutes=20),
        status=IncidentStatus.CLOSED,
    )


async def test_review_gate_refuses_and_publishes_on_approval(dev_temporal, tmp_path):  # noqa: F811
    # On a real dev server: the Java time-skipping server (1.40) twice left a review update
    # undelivered and the test waited forever. Reminders while waiting are the next test's part.
    queue = tq()
    worker, rt = make_worker(dev_temporal.client, tmp_path, World(), queue)
    async with worker:
        inp = DocGenInput(incident=closed_incident(), review=True, reviewers=["alice"], history=False)
        handle = await dev_temporal.client.start_workflow(
            DocGenWorkflow.run, inp, id=f"docgen-review-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        req = {}
        for _ in range(200):
            req = await handle.query(DocGenWorkflow.review_request)
            if req["hash"]:
                break
            await asyncio.sleep(0.05)
        assert req["reviewers"] == ["alice"]

        def asked() -> bool:
            records = rt.channels["outbox"].records()
            return any(
                r["kind"] == "document" and r["subject"].startswith("Review requested") for r in records
            )

        for _ in range(200):  # the reviewers are asked
            if asked():
                break
            await asyncio.sleep(0.05)
        assert asked()
        assert rt.docs.documents("postmortem") == []  # nothing published while waiting

        def decision(**kw) -> ApprovalDecision:
            base = {"approver": "alice", "decision": DecisionKind.APPROVE, "proposal_hash": req["hash"]}
            return ApprovalDecision(**{**base, **kw})

        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(DocGenWorkflow.submit_review, decision(approver="mallory"))
        assert "not a reviewer" in str(caught.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(DocGenWorkflow.submit_review, decision(proposal_hash="0" * 16))
        assert "stale review" in str(caught.value.cause)
        assert await handle.execute_update(DocGenWorkflow.submit_review, decision()) == "approved by alice"
        result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.review == "approved" and result.published
    assert len(rt.docs.documents("postmortem")) == 1


async def test_review_gate_expires_without_publishing(own_env, tmp_path):
    ts_env = own_env
    queue = tq()
    worker, rt = make_worker(ts_env.client, tmp_path, World(), queue)
    async with worker:
        inp = DocGenInput(incident=closed_incident("INC-901"), review=True, history=False)
        result = await ts_env.client.execute_workflow(
            DocGenWorkflow.run, inp, id=f"docgen-expire-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
    assert result.review == "expired" and not result.published
    assert rt.docs.documents("postmortem") == []
    subjects = [r["subject"] for r in rt.channels["outbox"].records() if r["kind"] == "document"]
    assert sum(s.startswith("Reminder: Review requested") for s in subjects) == 13  # daily for 14 days


def vendor_config(tmp: Path, conf: FakeConfluence, sn: FakeServiceNow):
    cfg = kit_config(tmp)
    cfg.docs.confluence = ConfluenceDocsConfig(url=conf.url, space="OPS")
    cfg.docs.servicenow = ServiceNowKbConfig(url=sn.url, knowledge_base=KB)
    secrets = {
        "confluence_email": "argus@example.com",
        "confluence_api_token": "conf-token",
        "servicenow_username": "argus",
        "servicenow_password": "secret",
    }
    return cfg, secrets


async def test_publishes_to_confluence_and_servicenow_and_republishing_updates_in_place(own_env, tmp_path):
    ts_env = own_env
    with FakeConfluence() as conf, FakeServiceNow() as sn:
        cfg, secrets = vendor_config(tmp_path, conf, sn)
        queue = tq()
        worker, rt = make_worker(ts_env.client, tmp_path, World(), queue, config=cfg, secrets=secrets)
        async with worker:
            inc = closed_incident("INC-902")
            first = await ts_env.client.execute_workflow(
                DocGenWorkflow.run, DocGenInput(incident=inc, history=False),
                id=f"docgen-a-{uuid.uuid4().hex[:6]}", task_queue=queue,
            )  # fmt: skip
            changed = inc.model_copy(update={"title": inc.title, "escalation_level": 1})
            second = await ts_env.client.execute_workflow(
                DocGenWorkflow.run, DocGenInput(incident=changed, history=False),
                id=f"docgen-b-{uuid.uuid4().hex[:6]}", task_queue=queue,
            )  # fmt: skip
        publishers = sorted(p.split(":", 1)[0] for p in first.published)
        assert publishers == ["confluence", "git", "servicenow-kb"], first.published
        assert len(second.published) == 3 and not second.failed
        (page,) = conf.pages.values()
        assert page["title"] == "Post-mortem INC-902: HighErrorRate on checkout"
        assert page["version"]["number"] == 2 and "escalated 1 level" in page["storage"]
        assert "<h2>Root cause</h2>" in page["storage"]
        (article,) = sn.tables["kb_knowledge"].values()
        assert article["kb_knowledge_base"] == KB and "[argus:postmortem/" in article["short_description"]
        assert "escalated 1 level" in article["text"]
        assert len(rt.docs.documents("postmortem")) == 1


async def test_publisher_down_is_retried_reported_kept_and_published_later(own_env, tmp_path):
    ts_env = own_env
    with FakeConfluence() as conf, FakeServiceNow() as sn:
        cfg, secrets = vendor_config(tmp_path, conf, sn)
        conf.fail("POST", r"/wiki/api/v2/pages", status=503, times=None)
        queue = tq()
        worker, rt = make_worker(ts_env.client, tmp_path, World(), queue, config=cfg, secrets=secrets)
        async with worker:
            handle = await ts_env.client.start_workflow(
                DocGenWorkflow.run, DocGenInput(incident=closed_incident("INC-903"), history=False),
                id=f"docgen-down-{uuid.uuid4().hex[:6]}", task_queue=queue,
            )  # fmt: skip
            progress = DocGenResult()
            await ts_env.sleep(timedelta(minutes=10))  # past the activity's retry backoffs, not a round
            for _ in range(600):
                progress = await handle.query(DocGenWorkflow.progress)
                if progress.failed:
                    break
                await asyncio.sleep(0.05)
            assert progress.failed and "confluence" in progress.failed[0] and "503" in progress.failed[0]
            attempts = len(conf.requests_to("POST", r"/wiki/api/v2/pages"))
            assert attempts == 8  # the activity's retry policy, then reported
            pending = list((rt.state / "docs-pending").glob("*.json"))
            assert [p.name for p in pending] == ["postmortem-inc-903-higherrorrate-on-checkout.json"]
            assert len(rt.docs.documents("postmortem")) == 1  # git and ServiceNow already have it
            assert len(sn.tables["kb_knowledge"]) == 1
            subjects = [r["subject"] for r in rt.channels["outbox"].records() if r["kind"] == "document"]
            assert any(s.startswith("Publishing failed, will retry") for s in subjects)
            conf.clear_faults()
            result = await handle.result()
        assert any(p.startswith("confluence:") for p in result.published)
        assert len(conf.pages) == 1 and len(sn.tables["kb_knowledge"]) == 1  # retries made no duplicate
        assert not list((rt.state / "docs-pending").glob("*.json"))


async def test_scheduled_run_publishes_documents_kept_from_earlier(own_env, tmp_path):
    ts_env = own_env
    from argus.integrations.pending_docs import PendingDocuments
    from argus.models import DocKind, Document

    queue = tq()
    worker, rt = make_worker(ts_env.client, tmp_path, World(), queue)
    kept = Document(kind=DocKind.RUNBOOK, slug="kept-runbook", title="Runbook: kept", content="# kept\n")
    PendingDocuments(rt.state / "docs-pending").keep(kept, {"confluence": "HTTP 503"})
    async with worker:
        result = await ts_env.client.execute_workflow(
            DocGenWorkflow.run, DocGenInput(), id=f"docgen-sched-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
    assert "kept-runbook" in result.documents and "git:runbooks/kept-runbook.md" in result.published
    assert not list((rt.state / "docs-pending").glob("*.json"))
    _, front, _ = next(d for d in rt.docs.documents("runbook"))
    assert front["title"] == "Runbook: kept"
    assert split_front_matter((rt.docs.path / "runbooks/kept-runbook.md").read_text())[0]["kind"] == "runbook"
