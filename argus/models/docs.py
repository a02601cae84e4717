"""Documents written by the Doc Writer and what the Publisher reports."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .common import Model, UtcDateTime


class DocKind(StrEnum):
    POSTMORTEM = "postmortem"
    RUNBOOK = "runbook"
    SOP = "sop"
    SPEC = "spec"
    REPORT = "report"


class Document(Model):
    kind: DocKind
    slug: str
    title: str
    content: str
    service: str | None = None
    front_matter: dict[str, object] = Field(default_factory=dict)
    owners: list[str] = Field(default_factory=list)
    incident_id: str | None = None


class PublishResult(Model):
    publisher: str
    location: str
    revision: str = ""
    created: bool = True
    at: UtcDateTime | None = None
