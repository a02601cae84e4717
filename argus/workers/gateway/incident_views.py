"""What the portal and the incidents API share: finding, listing and acting on incidents and
silences through Temporal (visibility, queries, the `decide` update, signals), with the
archive for incidents Temporal no longer holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from argus.integrations.archive import IncidentArchive
from argus.models import (
    ApprovalDecision,
    DecisionKind,
    IncidentState,
    IncidentSummary,
    Silence,
    SilenceExpire,
    SilenceRequest,
    SilenceUpdate,
)
from argus.models.agents import AlertListing, AlertQuery
from argus.models.security import Principal

from .context import GatewayContext, GatewayError, monitoring_id

_KEYWORD_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/")


def _keyword(value: str, name: str) -> str:
    # Values go into a visibility query: refuse anything that could change its meaning.
    if not value or not set(value) <= _KEYWORD_OK or len(value) > 200:
        raise GatewayError(422, f"{name}: {value!r} may hold only letters, digits and - _ . : /")
    return value


async def list_incidents(
    ctx: GatewayContext,
    service: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> tuple[list[IncidentSummary], str]:
    """Live incidents from Temporal visibility, merged with the archive; and a note when
    Temporal could not be asked."""
    query = ['WorkflowType="IncidentWorkflow"']
    for attr, value, name in (
        ("IncidentService", service, "service"),
        ("IncidentSeverity", severity, "severity"),
        ("IncidentStatus", status, "status"),
    ):
        if value:
            query.append(f'{attr}="{_keyword(value, name)}"')
    rows: dict[str, IncidentSummary] = {}
    note = ""
    try:
        async for wf in ctx.client.list_workflows(" AND ".join(query), limit=limit):
            sa = wf.search_attributes
            number = str((sa.get("IncidentNumber") or [""])[0])
            rows[number or wf.id] = IncidentSummary(
                incident_id=wf.id,
                number=number,
                service=str((sa.get("IncidentService") or [""])[0]),
                severity=str((sa.get("IncidentSeverity") or [""])[0]),
                status=str((sa.get("IncidentStatus") or [wf.status.name.lower() if wf.status else ""])[0]),
                opened_at=wf.start_time,
                closed_at=wf.close_time,
            )
    except RPCError as exc:
        note = f"Temporal is not answering ({exc.message}); showing the archive only"
    archive = ctx.archive
    for s in await asyncio.to_thread(archive.list, service=service, status=status, limit=limit):
        if severity and s.severity != severity:
            continue
        key = s.number or s.incident_id
        if key in rows:
            rows[key].title = s.title
            rows[key].outcome = s.outcome
        else:
            rows[key] = s
    items = sorted(rows.values(), key=lambda r: r.opened_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return items[:limit], note


async def resolve_id(ctx: GatewayContext, ident: str) -> str:
    """INC-7 or a workflow id -> the workflow id."""
    if ident.upper().startswith("INC-"):
        number = _keyword(ident.upper(), "incident")
        async for wf in ctx.client.list_workflows(f'IncidentNumber="{number}"', limit=1):
            return wf.id
        state = await asyncio.to_thread(ctx.archive.get, number)
        if state is None:
            raise GatewayError(404, f"unknown incident {ident}")
        return state.incident_id
    return ident


async def get_incident(ctx: GatewayContext, ident: str) -> tuple[IncidentState, bool]:
    """(state, live): the running workflow's `status` query, else the archive's record."""
    wf_id = await resolve_id(ctx, ident)
    try:
        state = await ctx.client.get_workflow_handle(wf_id).query("status", result_type=IncidentState)
        return state, True
    except Exception:
        pass  # closed beyond retention, or no worker to answer: the archive has the record
    archive: IncidentArchive = ctx.archive
    state = await asyncio.to_thread(archive.get, wf_id) or await asyncio.to_thread(archive.get, ident)
    if state is None:
        raise GatewayError(404, f"unknown incident {ident}")
    return state, False


def refusal_text(exc: WorkflowUpdateFailedError) -> str:
    cause = exc.cause
    return str(getattr(cause, "message", None) or cause or exc)


async def decide(
    ctx: GatewayContext,
    ident: str,
    who: Principal,
    decision: DecisionKind,
    proposal_hash: str,
    comment: str,
    request_id: str,
    via: str,
) -> str:
    """The same `decide` update as signed links, Teams and the CLI; the workflow checks whether
    this person may approve this proposal and refuses a stale one."""
    wf_id = await resolve_id(ctx, ident)
    d = ApprovalDecision(
        approver=who.user,
        decision=decision,
        proposal_hash=proposal_hash,
        comment=comment[:2000],
        via=via,
        request_id=request_id or f"{via}-{uuid.uuid4().hex}",
        groups=who.groups,
    )
    try:
        return await ctx.client.get_workflow_handle(wf_id).execute_update(
            "decide", d, id=d.request_id, result_type=str
        )
    except WorkflowUpdateFailedError as exc:
        raise GatewayError(409, f"refused: {refusal_text(exc)}") from exc
    except RPCError as exc:
        raise GatewayError(503, f"ARGUS could not reach {ident} ({exc.message}); try again") from exc


async def signal(ctx: GatewayContext, ident: str, name: str, arg: object) -> None:
    wf_id = await resolve_id(ctx, ident)
    try:
        await ctx.client.get_workflow_handle(wf_id).signal(name, arg)
    except RPCError as exc:
        raise GatewayError(409, f"{ident} does not accept {name} ({exc.message})") from exc


async def silences(ctx: GatewayContext, scope: str) -> list[Silence]:
    try:
        return await ctx.client.get_workflow_handle(monitoring_id(scope)).query(
            "silences", result_type=list[Silence]
        )
    except Exception as exc:
        raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc}") from exc


async def silence(ctx: GatewayContext, scope: str, silence_id: str) -> Silence:
    for s in await silences(ctx, scope):
        if s.id == silence_id:
            return s
    raise GatewayError(404, f"no silence {silence_id} in scope {scope!r}")


async def alerts(ctx: GatewayContext, scope: str, query: AlertQuery) -> AlertListing:
    try:
        return await ctx.client.get_workflow_handle(monitoring_id(scope)).query(
            "alerts", query, result_type=AlertListing
        )
    except Exception as exc:
        raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc}") from exc


async def add_silence(ctx: GatewayContext, scope: str, req: SilenceRequest) -> Silence:
    try:
        return await ctx.client.get_workflow_handle(monitoring_id(scope)).execute_update(
            "add_silence", req, id=f"silence-{req.request_id}", result_type=Silence
        )
    except WorkflowUpdateFailedError as exc:
        raise GatewayError(422, f"silence refused: {refusal_text(exc)}") from exc
    except RPCError as exc:
        raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc.message}") from exc


async def update_silence(ctx: GatewayContext, scope: str, change: SilenceUpdate) -> Silence:
    """`change` under Alertmanager's rules (in place, or the old one expired and a new one made)."""
    try:
        return await ctx.client.get_workflow_handle(monitoring_id(scope)).execute_update(
            "update_silence", change, id=f"silence-{change.change.request_id}", result_type=Silence
        )
    except WorkflowUpdateFailedError as exc:
        text = refusal_text(exc)
        raise GatewayError(404 if text.startswith("no silence") else 422, f"silence refused: {text}") from exc
    except RPCError as exc:
        raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc.message}") from exc


async def expire_silence(ctx: GatewayContext, scope: str, silence_id: str, by: str) -> Silence:
    try:
        return await ctx.client.get_workflow_handle(monitoring_id(scope)).execute_update(
            "expire_silence", SilenceExpire(silence_id=silence_id, by=by), result_type=Silence
        )
    except WorkflowUpdateFailedError as exc:
        raise GatewayError(404, f"cannot expire {silence_id}: {refusal_text(exc)}") from exc
    except RPCError as exc:
        raise GatewayError(503, f"monitoring scope {scope!r} is not answering: {exc.message}") from exc
