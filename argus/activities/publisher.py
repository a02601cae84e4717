"""Publisher: puts documents where people read them — the git documents repository always,
Confluence and ServiceNow Knowledge when configured — and keeps what could not be published.

Every target creates or updates in place (same slug / title / marker), so a retry or a rerun
never makes a duplicate. Targets are tried independently: one that is down fails the activity
(so Temporal retries it; the others just update to the same content), and the document is kept
in the pending store until every target has it.
"""

from __future__ import annotations

import asyncio
import re

from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.base import Publisher as PublisherTarget
from argus.integrations.pending_docs import PendingDocuments
from argus.models import Document
from argus.models.agents import PendingDocuments as PendingBatch
from argus.models.agents import PublishOutcome, PublishRequest

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def for_vendor(document: Document, repo_folder: str) -> Document:
    """Vendor pages get the text; charts live in the git repository, so each image becomes a note."""
    names = {a.name for a in document.attachments}
    if not names:
        return document

    def swap(m: re.Match[str]) -> str:
        if m.group(2) not in names:
            return m.group(0)
        return (
            f"*Chart: {m.group(1) or m.group(2)} — `{repo_folder}/{m.group(2)}` in the documents repository.*"
        )

    return document.model_copy(update={"content": _IMAGE.sub(swap, document.content), "attachments": []})


class Publisher:
    def __init__(self, targets: list[PublisherTarget], pending: PendingDocuments | None = None) -> None:
        self.targets = targets
        self.pending = pending

    async def publish_all(self, document: Document) -> PublishOutcome:
        outcome = PublishOutcome()
        folder = f"{document.kind.value}s"
        retryable: list[str] = []
        for target in self.targets:
            doc = document if target.name == "git" else for_vendor(document, folder)
            try:
                outcome.results.append(await asyncio.to_thread(target.publish, doc))
            except PermanentError as exc:
                outcome.failed[target.name] = f"refused: {exc}"
            except IntegrationError as exc:
                outcome.failed[target.name] = str(exc)
                retryable.append(target.name)
        if self.pending is not None:
            if outcome.failed:
                await asyncio.to_thread(self.pending.keep, document, outcome.failed)
            else:
                await asyncio.to_thread(self.pending.drop, document)
        if retryable:
            # Temporal retries the activity; targets that already have the document are unchanged.
            raise ApplicationError(
                "; ".join(f"{n}: {outcome.failed[n]}" for n in retryable), type="PublishUnavailable"
            )
        return outcome

    @activity.defn(name="publish_document")
    async def publish(self, req: PublishRequest) -> PublishOutcome:
        return await self.publish_all(req.document)

    @activity.defn(name="pending_documents")
    async def pending_documents(self) -> PendingBatch:
        if self.pending is None:
            return PendingBatch()
        docs, problems = await asyncio.to_thread(self.pending.all)
        for p in problems:
            activity.logger.warning(p)
        return PendingBatch(documents=[d for d, _ in docs])
