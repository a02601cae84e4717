"""IncidentWorkflow: one durable workflow per incident, from the first alert to the post-mortem.

    open record ─► notify ∥ ticket ─► RCA ─► enrich ticket ─► recommend ─► ask for approval
        (reminders, escalation on durable timers; days if need be) ─► remediate (saga: roll back
        in reverse on failure or cancellation) ─► verify recovery ─► close ticket, notify,
        archive ─► hand over to DocGen

New alerts, acknowledgements, comments, manual resolution and ticket changes arrive as
signals; the approval arrives as an update whose validator refuses stale proposals and
people who may not approve. `status` and `timeline` are queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from argus.activities.closer import Closer
    from argus.activities.enricher import Enricher
    from argus.activities.executor import Executor
    from argus.activities.incident_creator import IncidentCreator
    from argus.activities.rca_agent import RcaAgent
    from argus.activities.recommender import Recommender
    from argus.activities.remediation_guard import RemediationGuard
    from argus.activities.ticket_updater import TicketUpdater
    from argus.activities.ticket_writer import TicketWriter
    from argus.analysis.guardrails import blast_radius_refusal, freeze_refusal, proposal_services
    from argus.models import (
        Acknowledge,
        Alert,
        AlertsSignal,
        ApprovalDecision,
        CommentSignal,
        DecisionKind,
        IncidentInput,
        IncidentState,
        IncidentStatus,
        NotificationKind,
        ProposedStep,
        RemediationOutcome,
        ResolveSignal,
        RouteDecision,
        Severity,
        StepRequest,
        StepStatus,
        TicketRequest,
        TicketStateSignal,
        TicketUpdate,
        TimelineEntry,
    )
    from argus.models.agents import (
        DocGenInput,
        EnrichRequest,
        IncidentClosed,
        OpenRecord,
        RcaRequest,
        RecommendRequest,
        VerifyRequest,
    )
    from argus.models.remediation import ActionResult, BudgetRequest, LockRelease, LockReply, LockRequest

    from . import search_attributes as sa
    from .common import COMPENSATE, EFFECT, LOCAL, QUICK, RCA, STEP
    from .paging import Paging

A = TypeVar("A")
R = TypeVar("R")
MAX_ALERTS = 200
# Patch id: opening the record, recommending and verifying recovery became local activities.
# Runs begun before keep their ordinary activities on replay (tests/workflows/test_replay.py).
LOCAL_STEPS = "local-quick-steps"
# Patch id: checks judged on the alerts' own state are re-run when the alerts change (and when
# the period or deadline is due), not every `interval`. Older runs keep polling on replay.
ALERT_DRIVEN_CHECKS = "alert-driven-checks"
# Patch id: an incident is "investigating" from its first search-attribute upsert, instead of
# "triggered" there and "investigating" in an upsert of its own once notified and ticketed: one
# visibility write less per incident (about 10 ms of the dev server's one SQLite writer).
INVESTIGATING_ON_OPEN = "investigating-on-open"
# Patch id: the two patches above that are asked right after a local activity are decided
# before the first await instead. A local activity's marker and the commands issued once it
# returns can fall in different workflow tasks, and on replay the SDK learns of a patch only at
# the task holding its marker: asked after the activity, `patched` read False and a restarted
# worker failed the run with a nondeterminism error (tests/workflows/history_split.py).
PATCHES_AT_START = "patches-decided-at-start"
MAX_TIMELINE = 500
# Routing decisions written to the timeline one by one: at most this many of those delivered at
# the opening, and per alert update. The rest are not dropped silently: one entry says how many
# of which kind were left out (`omitted_decisions`).
MAX_OPEN_DECISIONS = 20
MAX_UPDATE_DECISIONS = 10
QUIET_DECISIONS = ("duplicate", "new_group")  # not news for an open incident's timeline


def omitted_decisions(left_out: list[RouteDecision], dropped: int = 0) -> tuple[str, dict[str, Any]]:
    """The timeline entry (message, data) that stands for routing decisions not listed one by
    one: how many, of which kind (most first), and how many alerts they concern; plus `dropped`,
    older ones the router did not keep (counted only). Deterministic: the same decisions give the
    same entry on every replay."""
    kinds: dict[str, int] = {}
    for d in left_out:
        kinds[d.kind.value] = kinds.get(d.kind.value, 0) + 1
    kinds = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    alerts = len({d.fingerprint for d in left_out})
    breakdown = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    n = len(left_out) + dropped
    if dropped:  # of unknown kinds: the router kept only their count
        breakdown = ", ".join([*filter(None, [breakdown]), f"{dropped} not kept by the router"])
    message = f"{n} earlier routing decision{'s' if n != 1 else ''} not listed: {breakdown}"
    if left_out:
        message += f" ({alerts} alert{'s' if alerts != 1 else ''})"
    data = {"decision": "omitted", "alert": "", "omitted": n, "kinds": kinds, "alerts": alerts}
    return message, {**data, "dropped": dropped} if dropped else data


def _error_text(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError | ChildWorkflowError) and exc.cause else exc
    return str(cause) or type(cause).__name__


@workflow.defn
class IncidentWorkflow(Paging):
    def __init__(self) -> None:
        self._init_paging()  # notifications with per-channel retries, escalation (paging.py)
        self.s: IncidentState | None = None
        self._resolved_by: ResolveSignal | None = None
        self._ticket_key = ""
        self._lock_replies: dict[str, LockReply] = {}  # answers of remediation locks we queued for
        self._group_firing: int | None = None  # from monitoring, for groups larger than the sample
        self._alerts_version = 0  # bumped by every add_alerts signal
        self._checks_on_alerts = False  # the last recovery check had no rule: it read the alerts
        self._patched_at_start = False  # PATCHES_AT_START, asked first thing in run

    # --- the flow --------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: IncidentInput) -> IncidentState:
        self.inp = inp
        self._patched_at_start = workflow.patched(PATCHES_AT_START)  # before any await (see its id)
        self.policy = inp.policy.for_receiver(inp.receiver)  # whom its route's receiver pages
        self._group_firing = inp.firing_count
        info = workflow.info()
        self.wf_key = f"{info.workflow_id}/{info.run_id}"
        firing = [a for a in inp.alerts if a.status == "firing"] or inp.alerts
        top = min(firing, key=lambda a: a.severity.rank)
        self.s = IncidentState(
            incident_id=info.workflow_id,
            title=self._title(inp, firing),
            service=top.service,
            severity=top.severity,
            environment=top.environment,
            group_key=inp.group_key,
            opened_at=workflow.now(),
            alerts=inp.alerts[-MAX_ALERTS:],
            backfill=inp.backfill,
        )
        self._log("opened", f"Incident opened from {len(firing)} firing alert(s) in group {inp.group_key}")
        self._log_routing(inp.decisions, MAX_OPEN_DECISIONS, inp.decisions_dropped)

        self.s.number = await self._quick_step(
            IncidentCreator.open_incident, OpenRecord(state=self.s, run_id=info.run_id)
        )
        if self._patched_at_start or workflow.patched(INVESTIGATING_ON_OPEN):
            self.s.status = IncidentStatus.INVESTIGATING  # ARGUS works on it from here on
        self._upsert_search_attributes()

        await asyncio.gather(
            self._notify(
                NotificationKind.OPENED,
                "opened",
                f"[{self.s.severity.value.upper()}] {self.s.number} {self.s.title}",
                self._alert_text(),
                recipients=self._targets(0),  # the first page of the escalation policy
            ),
            self._create_ticket(),
        )
        self._start_paging()

        if self.s.status != IncidentStatus.INVESTIGATING:
            await self._set_status(IncidentStatus.INVESTIGATING)
        await self._investigate()

        remediated = False
        if self.s.proposal is not None and not self._resolved():
            decision = await self._await_decision()
            if decision is not None and decision.decision == DecisionKind.APPROVE:
                remediated = await self._remediate()
            elif decision is not None:
                self.s.outcome = RemediationOutcome.REJECTED

        await self._verify(remediated)
        await self._close()
        await self._finish_paging()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.s

    # --- steps -----------------------------------------------------------------------------------
    async def _quick_step(self, activity: Callable[[Any, A], Awaitable[R]], arg: A) -> R:
        """A quick step that reads, or writes idempotently to ARGUS's own store: a local activity
        (no task-queue round trip, fewer history events), except in runs begun before that."""
        if workflow.patched(LOCAL_STEPS):
            return await workflow.execute_local_activity_method(activity, arg, **LOCAL)
        return await workflow.execute_activity_method(activity, arg, **QUICK)

    async def _create_ticket(self) -> None:
        assert self.s is not None
        req = TicketRequest(
            key=f"{self.wf_key}/ticket",
            incident_id=self.s.incident_id,
            title=f"{self.s.number} {self.s.title}",
            description=self._alert_text(),
            service=self.s.service,
            severity=self.s.severity.value,
            # argus-wf-<id>: how a ticket webhook names its incident (gateway/tickets_sync.py)
            labels=["argus", f"service-{self.s.service}", f"argus-wf-{self.s.incident_id}"]
            + (["backfill"] if self.s.backfill else []),
        )
        try:
            ref = await workflow.execute_activity_method(TicketWriter.create_ticket, req, **EFFECT)
        except ActivityError as exc:
            self._log("ticket_failed", f"Ticket could not be created: {_error_text(exc)}")
            return
        self.s.tickets.append(ref)
        self._log("ticket", f"Ticket {ref.key} created in {ref.system}", data={"url": ref.url})

    async def _investigate(self) -> None:
        assert self.s is not None
        anomaly_start = min((a.starts_at for a in self.s.alerts), default=self.s.opened_at)
        # Root causes show in the minutes after onset: give the sources that much data first.
        settle = anomaly_start + self.policy.rca_settle - workflow.now()
        if settle > timedelta(0) and not self.s.backfill:
            await workflow.sleep(settle, summary="waiting for post-onset data")
        req = RcaRequest(
            incident_id=self.s.incident_id,
            service=self.s.service,
            alerts=self.s.alerts,
            window_start=anomaly_start - self.policy.rca_lookback,
            # A backfilled incident happened in the past: its window ends with its alerts, not now.
            window_end=max([a.ends_at or a.starts_at for a in self.s.alerts] + [anomaly_start])
            + self.policy.rca_lookback
            if self.s.backfill
            else workflow.now(),
            anomaly_start=anomaly_start,
            settle_seconds=0.0 if self.s.backfill else self.policy.rca_settle.total_seconds(),
        )
        try:
            self.s.rca = await workflow.execute_activity_method(RcaAgent.analyze, req, **RCA)
        except ActivityError as exc:
            self._log("rca_failed", f"Root-cause analysis failed: {_error_text(exc)}")
        if self.s.rca is not None:
            top = self.s.rca.top
            self._log(
                "rca",
                f"Most likely root cause: {top.service} ({top.confidence:.0%}): {top.summary}"
                if top
                else "RCA found no candidate",
                data={"ranking": [h.service for h in self.s.rca.hypotheses]},
            )
            if top:
                workflow.upsert_search_attributes([sa.ROOT_CAUSE.value_set(top.service)])
        if self.s.tickets:
            ticket = self.s.tickets[0]
            try:
                await workflow.execute_activity_method(
                    Enricher.enrich,
                    EnrichRequest(
                        key=f"{self.wf_key}/enrich",
                        incident_id=self.s.incident_id,
                        number=self.s.number,
                        service=self.s.service,
                        ticket=ticket,
                        rca=self.s.rca,
                    ),
                    **EFFECT,
                )
                self._log("enriched", f"RCA summary, runbooks and similar incidents added to {ticket.key}")
            except ActivityError as exc:
                self._log("enrich_failed", f"Ticket enrichment failed: {_error_text(exc)}")
        try:
            rec = await self._quick_step(
                Recommender.recommend,
                RecommendRequest(
                    incident_id=self.s.incident_id,
                    service=self.s.service,
                    alerts=self.s.alerts,
                    rca=self.s.rca,
                ),
            )
        except ActivityError as exc:
            self._log("recommend_failed", f"Recommender failed: {_error_text(exc)}")
            return
        self.s.recommendations = rec.recommendations
        self.s.proposal = rec.proposal
        for note in rec.notes[:10]:  # what was not proposed and why (guardrails, unusable runbooks)
            self._log("recommendation_note", note)
        if rec.proposal is None:
            self._log("recommendation", "No playbook matches this incident; people must handle it")
        else:
            self._log(
                "recommendation",
                f"Proposed {rec.proposal.summary} ({rec.proposal.risk.value} risk); "
                f"{len(rec.recommendations)} candidate playbook(s)",
                data={
                    "proposal_hash": rec.proposal.hash,
                    "playbooks": [r.playbook for r in rec.recommendations],
                },
            )

    async def _await_decision(self) -> ApprovalDecision | None:
        assert self.s is not None and self.s.proposal is not None
        proposal = self.s.proposal
        auto = self.policy.approval.auto_approve_max_risk
        if self.policy.demo or (auto is not None and proposal.risk.rank <= auto.rank):
            why = "demo mode" if self.policy.demo else f"risk {proposal.risk.value} <= auto-approve {auto}"
            self.s.decision = ApprovalDecision(
                approver="argus-policy",
                decision=DecisionKind.APPROVE,
                proposal_hash=proposal.hash,
                comment=f"approved automatically ({why})",
                via="policy",
                at=workflow.now(),
            )
            self._log("decision", f"Approved automatically: {why}", actor="argus-policy")
            return self.s.decision

        await self._set_status(IncidentStatus.AWAITING_APPROVAL)
        if self.s.backfill:
            self._log("approval_skipped", "Backfilled incident: nobody is paged for approval")
        # The escalation loop sends the request now, then reminders and escalation on its timers.
        self._page_now = True
        timeout = self.policy.approval.timeout
        try:
            await workflow.wait_condition(
                lambda: self.s.decision is not None or self._resolved(),
                timeout=timeout,
                timeout_summary="waiting for approval",
            )
        except TimeoutError:
            self._log("approval_expired", f"No decision within {timeout}; no action taken")
            await self._notify(
                NotificationKind.ESCALATION,
                "approval-expired",
                f"{self.s.number}: approval expired, incident needs a person",
                f"Nobody approved or rejected {proposal.summary} in time. The incident stays open.",
                recipients=self._targets(self._level),
            )
            return None
        return self.s.decision

    async def _remediate(self) -> bool:
        """Check the guardrails, take the service locks, run the approved steps in order; on failure
        or cancellation undo the done ones in reverse. Locks are released whatever happens."""
        assert self.s is not None and self.s.proposal is not None
        await self._set_status(IncidentStatus.REMEDIATING)
        proposal = self.s.proposal
        rp = self.policy.remediation
        services = proposal_services(proposal)
        refusal = blast_radius_refusal(services, rp.blast_radius) or freeze_refusal(
            proposal, services, rp.freeze, workflow.now(), self.policy.routing.time_intervals
        )
        if refusal:
            await self._refuse_remediation(refusal)
            return False
        held: list[str] = []
        try:
            if not self.policy.dry_run:  # a dry run changes nothing, so it needs no lock or budget
                refusal = await self._take_guards(proposal.hash, services, held)
                if refusal:
                    if not self._resolved():
                        await self._refuse_remediation(refusal)
                    return False
            return await self._run_steps()
        finally:
            for svc in held:
                try:
                    await workflow.execute_activity_method(
                        RemediationGuard.release,
                        LockRelease(service=svc, holder=self.s.incident_id, outcome=self.s.outcome.value),
                        **QUICK,
                    )
                except ActivityError as exc:  # the lease frees it anyway
                    self._log("remediation_lock", f"Could not release the lock on {svc}: {_error_text(exc)}")

    async def _take_guards(self, proposal_hash: str, services: list[str], held: list[str]) -> str | None:
        """The fleet budget, then each service's lock (sorted, so two incidents never deadlock).
        Returns why remediation may not go ahead, or None. `held` collects what must be released."""
        assert self.s is not None
        rp = self.policy.remediation
        br = rp.blast_radius
        budget = await workflow.execute_activity_method(
            RemediationGuard.reserve,
            BudgetRequest(
                holder=self.s.incident_id,
                services=services,
                max_services=br.fleet_max_services,
                window=br.fleet_window,
            ),
            **QUICK,
        )
        if not budget.granted:
            return budget.reason
        for svc in services:
            held.append(svc)  # from here on a release is due: it also takes us out of a queue
            self._lock_replies.pop(svc, None)
            reply = await workflow.execute_activity_method(
                RemediationGuard.acquire,
                LockRequest(
                    service=svc,
                    holder=self.s.incident_id,
                    proposal_hash=proposal_hash,
                    lease=rp.lock_lease,
                    rate_limit=rp.rate_limit,
                    rate_window=rp.rate_window,
                ),
                **QUICK,
            )
            if reply.status == "queued":
                self._log("remediation_waiting", f"Waiting: {reply.reason}")
                try:
                    await workflow.wait_condition(
                        lambda svc=svc: svc in self._lock_replies or self._resolved(),
                        timeout=rp.lock_wait,
                        timeout_summary=f"waiting for the remediation lock on {svc}",
                    )
                except TimeoutError:
                    return f"waited {rp.lock_wait} for {svc}, still being remediated by {reply.holder}"
                if svc not in self._lock_replies:
                    return "the incident was resolved while waiting for the remediation lock"
                reply = self._lock_replies[svc]
            if reply.status != "granted":
                return reply.reason
            self._log("remediation_lock", f"Remediation lock on {svc} granted")
        return None

    async def _refuse_remediation(self, reason: str) -> None:
        assert self.s is not None and self.s.proposal is not None
        self._log("guardrail", f"Remediation refused by guardrails: {reason}")
        await self._notify(
            NotificationKind.ESCALATION,
            "remediation-refused",
            f"{self.s.number}: automatic remediation refused, needs a person",
            f"{self.s.proposal.summary}\nRefused: {reason}",
        )

    async def _run_steps(self) -> bool:
        assert self.s is not None and self.s.proposal is not None
        proposal = self.s.proposal
        limits = self.policy.remediation.blast_radius
        done: list[tuple[ProposedStep, ActionResult]] = []
        try:
            for step in proposal.steps:
                req = StepRequest(
                    incident_id=self.s.incident_id,
                    step=step,
                    key=f"{self.wf_key}/{proposal.hash}/{step.name}",
                    dry_run=self.policy.dry_run,
                    blast_radius=limits,
                )
                result = await workflow.execute_activity_method(Executor.execute_step, req, **STEP)
                self.s.actions.append(result)
                done.append((step, result))
                self._log(
                    "action",
                    f"Step {step.name}: {result.status.value} — {result.output}",
                    data={"key": result.key},
                )
                if workflow.cancellation_reason() is not None:
                    # Cancelled while this step finished anyway: stop here and undo it too.
                    raise asyncio.CancelledError("incident cancelled during remediation")
        except BaseException as exc:
            reason = _error_text(exc)
            cause = exc.cause if isinstance(exc, ActivityError) else None
            if isinstance(cause, ApplicationError) and cause.type == "StepRefused":
                self._log("refused", f"Step refused by the Executor's guardrails: {reason}")
            self._log(
                "remediation_failed", f"Remediation stopped: {reason}; rolling back {len(done)} step(s)"
            )
            for step, forward in reversed(done):
                if step.rollback is None:
                    self._log("rollback", f"Step {step.name} has no rollback")
                    continue
                req = StepRequest(
                    incident_id=self.s.incident_id,
                    step=step,
                    key=f"{self.wf_key}/{proposal.hash}/{step.name}",
                    rollback=True,
                    dry_run=self.policy.dry_run,
                    blast_radius=limits,
                    prior=forward.prior,
                )
                try:
                    result = await workflow.execute_activity_method(Executor.execute_step, req, **COMPENSATE)
                    self.s.actions.append(result)
                    self._log("rollback", f"Rolled back {step.name}: {result.output}")
                except ActivityError as rb_exc:
                    self._log("rollback_failed", f"Rollback of {step.name} failed: {_error_text(rb_exc)}")
            self.s.outcome = RemediationOutcome.ROLLED_BACK
            if isinstance(exc, asyncio.CancelledError):
                raise
            if is_cancelled_exception(exc) or workflow.cancellation_reason() is not None:
                # The workflow's cancellation reaches the running step first and surfaces as that
                # step's failure: after compensating, end as cancelled rather than carry on.
                raise asyncio.CancelledError("incident cancelled during remediation") from exc
            await self._notify(
                NotificationKind.ESCALATION,
                "remediation-failed",
                f"{self.s.number}: remediation failed and was rolled back",
                f"{proposal.summary}\nReason: {reason}",
            )
            return False
        if all(a.status == StepStatus.DRY_RUN for a in self.s.actions):
            self._log("remediation", "Dry run: nothing was changed")
            return False
        return True

    async def _verify(self, remediated: bool) -> None:
        """Watch the symptom until it stays normal for the verification period, then keep watching
        for `watch` while resolved: a regression reopens the incident and escalates. Only a quiet
        watch lets it close (ticket resolved, people told, outcome archived)."""
        assert self.s is not None
        if self._resolved_by is not None:
            if self.s.outcome == RemediationOutcome.NONE:
                self.s.outcome = RemediationOutcome.FIXED_BY_OTHER
            return
        pol = self.policy.verification
        reopened = 0
        while True:
            how, detail = await self._until_healthy(remediated)
            if how != "checks" or pol.watch_for <= timedelta(0):
                break
            regression = await self._watch_for_regression()
            if regression is None:
                break
            reopened += 1
            self.s.resolved_at = None
            await self._set_status(IncidentStatus.VERIFYING)
            self._log("regressed", f"Regressed within the watch window: {regression}; incident reopened")
            if remediated:
                self.s.outcome = RemediationOutcome.NOT_FIXED
            await self._notify(
                NotificationKind.ESCALATION,
                f"regressed-{reopened}",
                f"{self.s.number}: regressed after recovery, reopened",
                f"{regression}\nThe symptom came back within {pol.watch_for} of recovery"
                + (" after remediation." if remediated else "."),
            )
            if reopened >= 3:
                self._log("regressed", "Regressed three times: waiting for a person or the alerts to resolve")
                await self._set_status(IncidentStatus.INVESTIGATING)
                await workflow.wait_condition(
                    lambda: self._resolved_by is not None or self._all_alerts_resolved()
                )
                break
        if self._resolved_by is not None:
            detail = f"resolved by {self._resolved_by.by}: {self._resolved_by.reason}"
        if self.s.outcome == RemediationOutcome.NONE:
            self.s.outcome = RemediationOutcome.FIXED if remediated else RemediationOutcome.FIXED_BY_OTHER
        self._log("verified", f"Recovery verified: {detail}")

    async def _check_recovery(self) -> tuple[bool, str]:
        assert self.s is not None
        try:
            res = await self._quick_step(
                Closer.verify,
                VerifyRequest(incident_id=self.s.incident_id, service=self.s.service, alerts=self.s.alerts),
            )
        except ActivityError as exc:
            return False, f"verification failed: {_error_text(exc)}"
        self._checks_on_alerts = res.on_alerts
        return res.healthy, res.detail

    def _alert_driven(self) -> bool:
        """Whether the next recovery check may wait for the alerts to change instead of a timer."""
        return self._checks_on_alerts and (self._patched_at_start or workflow.patched(ALERT_DRIVEN_CHECKS))

    async def _until_news(self, timeout: timedelta, alerts_too: bool) -> None:
        """Until a person resolves the incident, `timeout` passes, or (`alerts_too`) alerts arrive."""
        seen = self._alerts_version
        try:
            await workflow.wait_condition(
                lambda: self._resolved_by is not None or (alerts_too and self._alerts_version != seen),
                timeout=timeout,
            )
        except TimeoutError:
            pass

    async def _until_healthy(self, remediated: bool) -> tuple[str, str]:
        """Until the checks stay healthy for `period` ("checks"), a person resolves ("person"), or
        after `max_wait` of no recovery and an escalation, the alerts resolve ("alerts")."""
        assert self.s is not None
        await self._set_status(IncidentStatus.VERIFYING)
        pol = self.policy.verification
        deadline = workflow.now() + pol.max_wait
        healthy_since = None
        detail = ""
        while self._resolved_by is None:
            healthy, detail = await self._check_recovery()
            now = workflow.now()
            if healthy:
                healthy_since = healthy_since or now
                if now - healthy_since >= pol.period:
                    return "checks", detail
            else:
                healthy_since = None
            if now >= deadline:
                self._log("not_recovered", f"Not recovered after {pol.max_wait}: {detail}")
                if remediated:
                    self.s.outcome = RemediationOutcome.NOT_FIXED
                await self._notify(
                    NotificationKind.ESCALATION,
                    "not-recovered",
                    f"{self.s.number}: not recovered, needs a person",
                    f"{detail}\nResolve it with `argus resolve {self.s.number}` when it is fixed.",
                )
                await self._set_status(IncidentStatus.INVESTIGATING)
                await workflow.wait_condition(
                    lambda: self._resolved_by is not None or self._all_alerts_resolved()
                )
                return ("person" if self._resolved_by is not None else "alerts"), detail
            if self._alert_driven():
                # Only new alerts change the answer: wait for them, or for the period or deadline.
                due = deadline if healthy_since is None else min(deadline, healthy_since + pol.period)
                await self._until_news(due - now, alerts_too=True)
            else:
                await self._until_news(pol.interval, alerts_too=False)
        return "person", detail

    async def _watch_for_regression(self) -> str | None:
        """Resolved, not yet closed: re-check every `interval` for `watch`. Returns what regressed
        (`regression_checks` unhealthy checks in a row), or None after a quiet watch."""
        assert self.s is not None
        pol = self.policy.verification
        self.s.resolved_at = workflow.now()
        await self._set_status(IncidentStatus.RESOLVED)
        until = workflow.now() + pol.watch_for
        self._log("watching", f"Recovered; watching for regression until {until:%H:%M:%S} UTC before closing")
        bad = 0
        while workflow.now() < until and self._resolved_by is None:
            if bad == 0 and self._alert_driven():
                # Healthy, judged on the alerts: only new alerts can bring the symptom back. Once
                # unhealthy, checks run every `interval` again to see whether it lasts.
                await self._until_news(until - workflow.now(), alerts_too=True)
            else:
                await self._until_news(min(pol.interval, until - workflow.now()), alerts_too=False)
            if self._resolved_by is not None:
                break
            healthy, detail = await self._check_recovery()
            bad = 0 if healthy else bad + 1
            if bad >= pol.regression_checks:
                return detail
        return None

    async def _close(self) -> None:
        assert self.s is not None
        now = workflow.now()
        self.s.resolved_at = self.s.resolved_at or now  # recovery time, when a watch preceded closing
        await self._set_status(IncidentStatus.RESOLVED)
        for ticket in self.s.tickets:
            try:
                ref = await workflow.execute_activity_method(
                    TicketUpdater.update_ticket,
                    TicketUpdate(
                        key=f"{self.wf_key}/ticket-resolve",
                        ticket=ticket,
                        comment=f"Resolved by ARGUS. Outcome: {self.s.outcome.value}.",
                        state="resolved",
                        resolution=self.s.outcome.value,
                    ),
                    **EFFECT,
                )
                ticket.state = ref.state
            except ActivityError as exc:
                self._log("ticket_failed", f"Ticket {ticket.key} could not be resolved: {_error_text(exc)}")
        await self._notify(
            NotificationKind.RESOLVED,
            "resolved",
            f"[RESOLVED] {self.s.number} {self.s.title}",
            f"Outcome: {self.s.outcome.value}. Open for {(now - self.s.opened_at)}.",
        )
        self.s.closed_at = workflow.now()
        await self._set_status(IncidentStatus.CLOSED)
        self._log("closed", f"Incident closed ({self.s.outcome.value})")
        await workflow.execute_activity_method(
            Closer.archive_incident, OpenRecord(state=self.s, run_id=workflow.info().run_id), **QUICK
        )
        if self.inp.monitoring_workflow_id:
            try:
                await workflow.get_external_workflow_handle(self.inp.monitoring_workflow_id).signal(
                    "incident_closed",
                    IncidentClosed(group_key=self.s.group_key, incident_id=self.s.incident_id),
                )
            except Exception as exc:  # monitoring may have moved on; its sweep also forgets old groups
                self._log("monitoring_unreachable", f"Could not tell monitoring: {exc}")
        if self.policy.phases.get("docgen", True):
            await workflow.start_child_workflow(
                "DocGenWorkflow",
                DocGenInput(incident=self.s, run_id=workflow.info().run_id, review=self.policy.review_docs),
                id=f"docgen-{self.s.incident_id}-{workflow.info().run_id[:8]}",
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
            self._log("docgen", "Post-mortem handed to DocGen")

    # --- messages --------------------------------------------------------------------------------
    @workflow.signal
    def add_alerts(self, sig: AlertsSignal) -> None:
        assert self.s is not None
        if sig.firing_count is not None:
            self._group_firing = sig.firing_count
        by_fp = {a.fingerprint: a for a in self.s.alerts}
        for a in sig.alerts:
            old = by_fp.get(a.fingerprint)
            if old is None:
                self._log("alert", f"New alert {a.name} on {a.service}: {a.summary}")
            elif old.status != a.status:
                self._log("alert", f"Alert {a.name} on {a.service} is {a.status.value}")
            by_fp[a.fingerprint] = a
        # Each decision but the quiet ones is news for the timeline.
        self._log_routing(
            [d for d in sig.decisions if d.kind.value not in QUIET_DECISIONS],
            MAX_UPDATE_DECISIONS,
            sig.decisions_dropped,
        )
        alerts = list(by_fp.values())
        if len(alerts) > MAX_ALERTS:
            firing = [a for a in alerts if a.status == "firing"]
            alerts = (firing + [a for a in alerts if a.status != "firing"])[:MAX_ALERTS]
        self.s.alerts = alerts
        self._alerts_version += 1

    @workflow.signal
    def acknowledge(self, ack: Acknowledge) -> None:
        assert self.s is not None
        if self.s.acknowledged_at is None:
            self.s.acknowledged_at = workflow.now()
            self.s.acknowledged_by = ack.by
        self._log(
            "acknowledged", f"Acknowledged by {ack.by} via {ack.via}. {ack.comment}".strip(), actor=ack.by
        )

    @workflow.signal
    async def comment(self, c: CommentSignal) -> None:
        assert self.s is not None
        self._log("comment", c.text, actor=c.by)
        n = sum(1 for e in self.s.timeline if e.kind == "comment")
        for ticket in self.s.tickets:
            try:
                await workflow.execute_activity_method(
                    TicketUpdater.update_ticket,
                    TicketUpdate(
                        key=f"{self.wf_key}/comment/{n}", ticket=ticket, comment=f"{c.by}: {c.text}"
                    ),
                    **EFFECT,
                )
            except ActivityError as exc:
                self._log("ticket_failed", f"Comment not copied to {ticket.key}: {_error_text(exc)}")

    @workflow.signal(name="remediation_lock_granted")
    def remediation_lock_granted(self, reply: LockReply) -> None:
        """The service's lock workflow answers an incident that queued for it (granted or refused)."""
        self._lock_replies[reply.service] = reply

    @workflow.signal
    def resolve(self, r: ResolveSignal) -> None:
        assert self.s is not None
        if self._resolved_by is None:
            self._resolved_by = r
            self._log("resolve_requested", f"Resolved by {r.by} via {r.via}: {r.reason}", actor=r.by)

    @workflow.signal
    def ticket_state(self, t: TicketStateSignal) -> None:
        assert self.s is not None
        self._log("ticket_sync", f"Ticket {t.key} in {t.system} is now {t.state}", actor=t.by or t.system)
        state = t.state.lower().replace(" ", "_")
        if state in ("resolved", "closed", "done", "canceled") and self._resolved_by is None:
            self._resolved_by = ResolveSignal(
                by=t.by or t.system, reason=f"ticket {t.key} {t.state}", via=t.system
            )
        elif state in ("reopened", "open", "new", "in_progress", "to_do"):
            by_ticket = self._resolved_by is not None and self._resolved_by.via == t.system
            if by_ticket and self.s.status not in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
                self._resolved_by = None  # reopened before we closed: the incident goes on
                self._log("ticket_sync", f"Ticket {t.key} reopened: its resolution is withdrawn")
            else:
                self._log("ticket_sync", f"Ticket {t.key} reopened; the incident is still open")

    def _check_decision(self, d: ApprovalDecision) -> None:
        assert self.s is not None
        if self.s.proposal is None:
            raise ValueError("this incident has no proposal to decide on")
        if self.s.decision is not None:
            raise ValueError(
                f"already decided: {self.s.decision.decision.value} by {self.s.decision.approver}"
            )
        if self.s.status != IncidentStatus.AWAITING_APPROVAL:
            raise ValueError(f"the incident is not awaiting approval (status {self.s.status.value})")
        if d.proposal_hash != self.s.proposal.hash:
            raise ValueError(
                f"stale proposal: the decision answers {d.proposal_hash!r} but the current proposal is "
                f"{self.s.proposal.hash!r}"
            )
        if not self._may_approve(d):
            raise ValueError(f"{d.approver} may not approve remediation for this incident")

    def _may_approve(self, d: ApprovalDecision) -> bool:
        assert self.s is not None
        pol = self.policy.approval
        if not pol.approvers and not pol.approver_groups:
            return True
        if d.approver in pol.approvers or set(d.groups) & set(pol.approver_groups):
            return True
        # Anyone a page reached (on-call resolved when it went out) may decide, and so may the
        # targets of the level the incident has escalated to.
        levels = self.policy.escalation.levels
        current = levels[min(self.s.escalation_level, len(levels) - 1)].targets if levels else []
        return d.approver in self._asked or d.approver in current

    @workflow.update
    def decide(self, d: ApprovalDecision) -> str:
        assert self.s is not None
        self.s.decision = d.model_copy(update={"at": workflow.now()})
        if self.s.acknowledged_at is None:  # a decision is an answer: escalation stops
            self.s.acknowledged_at = workflow.now()
            self.s.acknowledged_by = d.approver
        done = "approved" if d.decision == DecisionKind.APPROVE else "rejected"
        self._log(
            "decision",
            f"{done.capitalize()} by {d.approver} via {d.via}"
            + (f" from {d.origin}" if d.origin else "")
            + (f": {d.comment}" if d.comment else ""),
            actor=d.approver,
            data={"proposal_hash": d.proposal_hash, "request_id": d.request_id, "origin": d.origin},
        )
        return f"{done} by {d.approver}"

    @decide.validator
    def _validate_decide(self, d: ApprovalDecision) -> None:
        self._check_decision(d)

    @workflow.signal
    def decide_signal(self, d: ApprovalDecision) -> None:
        """Fire-and-forget fallback for when no worker can answer an update right now."""
        try:
            self._check_decision(d)
        except ValueError as exc:
            self._log(
                "decision_refused", f"Refused decision from {d.approver} via {d.via}: {exc}", actor=d.approver
            )
            return
        self.decide(d)

    @workflow.query
    def status(self) -> IncidentState:
        if self.s is None:
            raise ApplicationError("incident not initialised yet")
        return self.s

    @workflow.query
    def timeline(self) -> list[TimelineEntry]:
        return self.s.timeline if self.s else []

    # --- helpers ---------------------------------------------------------------------------------
    def _resolved(self) -> bool:
        return self._resolved_by is not None or self._all_alerts_resolved()

    def _all_alerts_resolved(self) -> bool:
        assert self.s is not None
        if getattr(self, "_group_firing", None) is not None:
            return self._group_firing == 0
        return bool(self.s.alerts) and all(a.status == "resolved" for a in self.s.alerts)

    def _log(self, kind: str, message: str, actor: str = "argus", data: dict | None = None) -> None:
        assert self.s is not None
        self.s.timeline.append(
            TimelineEntry(at=workflow.now(), kind=kind, message=message, actor=actor, data=data or {})
        )
        if len(self.s.timeline) > MAX_TIMELINE:
            del self.s.timeline[1 : len(self.s.timeline) - MAX_TIMELINE + 1]

    def _log_routing(self, decisions: list[RouteDecision], limit: int, dropped: int = 0) -> None:
        """The latest `limit` decisions one by one, preceded by one entry counting the earlier ones
        left out (here, or by the router: `dropped`). Timeline state only (no command): replays of
        older runs are unaffected."""
        shown = decisions[-limit:] if limit > 0 else []
        left_out = decisions[: len(decisions) - len(shown)]
        if left_out or dropped:
            message, data = omitted_decisions(left_out, dropped)
            self._log("routing", message, data=data)
        for d in shown:
            self._log("routing", d.reason, data={"alert": d.alertname, "decision": d.kind.value})

    async def _set_status(self, status: IncidentStatus) -> None:
        assert self.s is not None
        self.s.status = status
        workflow.upsert_search_attributes([sa.STATUS.value_set(status.value)])

    def _upsert_search_attributes(self) -> None:
        assert self.s is not None
        workflow.upsert_search_attributes(
            [
                sa.SERVICE.value_set(self.s.service),
                sa.SEVERITY.value_set(self.s.severity.value),
                sa.STATUS.value_set(self.s.status.value),
                sa.ENVIRONMENT.value_set(self.s.environment),
                sa.FINGERPRINT.value_set(self.s.incident_id.removeprefix("incident-")),
                sa.NUMBER.value_set(self.s.number),
                sa.BACKFILL.value_set(self.s.backfill),
            ]
        )

    def _alert_text(self) -> str:
        assert self.s is not None
        lines = [
            f"- {a.name} on {a.service} [{a.severity.value}] {a.status.value}: {a.summary}"
            for a in self.s.alerts[:20]
        ]
        if len(self.s.alerts) > 20:
            lines.append(f"... and {len(self.s.alerts) - 20} more")
        return "\n".join(lines)

    @staticmethod
    def _title(inp: IncidentInput, firing: list[Alert]) -> str:
        names = sorted({a.name for a in firing})
        services = sorted({a.service for a in firing})
        svc = ", ".join(services[:3]) + (f" (+{len(services) - 3})" if len(services) > 3 else "")
        return f"{', '.join(names[:2])}{' +' if len(names) > 2 else ''} on {svc}"


__all__ = ["IncidentWorkflow", "Severity"]
