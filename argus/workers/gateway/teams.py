"""`POST /api/teams/messages`: the ARGUS bot's messaging endpoint, for approval card clicks.

A click on an `Action.Execute` button arrives as an `adaptiveCard/action` invoke. In order:
the Bot Framework JWT (signing keys from the OpenID metadata, cached and refreshed; issuer,
audience, expiry, the key's endorsement of the channel, the `serviceurl` claim against the
activity), the invoke's shape, our tenant, the person (Entra object id → ARGUS person through
`people:`), whether they may decide (approver, approver group, on call, escalation target),
then the `decide` update with the click's id, without waiting for the workflow to finish. The
answer replaces the card in place: "Approved by … at …", no buttons. Every refusal is a 4xx with
the reason (an `application/vnd.microsoft.error` body Teams shows), logged, and changes nothing.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from argus.integrations.base import IntegrationError
from argus.integrations.teams import (
    BotFrameworkAuth,
    TeamsAuthError,
    TeamsInvokeError,
    card_reply,
    decided_card,
    error_reply,
    parse_invoke,
)
from argus.models import ApprovalDecision, DecisionKind

from .context import REJECTED, GatewayContext
from .deciding import may_decide, now, people_context, send_decision

log = logging.getLogger("argus.gateway.teams")
STATUS_OF = {"refused": 409, "unknown": 404, "closed": 409, "unavailable": 503}


def refuse(status: int, code: str, message: str) -> JSONResponse:
    REJECTED.labels("teams", code).inc()
    log.warning("teams click refused (%s): %s", code, message)
    return JSONResponse(error_reply(status, code, message), status_code=status)


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["teams"])
    cfg = ctx.config.notify.teams
    auth = BotFrameworkAuth(cfg.app_id, openid_url=cfg.openid_url) if cfg else None
    ctx.extras.setdefault("teams_auth", auth)

    @r.post("/api/teams/messages", summary="Bot Framework messaging endpoint (approval card clicks)")
    async def messages(request: Request) -> JSONResponse:
        if cfg is None or auth is None:
            return refuse(404, "NotConfigured", "the Teams bot is not configured (notify.teams)")
        raw = await ctx.body(request, "teams")
        try:
            activity = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return refuse(400, "BadRequest", f"activity is not JSON: {exc}")
        if not isinstance(activity, dict):
            return refuse(400, "BadRequest", "activity is not a JSON object")
        try:
            await auth.authenticate(request.headers.get("authorization"), activity)
        except TeamsAuthError as exc:
            REJECTED.labels("teams", "unauthorized").inc()
            log.warning("teams request refused: %s", exc.reason)
            return JSONResponse({"error": f"unauthorized: {exc.reason}"}, status_code=401)
        except IntegrationError as exc:
            return refuse(503, "KeysUnavailable", str(exc))
        try:
            click = parse_invoke(activity)
        except TeamsInvokeError as exc:
            return refuse(400, "BadRequest", str(exc))
        if click.tenant_id not in cfg.tenants:
            return refuse(403, "WrongTenant", f"tenant {click.tenant_id} is not allowed to act on ARGUS")
        if click.verb not in ("approve", "reject"):
            return refuse(400, "BadRequest", f"unknown verb {click.verb!r} (approve or reject)")
        workflow_id = click.workflow_id or click.incident
        if not workflow_id or not click.proposal_hash:
            return refuse(400, "BadRequest", "card data lacks the incident ('wf') or the proposal hash")
        _, directory = people_context(ctx.config, ctx.extras)
        person = directory.person_by_teams(click.user_aad_id)
        if person is None:
            return refuse(403, "UnknownUser", f"{click.user_name or click.user_aad_id} is not an ARGUS user")
        at = now()
        groups = may_decide(ctx.config, directory, person, at)
        if groups is None:
            return refuse(403, "NotAllowed", f"{person} may not approve remediation")
        decision = ApprovalDecision(
            approver=person,
            decision=DecisionKind(click.verb),
            proposal_hash=click.proposal_hash,
            via="teams",
            # The click: this person's press of this button on this card (a double click, or
            # Teams redelivering the invoke, carries the same id and applies once).
            request_id=f"teams-{click.reply_to_id or click.invoke_id}-{click.user_aad_id}-{click.verb}",
            groups=groups,
            origin=f"teams tenant {click.tenant_id} conversation {click.conversation_id}",
        )
        outcome = await send_decision(ctx.client, workflow_id, decision)
        if outcome.status in STATUS_OF:
            return refuse(STATUS_OF[outcome.status], outcome.status.capitalize(), outcome.detail)
        name = directory.people[person].display_name if person in directory.people else None
        card = decided_card(
            incident=click.incident or workflow_id,
            decision=click.verb,
            approver=name or click.user_name or person,
            at=at,
            proposal_hash=click.proposal_hash,
        )
        if outcome.status == "queued":  # not applied yet: say so instead of "Approved by …"
            card["body"][-1]["text"] = (
                f"{click.verb.capitalize()} from {name or click.user_name or person} received at "
                f"{at:%H:%M} UTC; {outcome.detail}"
            )
        log.info("teams %s of %s by %s: %s", click.verb, workflow_id, person, outcome.status)
        return JSONResponse(card_reply(card))

    return r
