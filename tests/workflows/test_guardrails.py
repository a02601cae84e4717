"""Remediation guardrails on the time-skipping server: the per-service lock that holds across
incidents, the rate limit, change freezes, the fleet blast-radius budget, dry-run, compensation on
cancellation, refusals with their reason in the timeline, and regression after recovery."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker

from argus.activities.executor import Executor
from argus.activities.remediation_guard import lock_id
from argus.integrations.action_journal import ActionJournal
from argus.models import ActionResult, ArgusConfig, IncidentStatus, StepRequest, StepStatus
from argus.models.agents import VerifyRequest, VerifyResult
from argus.models.config import RemediationConfig
from argus.models.remediation import LockState
from argus.workers.settings import Secrets
from argus.workers.wiring import WORKFLOWS, activity_methods, build_activities, build_runtime
from argus.workflows.incident import IncidentWorkflow

from .kit import REPO, World, alert, incident_input, policy

AUTO = {"auto_approve_max_risk": "high", "approvers": ["alice"]}


class GatedWorld(World):
    """The kit's scripted world, with steps that can be held open and a recovery script."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.gate: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.health: list[bool] = []  # verification answers in order; then healthy

    @activity.defn(name="execute_step")
    async def execute_step(self, req: StepRequest) -> ActionResult:
        self.executed.append((req.step.name, req.rollback, req.key))
        self.started.setdefault(req.step.name, asyncio.Event()).set()
        if not req.rollback and req.step.name in self.gate:
            while not self.gate[req.step.name].is_set():
                activity.heartbeat()
                await asyncio.sleep(0.05)
        if not req.rollback and req.step.name in self.fail_steps:
            raise ApplicationError(f"step {req.step.name} failed", type="StepFailed", non_retryable=True)
        status = (
            StepStatus.DRY_RUN if req.dry_run else StepStatus.ROLLED_BACK if req.rollback else StepStatus.DONE
        )
        return ActionResult(
            step=req.step.name, action="x", status=status, output="ok", key=req.key, prior={"n": 1}
        )

    @activity.defn(name="verify_recovery")
    async def verify(self, req: VerifyRequest) -> VerifyResult:
        self.verify_calls += 1
        ok = self.health.pop(0) if self.health else True
        return VerifyResult(healthy=ok, detail="normal" if ok else "HighErrorRate: still breaching")


def config(tmp: Path, playbooks: Path | None = None, remediation: dict | None = None) -> ArgusConfig:
    return ArgusConfig.model_validate(
        {
            "state_dir": str(tmp),
            "remediation": {"playbooks_dir": str(playbooks or REPO / "playbooks"), **(remediation or {})},
            "sandbox": {"url": "http://127.0.0.1:9"},
            "notify": {"echo": False},
        }
    )


def worker(client, tmp: Path, world: World, tq: str, cfg: ArgusConfig | None = None, executor=None):  # type: ignore[no-untyped-def]
    cfg = cfg or config(tmp)
    rt = build_runtime(cfg, Secrets({"link_secret": "x" * 32}))
    scripted = {"analyze_root_cause", "verify_recovery"} | ({"execute_step"} if executor is None else set())
    real = [
        a
        for a in build_activities(rt)
        if a.__temporal_activity_definition.name not in scripted | {"execute_step"}
    ]
    extra = [executor.execute_step] if executor is not None else []
    mine = [m for m in activity_methods([world]) if m.__temporal_activity_definition.name in scripted]
    return Worker(client, task_queue=tq, workflows=WORKFLOWS, activities=real + mine + extra), rt


def tq() -> str:
    return f"tq-{uuid.uuid4().hex[:6]}"


async def timeline_has(handle, kind: str, tries: int = 400):  # type: ignore[no-untyped-def]
    for _ in range(tries):
        try:
            s = await handle.query(IncidentWorkflow.status)
            hits = [e for e in s.timeline if e.kind == kind]
            if hits:
                return s, hits
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timeline never got a {kind!r} entry")


def kinds(state) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.kind for e in state.timeline]


