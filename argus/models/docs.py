"""Documents written by the Doc Writer and what the Publisher reports."""

from __future__ import annotations

import base64
from enum import StrEnum

from pydantic import Field

from .common import Model, UtcDateTime


class DocKind(StrEnum):
    POSTMORTEM = "postmortem"
    RUNBOOK = "runbook"
    SOP = "sop"
    SPEC = "spec"
    REPORT = "report"


class Attachment(Model):
    """A file published beside a document (a PNG chart). Base64 so it crosses JSON boundaries."""

    name: str
    content_type: str = "image/png"
    data_b64: str
    caption: str = ""

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)

    @classmethod
    def of(cls, name: str, data: bytes, caption: str = "", content_type: str = "image/png") -> Attachment:
        return cls(
            name=name, content_type=content_type, data_b64=base64.b64encode(data).decode(), caption=caption
        )


class Document(Model):
    kind: DocKind
    slug: str
    title: str
    content: str
    service: str | None = None
    front_matter: dict[str, object] = Field(default_factory=dict)
    owners: list[str] = Field(default_factory=list)
    incident_id: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class PublishResult(Model):
    publisher: str
    location: str
    revision: str = ""
    created: bool = True
    changed: bool = True  # False when the target already held exactly this document
    at: UtcDateTime | None = None
