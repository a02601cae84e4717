"""DocGenWorkflow: turns a closed incident into a post-mortem, or (on a Schedule) the archive
into runbooks, SOPs and service specs; optionally waits for a reviewer; publishes; tells owners.

    aggregate ─► write (post-mortem from the incident's workflow history | runbooks + specs +
        documents kept from earlier failed publishing) ─► [review gate: wait durably for an
        owner's approval, with reminders] ─► publish (retried; a publisher that stays down is
        reported and the document kept and retried later) ─► notify owners

A template that fails to render fails this workflow with the template and line in the error;
the incident it documents closed before and is not affected.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from argus.activities.aggregator import Aggregator
    from argus.activities.doc_writer import DocWriter
    from argus.activities.notifier import Notifier
    from argus.activities.publisher import Publisher
    from argus.models import ApprovalDecision, DecisionKind, Document, Notification, NotificationKind
    from argus.models.agents import (
        DocGenInput,
        DocGenResult,
        PostmortemRequest,
        PublishOutcome,
        PublishRequest,
        RunbookRequest,
    )

    from .common import EFFECT, QUICK

REVIEW_REMINDER = timedelta(days=1)
REVIEW_TIMEOUT = timedelta(days=14)
PUBLISH_RETRY_EVERY = timedelta(minutes=30)
PUBLISH_ROUNDS = 48  # a day of rounds; after that the next scheduled run picks the document up
WRITE = {**QUICK, "start_to_close_timeout": timedelta(minutes=3)}


def _cause(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
    return getattr(cause, "message", None) or str(cause) or type(cause).__name__


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
        insights = await workflow.execute_activity_method(Aggregator.aggregate, inp.incident, **QUICK)
        try:
            if inp.incident is not None:
                doc = await workflow.execute_activity_method(
                    DocWriter.write_postmortem,
                    PostmortemRequest(
                        incident=inp.incident, insights=insights, run_id=inp.run_id, history=inp.history
                    ),
                    **WRITE,
                )
                self.docs = [doc]
            else:
                req = RunbookRequest(insights=insights)
                batch = await workflow.execute_activity_method(DocWriter.write_runbooks, req, **WRITE)
                self.docs = list(batch.documents)
                if inp.specs:
                    specs = await workflow.execute_activity_method(
                        DocWriter.write_service_specs, req, **WRITE
                    )
                    self.docs += specs.documents
                kept = await workflow.execute_activity_method(Publisher.pending_documents, **QUICK)
                fresh = {(d.kind, d.slug) for d in self.docs}
                self.docs += [d for d in kept.documents if (d.kind, d.slug) not in fresh]
        except ActivityError as exc:
            what = (
                f"post-mortem of {inp.incident.number or inp.incident.incident_id}"
                if inp.incident
                else "documents"
            )
            raise ApplicationError(f"{what} not written: {_cause(exc)}", type="DocumentNotWritten") from exc
        self.result.documents = [d.slug for d in self.docs]
        if not self.docs:
            return self.result

        if inp.review:
            self.reviewers = list(inp.reviewers) or sorted({o for d in self.docs for o in d.owners})
            self.review_hash = hashlib.sha256("\x00".join(d.content for d in self.docs).encode()).hexdigest()[
                :16
            ]
            self.result.review = await self._review_gate()
            if self.result.review != "approved":
                return self.result

        await self._publish()
        return self.result

    async def _publish(self) -> None:
        self.pending = [d.slug for d in self.docs]
        reported: set[str] = set()
        for round_ in range(PUBLISH_ROUNDS):
            for doc in [d for d in self.docs if d.slug in self.pending]:
                key = f"{workflow.info().workflow_id}/publish/{doc.kind.value}/{doc.slug}"
                try:
                    out: PublishOutcome = await workflow.execute_activity_method(
                        Publisher.publish, PublishRequest(document=doc, key=key), **EFFECT
                    )
                except ActivityError as exc:
                    why = _cause(exc)
                    workflow.logger.warning("publishing %s failed, kept for later: %s", doc.slug, why)
                    if doc.slug not in reported:
                        reported.add(doc.slug)
                        self.result.failed.append(f"{doc.slug}: {why}")
                        await self._tell(
                            doc,
                            f"publish-failed/{doc.slug}",
                            f"Publishing failed, will retry: {doc.title}",
                            f"{why}\nThe document is kept and retried every {PUBLISH_RETRY_EVERY}.",
                        )
                    continue
                self.pending.remove(doc.slug)
                self.result.published += [f"{r.publisher}:{r.location}" for r in out.results]
                if out.failed:  # refused for good (e.g. a wrong space): kept, and said so
                    self.result.failed.append(
                        f"{doc.slug}: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items())
                    )
                if any(r.created or (r.changed and r.publisher == "git") for r in out.results):
                    where = next((r.location for r in out.results), "")
                    await self._tell(
                        doc,
                        f"published/{doc.slug}",
                        f"New {doc.kind.value} for {doc.service or 'operations'}: {doc.title}",
                        f"Published at {where}"
                        + "".join(f"\n- {r.publisher}: {r.location}" for r in out.results),
                    )
            if not self.pending:
                return
            if round_ + 1 < PUBLISH_ROUNDS:
                await workflow.sleep(PUBLISH_RETRY_EVERY)

    async def _review_gate(self) -> str:
        deadline = workflow.now() + REVIEW_TIMEOUT
        n = 0
        while self.review is None and workflow.now() < deadline:
            await self._ask_review(n)
            n += 1
            try:
                await workflow.wait_condition(
                    lambda: self.review is not None,
                    timeout=min(REVIEW_REMINDER, deadline - workflow.now()),
                    timeout_summary="waiting for document review",
                )
            except TimeoutError:
                continue
        if self.review is None:
            return "expired"
        return "approved" if self.review.decision == DecisionKind.APPROVE else "rejected"

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
            workflow.logger.warning("review request failed: %s", _cause(exc))

    async def _tell(self, doc: Document, step: str, subject: str, body: str) -> None:
        try:
            await workflow.execute_activity_method(
                Notifier.notify,
                Notification(
                    key=f"{workflow.info().workflow_id}/{step}",
                    kind=NotificationKind.DOCUMENT,
                    subject=subject,
                    body=body,
                    recipients=doc.owners,
                    service=doc.service,
                ),
                **EFFECT,
            )
        except ActivityError as exc:
            workflow.logger.warning("owner notification failed: %s", _cause(exc))

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
        if self.reviewers and d.approver not in self.reviewers and not set(d.groups) & set(self.reviewers):
            raise ValueError(
                f"{d.approver} is not a reviewer of these documents ({', '.join(self.reviewers)})"
            )

    @workflow.query
    def documents(self) -> list[Document]:
        return self.docs

    @workflow.query
    def progress(self) -> DocGenResult:
        return self.result

    @workflow.query
    def review_request(self) -> dict[str, object]:
        return {"hash": self.review_hash, "reviewers": self.reviewers, "titles": [d.title for d in self.docs]}
