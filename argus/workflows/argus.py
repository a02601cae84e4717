"""ArgusWorkflow: the orchestrator, one per deployment.

It decides which phases run: it keeps a MonitoringWorkflow alive per scope, keeps the
DocGen schedule in place, and on a `reload` signal hands the new policy to everything it
supervises. It continues-as-new when its history grows.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from argus.activities.orchestration import Orchestration
    from argus.models.agents import ArgusInput, ArgusStatus, EnsureMonitoring, EnsureSchedule

    from .common import QUICK

SUPERVISE_EVERY = timedelta(minutes=5)
DOCGEN_SCHEDULE_ID = "argus-docgen"


@workflow.defn
class ArgusWorkflow:
    def __init__(self) -> None:
        self._pending: ArgusInput | None = None
        self._reloads = 0
        self._last: str | None = None

    @workflow.run
    async def run(self, inp: ArgusInput) -> None:
        self.inp = inp
        while True:
            await self._supervise()
            try:
                await workflow.wait_condition(
                    lambda: self._pending is not None or workflow.info().is_continue_as_new_suggested(),
                    timeout=SUPERVISE_EVERY,
                )
            except TimeoutError:
                pass
            if self._pending is not None:
                self.inp = self._pending.model_copy(update={"generation": self.inp.generation + 1})
                self._pending = None
                self._reloads += 1
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._pending or self.inp)

    async def _supervise(self) -> None:
        policy = self.inp.policy
        if policy.phases.get("monitoring", True):
            for scope in self.inp.scopes:
                try:
                    await workflow.execute_activity_method(
                        Orchestration.ensure_monitoring, EnsureMonitoring(scope=scope, policy=policy), **QUICK
                    )
                except ActivityError as exc:
                    workflow.logger.warning("could not ensure monitoring %s: %s", scope, exc.cause or exc)
        try:
            await workflow.execute_activity_method(
                Orchestration.ensure_schedule,
                EnsureSchedule(
                    schedule_id=DOCGEN_SCHEDULE_ID,
                    cron=policy.docgen_schedule,
                    enabled=policy.phases.get("docgen", True),
                ),
                **QUICK,
            )
        except ActivityError as exc:
            workflow.logger.warning("could not ensure the docgen schedule: %s", exc.cause or exc)
        self._last = workflow.now().isoformat()

    @workflow.signal
    def reload(self, inp: ArgusInput) -> None:
        self._pending = inp

    @workflow.query
    def status(self) -> ArgusStatus:
        return ArgusStatus(
            scopes=self.inp.scopes,
            phases=self.inp.policy.phases,
            generation=self.inp.generation,
            reloads=self._reloads,
            last_supervised=self._last,
        )
