"""Doc Writer: renders post-mortems, runbooks and service specs from Jinja2 templates.

Templates live in `argus/templates/docs/`; a team overrides any of them by putting a file
of the same name in its own templates directory. A template that fails to render is a
non-retryable error naming the template and line; the incident itself is not affected.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.models import DocKind, Document
from argus.models.agents import DocumentBatch, PostmortemRequest, RunbookRequest
from argus.models.config import ServiceConfig

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "docs"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "document"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class DocWriter:
    def __init__(self, services: list[ServiceConfig], override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.FileSystemLoader(str(DEFAULT_TEMPLATES)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["duration"] = _duration
        self.services = {s.name: s for s in services}

    def render(self, template: str, **ctx: object) -> str:
        try:
            return self.env.get_template(template).render(**ctx)
        except jinja2.TemplateSyntaxError as exc:
            raise ApplicationError(
                f"template {exc.filename or template} line {exc.lineno}: {exc.message}",
                type="TemplateError",
                non_retryable=True,
            ) from exc
        except jinja2.TemplateError as exc:
            line = _template_line(exc, template)
            raise ApplicationError(
                f"template {template}{f' line {line}' if line else ''}: {exc}",
                type="TemplateError",
                non_retryable=True,
            ) from exc

    def postmortem(self, req: PostmortemRequest) -> Document:
        s = req.incident
        duration = (s.closed_at - s.opened_at).total_seconds() if s.closed_at else None
        owners = self.services[s.service].owners if s.service in self.services else []
        content = self.render("postmortem.md.j2", incident=s, insights=req.insights, duration=duration)
        number = s.number or s.incident_id
        return Document(
            kind=DocKind.POSTMORTEM,
            slug=slugify(f"{number}-{s.title}"),
            title=f"Post-mortem {number}: {s.title}",
            content=content,
            service=s.service,
            owners=owners,
            incident_id=s.incident_id,
            front_matter={"incident": number, "outcome": s.outcome.value, "status": "draft"},
        )

    def runbooks(self, req: RunbookRequest) -> list[Document]:
        docs = []
        for c in req.insights.clusters:
            if len(c.incidents) < 2 or not c.fix:
                continue  # a runbook is written for what recurs and has a known fix
            owners = self.services[c.service].owners if c.service in self.services else []
            content = self.render("runbook.md.j2", cluster=c, insights=req.insights)
            docs.append(
                Document(
                    kind=DocKind.RUNBOOK,
                    slug=slugify(f"{c.service}-{c.signature}"),
                    title=f"Runbook: {c.signature} on {c.service}",
                    content=content,
                    service=c.service,
                    owners=owners,
                    front_matter={
                        "match": {"services": [c.service], "signatures": [c.signature]},
                        "playbook": c.fix,
                        "incidents": c.incidents,
                    },
                )
            )
        return docs

    @activity.defn(name="write_postmortem")
    async def write_postmortem(self, req: PostmortemRequest) -> Document:
        return self.postmortem(req)

    @activity.defn(name="write_runbooks")
    async def write_runbooks(self, req: RunbookRequest) -> DocumentBatch:
        return DocumentBatch(documents=self.runbooks(req))


def _template_line(exc: Exception, template: str) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(template) or "template" in tb.tb_frame.f_code.co_name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
