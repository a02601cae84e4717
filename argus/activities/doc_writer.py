"""Doc Writer: renders post-mortems, runbooks, SOPs and service specs from Jinja2 templates.

Templates live in `argus/templates/docs/`; a team overrides any of them by putting a file of
the same name in its own templates directory (`docs.templates_dir`). A template that fails to
render is a non-retryable error naming the template and line; the incident is not affected
(DocGen runs after it closed, as a workflow of its own).

- Post-mortem: the timeline comes from the incident workflow's real Temporal history (alerts,
  decisions, approvals, actions, verification), with PNG charts of the key metrics.
- Runbook: a recurring cluster with a playbook that fixed it. Its front matter (`match`,
  `playbook`, `params`) is what the Recommender and Executor read back.
- SOP: a recurring cluster no playbook has fixed yet: the manual procedure.
- Spec: per service — dependencies, SLIs/SLOs, owners, linked runbooks, incident history.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.base import MetricsSource
from argus.models import DocKind, Document, IncidentState, Playbook, TimelineEntry
from argus.models.agents import Cluster, DocumentBatch, Insights, PostmortemRequest, RunbookRequest
from argus.models.config import ServiceConfig

from .doc_charts import incident_charts
from .incident_history import fetch_events, timeline_from_events

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "docs"
MIN_RECURRING = 2  # incidents in a cluster before a runbook or SOP is written for it


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "document"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _cell(value: object) -> str:
    """Safe inside a Markdown table cell."""
    return str(value).replace("|", "/").replace("\n", " ")


class DocWriter:
    def __init__(
        self,
        services: list[ServiceConfig],
        override_dir: Path | None = None,
        *,
        playbooks: list[Playbook] | None = None,
        metrics: MetricsSource | None = None,
        chart_metrics: dict[str, str] | None = None,
        existing_docs: Any = None,  # GitDocsRepo: runbooks already published, linked from specs
    ) -> None:
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
        self.env.filters["cell"] = _cell
        self.services = {s.name: s for s in services}
        self.playbooks = {p.name: p for p in playbooks or []}
        self.metrics = metrics
        self.chart_metrics = chart_metrics or {}
        self.existing_docs = existing_docs

    # --- rendering ---------------------------------------------------------------------------
    def render(self, template: str, **ctx: object) -> str:
        try:
            tpl = self.env.get_template(template)
        except jinja2.TemplateSyntaxError as exc:
            raise ApplicationError(
                f"template {exc.filename or exc.name or template} line {exc.lineno}: {exc.message}",
                type="TemplateError",
                non_retryable=True,
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise ApplicationError(
                f"template {template} not found in {[str(p) for p in self._dirs()]}",
                type="TemplateError",
                non_retryable=True,
            ) from exc
        try:
            return tpl.render(**ctx)
        except Exception as exc:  # any render failure: name the file and the line, never retry
            line = template_line(exc, tpl.filename or template)
            raise ApplicationError(
                f"template {tpl.filename or template}{f' line {line}' if line else ''}: "
                f"{type(exc).__name__}: {exc}",
                type="TemplateError",
                non_retryable=True,
            ) from exc

    def _dirs(self) -> list[str]:
        loader = self.env.loader
        assert isinstance(loader, jinja2.ChoiceLoader)
        return [
            p for sub in loader.loaders if isinstance(sub, jinja2.FileSystemLoader) for p in sub.searchpath
        ]

    def owners(self, service: str | None) -> list[str]:
        cfg = self.services.get(service or "")
        return list(cfg.owners) if cfg else []

    # --- post-mortem -------------------------------------------------------------------------
    def postmortem(
        self,
        req: PostmortemRequest,
        timeline: list[TimelineEntry] | None = None,
        timeline_source: str = "incident record",
        charts: list | None = None,
        chart_problems: list[str] | None = None,
    ) -> Document:
        s = req.incident
        number = s.number or s.incident_id
        slug = slugify(f"{number}-{s.title}")
        first = min((a.starts_at for a in s.alerts), default=s.opened_at)
        end = s.resolved_at or s.closed_at
        facts = {
            "detected_after": (s.opened_at - first).total_seconds(),
            "acknowledged_after": (s.acknowledged_at - s.opened_at).total_seconds()
            if s.acknowledged_at
            else None,
            "resolved_after": (end - first).total_seconds() if end else None,
            "open_for": (s.closed_at - s.opened_at).total_seconds() if s.closed_at else None,
            "affected": sorted({a.service for a in s.alerts}) or [s.service],
        }
        went_well, went_badly, follow_ups = assess(s, req.insights)
        content = self.render(
            "postmortem.md.j2",
            incident=s,
            insights=req.insights,
            duration=facts["open_for"],
            facts=facts,
            timeline=timeline if timeline is not None else s.timeline,
            timeline_source=timeline_source,
            charts=charts or [],
            chart_problems=chart_problems or [],
            went_well=went_well,
            went_badly=went_badly,
            follow_ups=follow_ups,
            playbook=self.playbooks.get(s.proposal.playbook) if s.proposal else None,
        )
        return Document(
            kind=DocKind.POSTMORTEM,
            slug=slug,
            title=f"Post-mortem {number}: {s.title}",
            content=content,
            service=s.service,
            owners=self.owners(s.service),
            incident_id=s.incident_id,
            front_matter={
                "incident": number,
                "outcome": s.outcome.value,
                "status": "draft",
                "cluster": req.insights.focus_cluster,
                "backfill": s.backfill,
            },
            attachments=list(charts or []),
        )

    async def postmortem_with_history(self, req: PostmortemRequest) -> Document:
        s = req.incident
        number = s.number or s.incident_id
        timeline, source = None, "incident record (no workflow history)"
        if req.history:
            try:
                events = await fetch_events(activity.client(), s.incident_id, req.run_id or None)
                timeline = timeline_from_events(events)
                source = f"Temporal workflow history of {s.incident_id}"
            except Exception as exc:  # retention may have removed it: fall back to the record
                activity.logger.warning("history of %s unavailable: %s", s.incident_id, exc)
                source = f"incident record (workflow history unavailable: {type(exc).__name__})"
        charts, problems = await incident_charts(
            self.metrics, self.chart_metrics, s, slugify(f"{number}-{s.title}")
        )
        return self.postmortem(req, timeline, source, charts, problems)

    # --- runbooks, SOPs, specs -----------------------------------------------------------------
    def recurring(self, insights: Insights) -> list[Cluster]:
        return [c for c in insights.clusters if len(c.incidents) >= MIN_RECURRING]

    def runbook(self, c: Cluster, insights: Insights) -> Document:
        pb = self.playbooks.get(c.fix) if c.fix else None
        kind = DocKind.RUNBOOK if c.fix else DocKind.SOP
        failed = sorted(p for p, t in c.fixes.items() if t.fixed == 0 and p != c.fix)
        params = {"service": c.service} if pb is None or "service" in pb.parameters else {}
        content = self.render(
            "runbook.md.j2" if c.fix else "sop.md.j2",
            cluster=c,
            insights=insights,
            playbook=pb,
            params=params,
            failed=failed,
            owners=self.owners(c.service),
            service=self.services.get(c.service),
        )
        front: dict[str, object] = {
            "match": {"services": [c.service], "signatures": c.signature.split("+"), "labels": c.labels},
            "playbook": c.fix or None,
            "params": params,
            "cluster": c.key,
            "incidents": c.incidents,
            "success": {p: {"fixed": t.fixed, "runs": t.runs} for p, t in sorted(c.fixes.items())},
            "avoid": failed,
        }
        what = "Runbook" if c.fix else "SOP"
        return Document(
            kind=kind,
            slug=slugify(f"{c.service}-{c.signature}"),
            title=f"{what}: {c.signature} on {c.service}",
            content=content,
            service=c.service,
            owners=self.owners(c.service),
            front_matter=front,
        )

    def runbooks(self, req: RunbookRequest) -> list[Document]:
        docs: dict[str, Document] = {}
        for c in self.recurring(req.insights):
            doc = self.runbook(c, req.insights)
            # Two clusters of one service and signature share a slug: the bigger (first) wins.
            docs.setdefault(doc.slug, doc)
        return list(docs.values())

    def spec(self, service: str, insights: Insights, runbooks: list[dict]) -> Document:
        cfg = self.services.get(service)
        dependents = sorted(s.name for s in self.services.values() if service in s.depends_on)
        stats = next((x for x in insights.services if x.service == service), None)
        clusters = [c for c in insights.clusters if c.service == service or service in c.affected]
        hotspots = [h for h in insights.hotspots if h.service == service]
        content = self.render(
            "spec.md.j2",
            service=service,
            config=cfg,
            dependents=dependents,
            stats=stats,
            clusters=clusters,
            hotspots=hotspots,
            runbooks=runbooks,
            owners=self.owners(service),
        )
        return Document(
            kind=DocKind.SPEC,
            slug=slugify(service),
            title=f"Service spec: {service}",
            content=content,
            service=service,
            owners=self.owners(service),
            front_matter={
                "depends_on": list(cfg.depends_on) if cfg else [],
                "tier": cfg.tier if cfg else "",
                "runbooks": [r["path"] for r in runbooks],
            },
        )

    def specs(self, req: RunbookRequest) -> list[Document]:
        written = self.runbooks(req)
        linked: dict[str, dict[str, dict]] = {}
        for d in written:
            path = f"{d.kind.value}s/{d.slug}.md"
            linked.setdefault(d.service or "", {})[path] = {"title": d.title, "path": path}
        if self.existing_docs is not None:
            for rel, front, _ in self.existing_docs.documents():
                if front.get("kind") in ("runbook", "sop") and front.get("service"):
                    linked.setdefault(str(front["service"]), {}).setdefault(
                        rel, {"title": str(front.get("title", rel)), "path": rel}
                    )
        names = list(self.services) + [
            s.service for s in req.insights.services if s.service not in self.services
        ]
        return [
            self.spec(n, req.insights, sorted(linked.get(n, {}).values(), key=lambda r: r["path"]))
            for n in names
        ]

    # --- activities ----------------------------------------------------------------------------
    @activity.defn(name="write_postmortem")
    async def write_postmortem(self, req: PostmortemRequest) -> Document:
        return await self.postmortem_with_history(req)

    @activity.defn(name="write_runbooks")
    async def write_runbooks(self, req: RunbookRequest) -> DocumentBatch:
        return DocumentBatch(documents=self.runbooks(req))

    @activity.defn(name="write_service_specs")
    async def write_service_specs(self, req: RunbookRequest) -> DocumentBatch:
        return DocumentBatch(documents=self.specs(req))


def assess(s: IncidentState, insights: Insights) -> tuple[list[str], list[str], list[str]]:
    """What went well, what went badly and the follow-ups, from what the record shows."""
    well: list[str] = []
    badly: list[str] = []
    follow: list[str] = []
    first = min((a.starts_at for a in s.alerts), default=s.opened_at)
    detect = (s.opened_at - first).total_seconds()
    top = s.rca.top if s.rca else None
    if s.outcome.value == "fixed":
        well.append(
            f"Playbook `{s.proposal.playbook if s.proposal else '?'}` fixed the symptom and recovery was "
            "verified on the metrics."
        )
    elif s.outcome.value in ("not_fixed", "rolled_back"):
        badly.append(f"The remediation did not resolve the incident ({s.outcome.value}).")
        follow.append("Find the fix that works and record it, so the next proposal is the right one.")
    elif s.outcome.value == "fixed_by_other":
        badly.append("ARGUS's proposal did not resolve the incident; it recovered by other means.")
    if detect <= 120:
        well.append(f"Detected {_duration(detect)} after the first alert fired.")
    else:
        badly.append(f"Detection took {_duration(detect)} after the first alert fired.")
        follow.append("Tighten alert rules or `for:` durations so this is caught sooner.")
    if s.acknowledged_at:
        ack = (s.acknowledged_at - s.opened_at).total_seconds()
        (well if ack <= 900 else badly).append(f"Acknowledged by {s.acknowledged_by} after {_duration(ack)}.")
    if s.escalation_level > 0:
        badly.append(f"Nobody answered at first: escalated {s.escalation_level} level(s).")
        follow.append("Review the on-call rotation and escalation targets.")
    if s.decision and s.decision.decision.value == "reject":
        badly.append(
            f"The proposal was rejected by {s.decision.approver}: {s.decision.comment or 'no reason given'}."
        )
    if top:
        well.append(
            f"RCA pointed at {top.service} ({top.confidence:.0%}) "
            f"with {len(top.evidence)} piece(s) of evidence."
        )
        follow.append(
            f"Find why {top.service} showed `{top.fault_signature or 'this fault'}` and prevent it."
        )
    else:
        badly.append("No root cause was found automatically.")
        follow.append("Add the metrics or logs that would have shown the root cause.")
    failed_actions = [a for a in s.actions if a.status.value in ("failed", "refused")]
    if failed_actions:
        badly.append(
            f"{len(failed_actions)} action step(s) failed: " + ", ".join(a.step for a in failed_actions)
        )
    if insights.similar:
        badly.append(f"This has happened before: {', '.join(insights.similar[:5])}.")
        follow.append(
            f"Recurring ({len(insights.similar) + 1} incidents in {insights.focus_cluster}): fix it for good."
        )
    return well, badly, follow


def template_line(exc: BaseException, filename: str) -> int | None:
    """The template line a render error happened on (Jinja maps template frames to its lines)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == filename or name.endswith("/" + Path(filename).name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
