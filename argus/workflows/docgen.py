"""DocGenWorkflow: turns a closed incident into a post-mortem, or (on a Schedule) the
archive into runbooks; optionally waits for a reviewer; publishes; tells the owners.

    aggregate ─► write ─► [review gate: wait for an owner's approval, with reminders] ─►
        publish (retried; kept and retried later if a publisher is down) ─► notify owners
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from argus.activities.aggregator import Aggregator
    from argus.activities.doc_writer import DocWriter
    from argus.activities.notifier import Notifier
    from argus.activities.publisher import Publisher
    from argus.models import ApprovalDecision, DecisionKind, Document, Notification, NotificationKind
    from argus.models.agents import DocGenInput, DocGenResult, PostmortemRequest, RunbookRequest

    from .common import EFFECT, QUICK

REVIEW_REMINDER = timedelta(days=1)
REVIEW_TIMEOUT = timedelta(days=14)
PUBLISH_RETRY_EVERY = timedelta(minutes=30)
PUBLISH_ROUNDS = 48


@workflow.defn
class DocGenWorkflow:
    def __init__(self) -> None:
        self.docs: list[Document] = []
        self.review: ApprovalDecision | None = None
        self.result = DocGenResult()
        self.review_hash = ""
        self.reviewers: list[str] = []
        self.pending: list[str] = []

    @workflow.run
    async def run(self, inp: DocGenInput) -> DocGenResult:
        self.reviewers = inp.reviewers
        insights = await workflow.execute_activity_method(Aggregator.aggregate, inp.incident, **QUICK)
        if inp.incident is not None:
            doc = await workflow.execute_activity_method(
                DocWriter.write_postmortem,
                PostmortemRequest(incident=inp.incident, insights=insights),
                **QUICK,
            )
            self.docs = [doc]
        else:
            batch = await workflow.execute_activity_method(
                DocWriter.write_runbooks, RunbookRequest(insights=insights), **QUICK
            )
            self.docs = batch.documents
        self.result.documents = [d.slug for d in self.docs]
        if not self.docs:
            return self.result

        if inp.review:
            self.review_hash = hashlib.sha256("".join(d.content for d in self.docs).encode()).hexdigest()[:16]
            approved = await self._review_gate()
            if not approved:
                return self.result

        self.pending = [d.slug for d in self.docs]
        for _ in range(PUBLISH_ROUNDS):
            for doc in [d for d in self.docs if d.slug in self.pending]:
                try:
                    results = await workflow.execute_activity_method(Publisher.publish, doc, **EFFECT)
                except ActivityError as exc:
                    workflow.logger.warning(
                        "publishing %s failed, kept for later: %s", doc.slug, exc.cause or exc
                    )
                    continue
                self.pending.remove(doc.slug)
                self.result.published += [f"{r.publisher}:{r.location}" for r in results]
                await self._tell_owners(doc, results[0].location if results else "")
            if not self.pending:
                break
            await workflow.sleep(PUBLISH_RETRY_EVERY)
        return self.result

    async def _review_gate(self) -> bool:
        deadline = workflow.now() + REVIEW_TIMEOUT
        n = 0
        while self.review is None and workflow.now() < deadline:
            await self._ask_review(n)
            n += 1
            try:
                await workflow.wait_condition(lambda: self.review is not None, timeout=REVIEW_REMINDER)
            except TimeoutError:
                continue
        return self.review is not None and self.review.decision == DecisionKind.APPROVE

    async def _ask_review(self, n: int) -> None:
        titles = ", ".join(d.title for d in self.docs)
        try:
            await workflow.execute_activity_method(
                Notifier.notify,
                Notification(
                    key=f"{workflow.info().workflow_id}/review/{n}",
                    kind=NotificationKind.DOCUMENT,
                    subject=("Reminder: " if n else "") + f"Review requested: {titles}",
                    body=f"Approve publication with: argus docs review {workflow.info().workflow_id} "
                    f"--hash {self.review_hash}",
                    recipients=self.reviewers,
                    proposal_hash=self.review_hash,
                ),
                **EFFECT,
            )
        except ActivityError as exc:
            workflow.logger.warning("review request failed: %s", exc.cause or exc)

    async def _tell_owners(self, doc: Document, location: str) -> None:
        try:
            await workflow.execute_activity_method(
                Notifier.notify,
                Notification(
                    key=f"{workflow.info().workflow_id}/published/{doc.slug}",
                    kind=NotificationKind.DOCUMENT,
                    subject=f"New {doc.kind.value} for {doc.service or 'operations'}: {doc.title}",
                    body=f"Published at {location}",
                    recipients=doc.owners,
                    service=doc.service,
                ),
                **EFFECT,
            )
        except ActivityError as exc:
            workflow.logger.warning("owner notification failed: %s", exc.cause or exc)

    @workflow.update
    def submit_review(self, d: ApprovalDecision) -> str:
        self.review = d.model_copy(update={"at": workflow.now()})
        return f"{d.decision.value}d by {d.approver}"

    @submit_review.validator
    def _validate_review(self, d: ApprovalDecision) -> None:
        if not self.review_hash:
            raise ValueError("these documents are not waiting for review")
        if self.review is not None:
            raise ValueError(f"already reviewed by {self.review.approver}")
        if d.proposal_hash != self.review_hash:
            raise ValueError(f"stale review: documents changed (current hash {self.review_hash})")
        if self.reviewers and d.approver not in self.reviewers:
            raise ValueError(f"{d.approver} is not a reviewer of these documents")

    @workflow.query
    def documents(self) -> list[Document]:
        return self.docs

    @workflow.query
    def progress(self) -> DocGenResult:
        return self.result
