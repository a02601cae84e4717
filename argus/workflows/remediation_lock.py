"""Guardrails that hold across incidents: a remediation lock per service and a fleet-wide budget.

`RemediationLockWorkflow` (id `remediation-lock/<task queue>/<service>`) is an entity workflow:
incidents reach it with update-with-start (through the `acquire_remediation_lock` activity) and it
answers at once:

* **granted** — nobody else is changing the service and its rate limit allows one more;
* **queued** — another incident holds it; this one waits in line and is signalled
  (`remediation_lock_granted`) when its turn comes, or refused then if the rate limit filled up;
* **refused** — the service was remediated `rate_limit` times inside `rate_window`: automation
  stops there and people take over (a fix that keeps being needed is not a fix).

A holder that never releases (its incident was terminated) loses the lock after its lease. The
workflow forgets nothing it needs: when idle it stays until its last grant has left the rate
window, then completes; a long life continues-as-new with its state.

`RemediationBudgetWorkflow` (id `remediation-budget/<task queue>`) caps the blast radius across the fleet: the
number of distinct services automatically remediated inside a window.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from argus.activities.remediation_guard import GRANTED_SIGNAL
    from argus.models.remediation import (
        BudgetEntry,
        BudgetReply,
        BudgetRequest,
        BudgetState,
        LockRelease,
        LockReply,
        LockRequest,
        LockState,
    )

MAX_LOG = 50


@workflow.defn
class RemediationLockWorkflow:
    @workflow.init
    def __init__(self, state: LockState) -> None:
        self.s = state
        self._to_notify: list[LockReply] = []
        self._changed = False
        self._changed_once = False

    # --- the loop: lease expiry, notifications, retirement -------------------------------------
    @workflow.run
    async def run(self, state: LockState) -> LockState:
        while True:
            now = workflow.now()
            if self.s.holder and self.s.lease_until and now >= self.s.lease_until:
                self._note(f"lease of {self.s.holder} expired; lock taken back")
                self.s.holder = None
                self._grant_next()
            await self._notify()
            self._forget_old_grants()
            # Retire when idle with nothing left to remember, but never before the request that
            # started this run was handled (update-with-start delivers it in the first activation).
            idle = not self.s.holder and not self.s.queue and not self.s.grants
            if idle and self._changed_once and workflow.all_handlers_finished():
                return self.s
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self.s)
            # A timer only while someone holds the lock (its lease); old grants are forgotten lazily,
            # when the next request comes, so an idle lock costs nothing and wakes nobody.
            lease = self.s.lease_until if self.s.holder else None
            timeout = max(lease - now, timedelta(seconds=1)) if lease else None
            self._changed = False
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)
            except TimeoutError:
                pass

    # --- handlers --------------------------------------------------------------------------------
    @workflow.update
    def acquire(self, req: LockRequest) -> LockReply:
        self.s.rate_window = req.rate_window
        self._changed = self._changed_once = True
        if self.s.holder == req.holder:
            return LockReply(
                status="granted", service=self.s.service, holder=req.holder, reason="already held"
            )
        for i, waiting in enumerate(self.s.queue):
            if waiting.holder == req.holder:
                return self._queued(i)
        refusal = self._rate_refusal(req)
        if refusal:
            self._note(f"refused {req.holder}: {refusal}")
            return LockReply(status="refused", service=self.s.service, holder=self.s.holder, reason=refusal)
        if self.s.holder is None and not self.s.queue:
            return self._grant(req)
        self.s.queue.append(req)
        self._note(f"{req.holder} queued behind {self.s.holder}")
        return self._queued(len(self.s.queue) - 1)

    @acquire.validator
    def _validate_acquire(self, req: LockRequest) -> None:
        if req.service != self.s.service:
            raise ValueError(f"this is the lock of {self.s.service!r}, not of {req.service!r}")

    @workflow.update
    def release(self, rel: LockRelease) -> str:
        self._changed = self._changed_once = True
        if self.s.holder == rel.holder:
            self._note(f"released by {rel.holder}" + (f" ({rel.outcome})" if rel.outcome else ""))
            self.s.holder = None
            self.s.lease_until = None
            self._grant_next()
            return "released"
        before = len(self.s.queue)
        self.s.queue = [q for q in self.s.queue if q.holder != rel.holder]
        return "left the queue" if len(self.s.queue) < before else "not held"

    @workflow.query
    def state(self) -> LockState:
        return self.s

    # --- helpers -----------------------------------------------------------------------------
    def _queued(self, index: int) -> LockReply:
        return LockReply(
            status="queued",
            service=self.s.service,
            holder=self.s.holder,
            position=index + 1,
            reason=f"{self.s.service} is being remediated by {self.s.holder}; position {index + 1} in line",
        )

    def _rate_refusal(self, req: LockRequest) -> str:
        self._forget_old_grants()
        if len(self.s.grants) >= req.rate_limit:
            first = min(self.s.grants)
            return (
                f"{self.s.service} was remediated automatically {len(self.s.grants)} time(s) since "
                f"{first:%H:%M:%S} UTC (limit {req.rate_limit} per {req.rate_window}); a person must act"
            )
        return ""

    def _grant(self, req: LockRequest) -> LockReply:
        now = workflow.now()
        self.s.holder = req.holder
        self.s.held_since = now
        self.s.lease_until = now + req.lease
        self.s.grants.append(now)
        self._note(f"granted to {req.holder} until {self.s.lease_until:%H:%M:%S}")
        return LockReply(status="granted", service=self.s.service, holder=req.holder)

    def _grant_next(self) -> None:
        while self.s.queue and self.s.holder is None:
            nxt = self.s.queue.pop(0)
            refusal = self._rate_refusal(nxt)
            if refusal:
                self._to_notify.append(
                    LockReply(status="refused", service=self.s.service, holder=nxt.holder, reason=refusal)
                )
                continue
            self._to_notify.append(self._grant(nxt))

    async def _notify(self) -> None:
        while self._to_notify:
            reply = self._to_notify.pop(0)
            assert reply.holder is not None
            try:
                await workflow.get_external_workflow_handle(reply.holder).signal(GRANTED_SIGNAL, reply)
            except Exception as exc:
                # The incident is gone: take the lock back at once rather than waiting for the lease.
                self._note(f"could not tell {reply.holder} ({exc}); skipping it")
                if reply.status == "granted" and self.s.holder == reply.holder:
                    self.s.holder = None
                    self._grant_next()

    def _forget_old_grants(self) -> None:
        if self.s.rate_window is None:
            return
        cutoff = workflow.now() - self.s.rate_window
        self.s.grants = [g for g in self.s.grants if g > cutoff]

    def _note(self, text: str) -> None:
        self.s.log.append(f"{workflow.now():%Y-%m-%dT%H:%M:%SZ} {text}")
        del self.s.log[:-MAX_LOG]


@workflow.defn
class RemediationBudgetWorkflow:
    @workflow.init
    def __init__(self, state: BudgetState) -> None:
        self.s = state
        self._changed = False
        self._changed_once = False

    @workflow.run
    async def run(self, state: BudgetState) -> BudgetState:
        while True:
            self._forget()
            if not self.s.entries and self._changed_once and workflow.all_handlers_finished():
                return self.s
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self.s)
            # No timer: old entries are forgotten when the next request comes.
            self._changed = False
            await workflow.wait_condition(lambda: self._changed)

    @workflow.update
    def reserve(self, req: BudgetRequest) -> BudgetReply:
        if not req.services:
            raise ApplicationError("a budget request must name at least one service", non_retryable=True)
        self.s.window = req.window
        self._changed = self._changed_once = True
        self._forget()
        for e in self.s.entries:
            if e.holder == req.holder and set(req.services) <= set(e.services):
                return BudgetReply(granted=True, reason="already reserved", touched=self._touched())
        touched = set(self._touched())
        after = touched | set(req.services)
        if len(after) > req.max_services:
            return BudgetReply(
                granted=False,
                touched=sorted(touched),
                reason=(
                    f"blast radius: {len(touched)} service(s) were remediated automatically in the last "
                    f"{req.window} ({', '.join(sorted(touched))}); "
                    f"adding {', '.join(sorted(set(req.services) - touched))} "
                    f"would exceed the fleet limit of {req.max_services}"
                ),
            )
        self.s.entries.append(
            BudgetEntry(holder=req.holder, services=sorted(req.services), at=workflow.now())
        )
        return BudgetReply(granted=True, touched=sorted(after))

    @workflow.query
    def state(self) -> BudgetState:
        return self.s

    def _touched(self) -> list[str]:
        return sorted({s for e in self.s.entries for s in e.services})

    def _forget(self) -> None:
        if self.s.window is None:
            return
        cutoff = workflow.now() - self.s.window
        self.s.entries = [e for e in self.s.entries if e.at > cutoff]