async def test_lock_serialises_remediation_of_one_service_across_incidents(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    world.gate["restart"] = asyncio.Event()
    q = tq()
    w, _ = worker(ts_env.client, tmp_path, world, q)
    async with w:
        a = incident_input(policy(approval=AUTO), [alert(service="payments")], key="lock-a")
        b = incident_input(policy(approval=AUTO), [alert("HighLatency", service="payments")], key="lock-b")
        ha = await ts_env.client.start_workflow(IncidentWorkflow.run, a, id=a.incident_id, task_queue=q)
        for _ in range(400):
            if "restart" in world.started:
                break
            await asyncio.sleep(0.05)
        hb = await ts_env.client.start_workflow(IncidentWorkflow.run, b, id=b.incident_id, task_queue=q)
        sb, waiting = await timeline_has(hb, "remediation_waiting")
        assert "being remediated by " + a.incident_id in waiting[0].message
        assert sb.status == IncidentStatus.REMEDIATING
        assert [e for e in world.executed if not e[1]] == [("restart", False, world.executed[0][2])]
        lock = await ts_env.client.get_workflow_handle(lock_id(q, "payments")).query(
            "state", result_type=LockState
        )
        assert lock.holder == a.incident_id and [r.holder for r in lock.queue] == [b.incident_id]

        world.gate["restart"].set()
        fa, fb = await ha.result(), await hb.result()
    forward = [e for e in world.executed if not e[1]]
    assert len(forward) == 2 and a.incident_id in forward[0][2] and b.incident_id in forward[1][2]
    assert fa.outcome.value == "fixed" and fb.outcome.value == "fixed"
    granted = [e for e in fb.timeline if e.kind == "remediation_lock"]
    waited = [e for e in fb.timeline if e.kind == "remediation_waiting"]
    assert granted and waited and granted[0].at >= waited[0].at


async def test_rate_limit_stops_automation_and_escalates(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    q = tq()
    w, rt = worker(ts_env.client, tmp_path, world, q)
    # The second incident comes once the first has acted, while it still verifies. (Asked after the
    # first closed, the time-skipping server may jump over the idle gap to the lock workflow's
    # default 10-year run timeout and end it; a real server has no such timeout.)
    pol = policy(approval=AUTO, remediation={"rate_limit": 1, "rate_window": "100y"})
    async with w:
        first = incident_input(pol, [alert(service="payments")], key="rate-1")
        first_handle = await ts_env.client.start_workflow(
            IncidentWorkflow.run, first, id=first.incident_id, task_queue=q
        )
        await asyncio.wait_for(world.started.setdefault("restart", asyncio.Event()).wait(), 30)
        second = incident_input(pol, [alert(service="payments")], key="rate-2")
        final = await (
            await ts_env.client.start_workflow(
                IncidentWorkflow.run, second, id=second.incident_id, task_queue=q
            )
        ).result()
        done = await first_handle.result()
    assert done.outcome.value == "fixed"
    refused = [e.message for e in final.timeline if e.kind == "guardrail"]
    assert refused, [(e.at.isoformat(), e.kind, e.message) for e in final.timeline] + [
        (e.at.isoformat(), e.kind, e.message) for e in done.timeline
    ]
    assert "remediated automatically 1 time(s)" in refused[0] and "limit 1 per" in refused[0]
    assert len([e for e in world.executed if not e[1]]) == 1, "the second incident changed nothing"
    assert final.outcome.value == "fixed_by_other"
    escalations = [r for r in rt.channels["outbox"].records() if "refused" in r["subject"]]
    assert escalations and "automatic remediation refused" in escalations[0]["subject"]
    assert "limit 1 per" in escalations[0]["body"]


@pytest.mark.parametrize(
    ("max_risk", "allowed"), [(None, False), ("low", True)], ids=["freeze-all", "freeze-allows-low-risk"]
)
async def test_change_freeze(ts_env, tmp_path, max_risk, allowed):
    world = GatedWorld(signature="cpu")
    q = tq()
    w, _ = worker(ts_env.client, tmp_path, world, q)
    freeze = {"name": "year-end", "starts_at": "2000-01-01T00:00:00Z", "ends_at": "2100-01-01T00:00:00Z",
              "services": ["payments"], "max_risk": max_risk}  # fmt: skip
    async with w:
        inp = incident_input(
            policy(approval=AUTO, remediation={"freeze": [freeze]}), [alert(service="payments")]
        )
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        ).result()
    ran = [e for e in world.executed if not e[1]]
    if allowed:
        assert ran and final.outcome.value == "fixed" and "guardrail" not in kinds(final)
    else:
        assert ran == []
        msg = next(e.message for e in final.timeline if e.kind == "guardrail")
        assert "change freeze 'year-end' until 2100-01-01" in msg and "restart-service is low risk" in msg


async def test_fleet_blast_radius_budget(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    q = tq()
    w, _ = worker(ts_env.client, tmp_path, world, q)
    pol = policy(
        approval=AUTO, remediation={"blast_radius": {"fleet_max_services": 1, "fleet_window": "100y"}}
    )
    # The second incident asks once the first one has acted, while it still verifies. (Asked
    # after the first incident closed, the time-skipping server may jump over the idle gap to its
    # default 10-year run timeout and end the budget workflow; a real server has no such timeout.)
    async with w:
        one = incident_input(pol, [alert(service="payments")], key="fleet-1")
        first = await ts_env.client.start_workflow(
            IncidentWorkflow.run, one, id=one.incident_id, task_queue=q
        )
        await asyncio.wait_for(world.started.setdefault("restart", asyncio.Event()).wait(), 30)
        world.root_cause = "checkout"
        two = incident_input(pol, [alert(service="checkout")], key="fleet-2")
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, two, id=two.incident_id, task_queue=q)
        ).result()
        assert (await first.result()).outcome.value == "fixed"
    msg = next(e.message for e in final.timeline if e.kind == "guardrail")
    assert "blast radius" in msg and "(payments)" in msg and "checkout" in msg and "fleet limit of 1" in msg
    assert [e[0] for e in world.executed] == ["restart"]


