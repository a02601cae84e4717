"""A worker for workflow tests on the time-skipping server.

The agents that talk only to ARGUS's embedded stores run for real on temporary files. The
three that look at the live system — RCA, the Executor's target and the recovery check —
are replaced by scripted activities under the same names, so a test decides what the
"world" does and when, while the workflows run unchanged.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from argus.activities.orchestration import Orchestration
from argus.models import (
    ActionResult,
    Alert,
    ArgusConfig,
    Evidence,
    EvidenceKind,
    Hypothesis,
    IncidentInput,
    IncidentState,
    IncidentStatus,
    RcaReport,
    StepRequest,
    StepStatus,
)
from argus.models.agents import MonitoringInput, RcaRequest, VerifyRequest, VerifyResult
from argus.models.alert import CompactBatch
from argus.models.config import Policy
from argus.workers.settings import Secrets
from argus.workers.wiring import WORKFLOWS, activity_methods, build_activities, build_runtime
from argus.workflows.incident import IncidentWorkflow
from argus.workflows.monitoring import MonitoringWorkflow

REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    root_cause: str = "payments"
    signature: str = "cpu"
    fail_steps: set[str] = field(default_factory=set)
    healthy_after: int = 0  # verification calls that report "not yet" first
    executed: list[tuple[str, bool, str]] = field(default_factory=list)
    verify_calls: int = 0

    @activity.defn(name="analyze_root_cause")
    async def analyze(self, req: RcaRequest) -> RcaReport:
        return RcaReport(
            hypotheses=[
                Hypothesis(
                    service=self.root_cause,
                    confidence=0.8,
                    score=3.0,
                    summary=f"{self.root_cause} moved first",
                    fault_signature=self.signature,
                    evidence=[Evidence(kind=EvidenceKind.METRIC, summary="cpu 0.2 -> 0.97", metric="cpu")],
                )
            ],
            window_start=req.window_start,
            window_end=req.window_end,
            anomaly_start=req.anomaly_start,
        )

    @activity.defn(name="execute_step")
    async def execute_step(self, req: StepRequest) -> ActionResult:
        self.executed.append((req.step.name, req.rollback, req.key))
        if not req.rollback and req.step.name in self.fail_steps:
            raise ApplicationError(
                f"step {req.step.name} failed: target said no", type="StepFailed", non_retryable=True
            )
        return ActionResult(
            step=req.step.name,
            action=(req.step.rollback if req.rollback else req.step.run).action,
            status=StepStatus.ROLLED_BACK if req.rollback else StepStatus.DONE,
            output="ok",
            key=req.key,
            at=datetime.now(UTC),
        )

    @activity.defn(name="verify_recovery")
    async def verify(self, req: VerifyRequest) -> VerifyResult:
        self.verify_calls += 1
        ok = self.verify_calls > self.healthy_after
        return VerifyResult(healthy=ok, detail="normal" if ok else "still breaching")


def test_config(tmp: Path, playbooks: Path | None = None) -> ArgusConfig:
    return ArgusConfig.model_validate(
        {
            "state_dir": str(tmp),
            "remediation": {"playbooks_dir": str(playbooks or REPO / "playbooks")},
            # Enabled so the Recommender's guardrails accept sandbox steps; the Executor itself is
            # scripted here, so this address is never called.
            "sandbox": {"url": "http://127.0.0.1:9"},
            "notify": {"echo": False},
        }
    )


def make_worker(
    client: Client,
    tmp: Path,
    world: World,
    task_queue: str,
    config: ArgusConfig | None = None,
    secrets: dict[str, str] | None = None,
    max_cached_workflows: int = 1000,
    real_verify: bool = False,
) -> tuple[Worker, object]:
    """`real_verify`: the real Closer checks recovery (no rules configured here, so it judges the
    incident on its alerts' own state) instead of the World's script."""
    config = config or test_config(tmp)
    rt = build_runtime(config, Secrets({"link_secret": "x" * 32, **(secrets or {})}))
    scripted = {"analyze_root_cause", "execute_step"} | (set() if real_verify else {"verify_recovery"})
    real = [a for a in build_activities(rt) if a.__temporal_activity_definition.name not in scripted]
    world_steps = [a for a in activity_methods([world]) if a.__temporal_activity_definition.name in scripted]
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=real + world_steps,
        max_cached_workflows=max_cached_workflows,
    )
    return worker, rt


def monitoring_worker(client: Client, task_queue: str) -> Worker:
    """MonitoringWorkflow alone, with the no-op activity its backlog chunks wait on."""
    return Worker(
        client, task_queue=task_queue, workflows=[MonitoringWorkflow], activities=[Orchestration().next_chunk]
    )


async def signal_scope(
    client: Client,
    task_queue: str,
    scope: str,
    policy: Policy,
    batch: CompactBatch,
    carried: str | None = None,
    payload_store: bool = False,
) -> WorkflowHandle:
    """What the gateway does with a batch: signal-with-start the scope's MonitoringWorkflow."""
    return await client.start_workflow(
        MonitoringWorkflow.run,
        MonitoringInput(scope=scope, policy=policy, carried=carried, payload_store=payload_store),
        id=f"monitoring-{scope}",
        task_queue=task_queue,
        start_signal="ingest_compact",
        start_signal_args=[batch],
    )


def alert(name: str = "HighErrorRate", service: str = "checkout", severity: str = "critical", **kw) -> Alert:
    return Alert(
        labels={"alertname": name, "service": service, "severity": severity},
        annotations={"summary": f"{name} on {service}"},
        starts_at=kw.pop("starts_at", datetime(2026, 1, 1, tzinfo=UTC)),
        **kw,
    )


def incident_input(
    policy: Policy, alerts: list[Alert] | None = None, key: str | None = None
) -> IncidentInput:
    key = key or f"test:{uuid.uuid4().hex[:8]}"
    return IncidentInput(
        incident_id=f"incident-{key}",
        group_key=key,
        group_labels={"alertname": "HighErrorRate"},
        alerts=alerts or [alert()],
        policy=policy,
    )


def policy(**overrides) -> Policy:
    base = {
        "approval": {"approvers": ["alice"], "approver_groups": ["sre"], "timeout": "7d"},
        "escalation": {
            "reminder_interval": "30m",
            "reminders_per_level": 2,
            "levels": [{"name": "on-call", "targets": ["carol"]}, {"name": "lead", "targets": ["dave"]}],
        },
        "verification": {"period": "1m", "interval": "10s", "max_wait": "30m"},
        "phases": {"monitoring": True, "incident": True, "docgen": False},
    }
    base.update(overrides)
    return Policy.model_validate(base)


DAY = timedelta(days=1)


async def wait_status(handle: WorkflowHandle, status: IncidentStatus, tries: int = 400) -> IncidentState:
    """The incident's state once it reaches `status` (queried every 50 ms)."""
    for _ in range(tries):
        try:
            s = await handle.query(IncidentWorkflow.status)
            if s.status == status:
                return s
        except Exception:
            pass  # not started yet, or busy
        await asyncio.sleep(0.05)
    raise AssertionError(f"incident never reached {status}")
