"""Signed approval links: a confirm page on GET, the decision on POST only (link scanners GET)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from prometheus_client import Counter
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from argus.integrations.signed_links import LinkClaims, LinkError
from argus.models import ApprovalDecision, DecisionKind

from .context import GatewayContext, GatewayError

APPROVALS = Counter("argus_gateway_approvals_total", "Decisions through signed links", ["outcome"])
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parents[2] / "templates" / "gateway")),
    autoescape=True,
)


def page(status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template("result.html.j2").render(title=title, message=message), status)


def update_refusal(exc: WorkflowUpdateFailedError) -> str:
    cause = exc.cause
    return str(getattr(cause, "message", None) or cause or exc)


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["approvals"])

    def verify(token: str) -> LinkClaims:
        try:
            return ctx.signer.verify(token)
        except LinkError as exc:
            APPROVALS.labels("refused").inc()
            raise GatewayError(400, str(exc)) from exc

    @r.get("/approve", response_class=HTMLResponse, summary="Confirm page of a signed approval link")
    async def confirm(t: str) -> HTMLResponse:
        claims = verify(t)
        state = ctx.archive.get(claims.incident_id)
        html = TEMPLATES.get_template("confirm.html.j2").render(
            decision=claims.decision,
            incident_id=claims.incident_id,
            number=state.number if state else "",
            summary=state.proposal.summary if state and state.proposal else "",
            proposal_hash=claims.proposal_hash,
            approver=claims.approver,
            token=t,
            expires=datetime.fromtimestamp(claims.expires, UTC).isoformat(),
        )
        return HTMLResponse(html)

    @r.post("/approve", response_class=HTMLResponse, summary="Act on a signed approval link")
    async def act(request: Request) -> HTMLResponse:
        form = await request.form()
        token = str(form.get("t", ""))
        if not token:
            raise GatewayError(400, "missing link token 't'")
        claims = verify(token)
        if not ctx.nonces.use(claims.nonce, claims.expires):
            APPROVALS.labels("replayed").inc()
            raise GatewayError(409, "this approval link was already used")
        decision = ApprovalDecision(
            approver=claims.approver,
            decision=DecisionKind(claims.decision),
            proposal_hash=claims.proposal_hash,
            comment=str(form.get("comment", ""))[:2000],
            via="link",
            request_id=f"link-{claims.nonce}",
        )
        handle = ctx.client.get_workflow_handle(claims.incident_id)
        try:
            result = await handle.execute_update("decide", decision, id=decision.request_id, result_type=str)
        except WorkflowUpdateFailedError as exc:
            APPROVALS.labels("refused").inc()
            return page(409, "Refused", update_refusal(exc))
        except RPCError as exc:
            ctx.nonces.release(claims.nonce)  # nothing was decided: the link may be used again
            APPROVALS.labels("unavailable").inc()
            return page(
                503, "Not delivered", f"ARGUS could not reach the incident ({exc.message}); try again."
            )
        APPROVALS.labels(claims.decision).inc()
        return page(200, "Done", f"{claims.incident_id}: {result}.")

    return r