async def test_dry_run_changes_nothing_and_takes_no_lock(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    q = tq()
    w, _ = worker(ts_env.client, tmp_path, world, q)
    async with w:
        inp = incident_input(policy(approval=AUTO, dry_run=True), [alert(service="payments")])
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        ).result()
        with pytest.raises(Exception, match="not found"):
            await ts_env.client.get_workflow_handle(lock_id(q, "payments")).describe()
    assert [a.status for a in final.actions] == [StepStatus.DRY_RUN]
    assert "Dry run: nothing was changed" in [e.message for e in final.timeline]
    assert final.outcome.value == "fixed_by_other"


TWO_STEPS = """
name: drain-and-restart
risk: low
expected_effect: capacity first, then fresh processes
match: {signatures: [cpu]}
parameters: {service: {type: string, pattern: "^[a-z-]+$"}}
steps:
  - name: scale
    run: {type: sandbox, action: scale, args: {service: "{{ service }}", replicas: 4}}
    rollback: {type: sandbox, action: scale, args: {service: "{{ service }}"}}
  - name: restart
    run: {type: sandbox, action: restart, args: {service: "{{ service }}"}}
"""


async def test_cancellation_compensates_in_reverse_and_releases_the_lock(ts_env, tmp_path):
    pb = tmp_path / "pb"
    pb.mkdir()
    (pb / "two.yaml").write_text(TWO_STEPS)
    world = GatedWorld(signature="cpu")
    world.gate["restart"] = asyncio.Event()
    q = tq()
    w, _ = worker(ts_env.client, tmp_path / "s", world, q, config(tmp_path / "s", pb))
    async with w:
        inp = incident_input(policy(approval=AUTO), [alert(service="payments")])
        h = await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        for _ in range(400):
            if "restart" in world.started:
                break
            await asyncio.sleep(0.05)
        await h.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await h.result()
        assert isinstance(failed.value.cause, CancelledError)
        world.gate["restart"].set()  # let the abandoned attempt finish before the worker stops
        lock = await ts_env.client.get_workflow_handle(lock_id(q, "payments")).query(
            "state", result_type=LockState
        )
    rollbacks = [e for e in world.executed if e[1]]
    assert [e[0] for e in rollbacks] == ["scale"], (
        "the completed step is undone; the cancelled one has no rollback"
    )
    assert lock.holder is None and any("released by" in line for line in lock.log)


