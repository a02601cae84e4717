"""Publisher: puts documents where people read them (git by default; Confluence and
ServiceNow Knowledge when configured) and tells the owners."""

from __future__ import annotations

from temporalio import activity

from argus.integrations.base import Publisher as PublisherTarget
from argus.models import Document, PublishResult

from .errors import call_integration


class Publisher:
    def __init__(self, targets: list[PublisherTarget]) -> None:
        self.targets = targets

    @activity.defn(name="publish_document")
    async def publish(self, document: Document) -> list[PublishResult]:
        results = []
        for target in self.targets:
            results.append(await call_integration("Publish", target.publish, document))
        return results
