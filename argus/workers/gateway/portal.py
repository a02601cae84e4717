"""The internal portal: incidents, an incident's page (timeline, RCA with evidence, proposal,
approve/reject, tickets, traces), silences, on-call now, heartbeats, the published documents
and, for admins, the audit log. Server-rendered (Jinja2), no front-end build.

Every page needs a signed-in person (a session: API token or OIDC, or a name when auth is off);
the gatekeeper middleware enforces roles. Every form carries the session's CSRF token and is
refused without it; every action redirects back with a message (post/redirect/get).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from argus.integrations.git_docs import GitDocsRepo, split_front_matter
from argus.integrations.normalizers.common import problems_from
from argus.integrations.oncall import Directory, OnCallError
from argus.models import (
    Acknowledge,
    CommentSignal,
    DecisionKind,
    IncidentStatus,
    Matcher,
    ResolveSignal,
    SilenceRequest,
    SilenceUpdate,
    parse_duration,
    parse_moment,
)
from argus.models.security import Principal

from ..settings import state_dir
from ..vendors import build_directory
from ..wiring import resolve_path
from . import incident_views as views
from .auth import auth_service
from .context import GatewayContext, GatewayError
from .heartbeats import statuses
from .pages import markdown, principal_of, render
from .traces import span_view, trace_store_of

SEVERITIES = ["critical", "error", "warning", "info"]
DOC_KINDS = ["postmortem", "runbook", "sop", "spec"]


def _back(path: str, flash: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'flash': flash})}", status_code=303)


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(prefix="/portal", tags=["portal"], include_in_schema=False)
    cfg = ctx.config
    svc = auth_service(ctx)

    def person(request: Request) -> Principal | None:
        """The signed-in person; None sends them to sign in (an anonymous caller is nobody)."""
        p = principal_of(request)
        return p if p is not None and p.via not in ("anonymous", "webhook") else None

    def sign_in(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/portal/login?next={quote(request.url.path)}", status_code=303)

    async def form_of(request: Request) -> dict[str, str]:
        """The form, once its CSRF token matched the session's; else 403 and nothing happens."""
        form = await request.form()
        expected = getattr(request.state, "session_csrf", None)
        from ..auth.service import csrf_ok

        if person(request) is None or not csrf_ok(expected, str(form.get("csrf", ""))):
            raise GatewayError(403, "missing or wrong CSRF token: reload the page and try again")
        return {k: str(v) for k, v in form.items()}

    def docs_repo() -> GitDocsRepo:
        repo = ctx.extras.get("docs_repo")
        if repo is None:
            repo = GitDocsRepo(resolve_path(state_dir(cfg), cfg.docs.repo), branch=cfg.docs.branch)
            ctx.extras["docs_repo"] = repo
        return repo

    # --- incidents -------------------------------------------------------------------------------
    @r.get("", response_class=HTMLResponse)
    @r.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        return RedirectResponse("/portal/incidents", status_code=303)

    @r.get("/incidents", response_class=HTMLResponse)
    async def incidents(
        request: Request, service: str = "", severity: str = "", status: str = "", limit: int = 100
    ) -> Response:
        if person(request) is None:
            return sign_in(request)
        rows, note = await views.list_incidents(ctx, service or None, severity or None, status or None, limit)
        return render(
            request,
            "incidents.html.j2",
            rows=rows,
            note=note,
            f_service=service,
            f_severity=severity,
            f_status=status,
            severities=SEVERITIES,
            statuses=[s.value for s in IncidentStatus],
            services=sorted({s.name for s in cfg.services}),
        )

    @r.get("/incidents/{ident}", response_class=HTMLResponse)
    async def incident(request: Request, ident: str) -> Response:
        if person(request) is None:
            return sign_in(request)
        state, live = await views.get_incident(ctx, ident)
        link = cfg.traces.link_template
        trace_links = [
            (t, link.format(trace_id=t) if link else f"/portal/traces/{t}")
            for t in (state.rca.trace_ids if state.rca else [])
        ]
        return render(
            request,
            "incident.html.j2",
            s=state,
            live=live,
            awaiting=live and state.status == IncidentStatus.AWAITING_APPROVAL and state.decision is None,
            request_id=uuid.uuid4().hex,
            trace_links=trace_links,
            trace_link=link,
        )

    async def _decide(request: Request, ident: str, decision: DecisionKind) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        result = await views.decide(
            ctx,
            ident,
            who,
            decision,
            form.get("proposal_hash", ""),
            form.get("comment", ""),
            f"portal-{form.get('request_id') or uuid.uuid4().hex}",
            "portal",
        )
        request.state.audit_target = ident
        request.state.audit_detail = f"{decision.value} proposal {form.get('proposal_hash', '')}: {result}"
        return _back(f"/portal/incidents/{ident}", f"{ident}: {result}")

    @r.post("/incidents/{ident}/approve")
    async def approve(request: Request, ident: str) -> Response:
        return await _decide(request, ident, DecisionKind.APPROVE)

    @r.post("/incidents/{ident}/reject")
    async def reject(request: Request, ident: str) -> Response:
        return await _decide(request, ident, DecisionKind.REJECT)

    @r.post("/incidents/{ident}/ack")
    async def ack(request: Request, ident: str) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        await views.signal(
            ctx, ident, "acknowledge", Acknowledge(by=who.user, comment=form.get("comment", ""), via="portal")
        )
        request.state.audit_target = ident
        return _back(f"/portal/incidents/{ident}", "acknowledged")

    @r.post("/incidents/{ident}/comment")
    async def comment(request: Request, ident: str) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        text = form.get("text", "").strip()
        if not text:
            return _back(f"/portal/incidents/{ident}", "a comment needs text")
        await views.signal(ctx, ident, "comment", CommentSignal(by=who.user, text=text[:4000], via="portal"))
        request.state.audit_target = ident
        request.state.audit_detail = text[:200]
        return _back(f"/portal/incidents/{ident}", "comment added")

    @r.post("/incidents/{ident}/resolve")
    async def resolve(request: Request, ident: str) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        await views.signal(
            ctx, ident, "resolve", ResolveSignal(by=who.user, reason=form.get("reason", ""), via="portal")
        )
        request.state.audit_target = ident
        return _back(f"/portal/incidents/{ident}", "resolve requested")

    # --- silences --------------------------------------------------------------------------------
    @r.get("/silences", response_class=HTMLResponse)
    async def silence_list(request: Request, scope: str = "default") -> Response:
        if person(request) is None:
            return sign_in(request)
        now = datetime.now(UTC)
        try:
            items, note = await views.silences(ctx, scope), ""
        except GatewayError as exc:
            items, note = [], exc.detail["error"]
        rows = [(s, s.state(now).value) for s in items]
        return render(request, "silences.html.j2", rows=rows, note=note, scope=scope)

    @r.post("/silences")
    async def silence_add(request: Request) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        scope = form.get("scope", "default") or "default"
        try:
            matchers = [Matcher.parse(m) for m in form.get("matchers", "").split() if m]
            if not matchers:
                raise ValueError("give at least one matcher, e.g. service=payments")
            starts = form.get("starts", "").strip()
            req = SilenceRequest(
                matchers=matchers,
                duration=parse_duration(form.get("duration", "1h")),
                starts_at=starts or None,  # RFC 3339; validated (and named) by the model
                created_by=who.user,
                comment=form.get("comment", ""),
                request_id=form.get("request_id") or uuid.uuid4().hex[:12],
            )
        except (ValueError, ValidationError) as exc:
            problems = problems_from(exc) if isinstance(exc, ValidationError) else [str(exc)]
            return _back("/portal/silences", "silence refused: " + "; ".join(problems))
        s = await views.add_silence(ctx, scope, req)
        request.state.audit_target = f"silence {s.id}"
        request.state.audit_detail = ", ".join(map(str, s.matchers))
        return _back(
            "/portal/silences",
            f"silence {s.id} from {s.starts_at:%Y-%m-%d %H:%M} until {s.ends_at:%Y-%m-%d %H:%M} UTC",
        )

    @r.post("/silences/{silence_id}/update")
    async def silence_update(request: Request, silence_id: str) -> Response:
        """A new end and comment; the matchers and start stay, so Alertmanager's rules change it
        in place (same id) while it has not expired."""
        form = await form_of(request)
        who = person(request)
        assert who is not None
        scope = form.get("scope", "default") or "default"
        try:
            prev = await views.silence(ctx, scope, silence_id)
            until = form.get("until", "").strip()
            try:
                ends = parse_moment(until, datetime.now(UTC)) if until else None
            except ValueError as exc:
                raise GatewayError(422, f"until: {exc}") from exc
            try:
                change = prev.changed(
                    by=who.user, request_id=uuid.uuid4().hex[:12], ends_at=ends, comment=form.get("comment")
                )
            except (ValueError, ValidationError) as exc:
                problems = problems_from(exc) if isinstance(exc, ValidationError) else [str(exc)]
                raise GatewayError(422, "; ".join(problems)) from exc
            s = await views.update_silence(ctx, scope, SilenceUpdate(silence_id=silence_id, change=change))
        except GatewayError as exc:
            text = exc.detail["error"]
            return _back(
                "/portal/silences", text if text.startswith("silence refused") else f"silence refused: {text}"
            )
        request.state.audit_target = f"silence {s.id}"
        if s.id != silence_id:
            request.state.audit_detail = f"replaces {silence_id}"
            return _back(
                "/portal/silences",
                f"silence {silence_id} expired; {s.id} replaces it until {s.ends_at:%Y-%m-%d %H:%M} UTC",
            )
        return _back("/portal/silences", f"silence {s.id} now until {s.ends_at:%Y-%m-%d %H:%M} UTC")

    @r.post("/silences/{silence_id}/expire")
    async def silence_expire(request: Request, silence_id: str) -> Response:
        form = await form_of(request)
        who = person(request)
        assert who is not None
        s = await views.expire_silence(ctx, form.get("scope", "default") or "default", silence_id, who.user)
        request.state.audit_target = f"silence {s.id}"
        return _back("/portal/silences", f"silence {s.id} expired")

    # --- on call, heartbeats ---------------------------------------------------------------------
    @r.get("/oncall", response_class=HTMLResponse)
    async def oncall(request: Request) -> Response:
        if person(request) is None:
            return sign_in(request)
        now = datetime.now(UTC)
        directory: Directory = ctx.extras.get("directory") or build_directory(cfg, state_dir(cfg))
        ctx.extras["directory"] = directory
        schedules = []
        for name in sorted(directory.schedules):
            try:
                schedules.append(directory.on_call(name, now))
            except OnCallError as exc:
                schedules.append(exc)
        levels = []
        esc = cfg.policy.escalation
        shown = list(esc.levels)  # a receiver's own levels, named after it
        shown += [
            lvl.model_copy(update={"name": f"{r}: {lvl.name}"})
            for r, ls in esc.receivers.items()
            for lvl in ls
        ]
        for lvl in shown:
            try:
                who = directory.resolve(lvl.targets, now)
                levels.append((lvl, who.people, who.unresolved))
            except OnCallError as exc:
                levels.append((lvl, [], [str(exc)]))
        return render(request, "oncall.html.j2", schedules=schedules, levels=levels, now=now)

    @r.get("/heartbeats", response_class=HTMLResponse)
    async def heartbeats(request: Request) -> Response:
        if person(request) is None:
            return sign_in(request)
        return render(request, "heartbeats.html.j2", rows=await statuses(ctx.client, cfg))

    # --- documents -------------------------------------------------------------------------------
    @r.get("/docs", response_class=HTMLResponse)
    async def docs(request: Request, kind: str = "") -> Response:
        if person(request) is None:
            return sign_in(request)
        if kind and kind not in DOC_KINDS:
            raise GatewayError(404, f"no document kind {kind!r} (kinds: {DOC_KINDS})")
        items = await asyncio.to_thread(docs_repo().documents, kind or None)
        return render(request, "docs.html.j2", items=items, kind=kind, kinds=DOC_KINDS)

    @r.get("/docs/{rel:path}", response_class=HTMLResponse)
    async def doc(request: Request, rel: str) -> Response:
        if person(request) is None:
            return sign_in(request)
        repo = docs_repo()
        path = (repo.path / rel).resolve()
        if repo.path.resolve() not in path.parents or path.suffix != ".md" or not path.is_file():
            raise GatewayError(404, f"no published document {rel!r}")
        front, body = split_front_matter(await asyncio.to_thread(Path(path).read_text))
        return render(request, "doc.html.j2", rel=rel, front=front, html=markdown(body))

    @r.get("/docs-assets/{rel:path}")
    async def doc_asset(request: Request, rel: str) -> Response:
        """Charts and other files that documents link to, from the docs repository only."""
        repo = docs_repo()
        path = (repo.path / rel).resolve()
        if (
            repo.path.resolve() not in path.parents
            or path.suffix.lower() not in (".png", ".svg")
            or not path.is_file()
        ):
            raise GatewayError(404, f"no document asset {rel!r}")
        media = "image/png" if path.suffix.lower() == ".png" else "image/svg+xml"
        return Response(await asyncio.to_thread(path.read_bytes), media_type=media)

    # --- traces, audit ---------------------------------------------------------------------------
    @r.get("/traces/{trace_id}", response_class=HTMLResponse)
    async def trace(request: Request, trace_id: str) -> Response:
        if person(request) is None:
            return sign_in(request)
        store = trace_store_of(ctx)
        spans = await asyncio.to_thread(store.trace, trace_id.lower()) if store else []
        t0 = min((s.start for s in spans), default=0.0)
        rows = [(span_view(s), (s.start - t0) * 1000) for s in spans]
        return render(request, "trace.html.j2", trace_id=trace_id, rows=rows)

    @r.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request, actor: str = "", limit: int = 200) -> Response:
        if person(request) is None:
            return sign_in(request)
        entries = await asyncio.to_thread(svc.store.audit_entries, min(max(limit, 1), 5000), actor or None)
        return render(request, "audit.html.j2", entries=entries, actor=actor)

    return r