async def test_refused_steps_leave_their_reason_in_the_timeline(ts_env, tmp_path):
    pb = tmp_path / "pb"
    pb.mkdir()
    (pb / "purge.yaml").write_text(
        """
name: purge-cache
risk: low
match: {signatures: [cpu]}
parameters: {service: {type: string, pattern: "^[a-z-]+$"}}
steps:
  - name: purge
    run: {type: shell, action: redis-cli, args: {argv: ["-h", "{{ service }}", "FLUSHALL"]}}
"""
    )
    world = GatedWorld(signature="cpu")
    # Proposal time: the worker's allow-list lacks redis-cli, so it is never proposed.
    q = tq()
    w, _ = worker(ts_env.client, tmp_path / "a", world, q, config(tmp_path / "a", pb))
    async with w:
        inp = incident_input(policy(approval=AUTO), [alert(service="payments")])
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        ).result()
    note = next(e.message for e in final.timeline if e.kind == "recommendation_note")
    assert "purge-cache not proposed" in note and "'redis-cli' is not in the shell allow-list" in note
    assert final.proposal is None and world.executed == []

    # Run time: the allow-list changed after the proposal (the Recommender's worker allowed it; the
    # Executor's no longer does): the real Executor refuses, and the timeline says why.
    allow = {"shell_allow": {"redis-cli": ["-h", "^[a-z-]+$", "^(PING|INFO)$"]}}
    strict = Executor(
        RemediationConfig(shell_allow={"redis-cli": ["-h", "^[a-z-]+$", "^PING$"]}),
        None,
        ActionJournal(tmp_path / "j.db"),
    )
    q = tq()
    cfg = config(tmp_path / "b", pb, allow)
    (pb / "purge.yaml").write_text((pb / "purge.yaml").read_text().replace("FLUSHALL", "INFO"))
    w, _ = worker(ts_env.client, tmp_path / "b", world, q, cfg, executor=strict)
    async with w:
        inp = incident_input(policy(approval=AUTO), [alert(service="payments")])
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        ).result()
    refused = next(e.message for e in final.timeline if e.kind == "refused")
    assert "argument 3 'INFO' does not match '^PING$'" in refused
    assert final.outcome.value == "rolled_back" and final.actions == []


async def test_regression_during_watch_reopens_escalates_and_records_not_fixed(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    # period 1m at 10s checks: healthy x7 verifies; then two bad checks in the watch regress.
    world.health = [True] * 7 + [True, False, False]
    q = tq()
    w, rt = worker(ts_env.client, tmp_path, world, q)
    async with w:
        inp = incident_input(policy(approval=AUTO), [alert(service="payments")])
        h = await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        final = await h.result()
    k = kinds(final)
    assert k.index("watching") < k.index("regressed") < k.index("closed")
    assert k.count("watching") == 2, "after the regression it verifies and watches again"
    assert final.outcome.value == "not_fixed"
    assert rt.archive.get(final.number).outcome.value == "not_fixed"
    subjects = [r["subject"] for r in rt.channels["outbox"].records()]
    assert any("regressed after recovery" in s for s in subjects)
    resolved = [s for s in subjects if s.startswith("[RESOLVED]")]
    assert len(resolved) == 1, "people hear 'resolved' once, after a quiet watch"
    assert final.resolved_at is not None and final.closed_at is not None
    assert (final.closed_at - final.resolved_at).total_seconds() >= 60 - 1, (
        "the watch lasts `period` by default"
    )


async def test_watch_passes_quietly(ts_env, tmp_path):
    world = GatedWorld(signature="cpu")
    q = tq()
    w, _ = worker(ts_env.client, tmp_path, world, q)
    async with w:
        inp = incident_input(policy(approval=AUTO), [alert(service="payments")])
        final = await (
            await ts_env.client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=q)
        ).result()
    assert "regressed" not in kinds(final) and final.outcome.value == "fixed"
    assert world.verify_calls >= 7 + 6, "verification period, then a watch as long (1 min at 10 s)"
