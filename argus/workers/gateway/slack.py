"""`POST /api/slack/actions`: Slack's Interactivity Request URL, for approval button clicks.

The request is verified with the app's signing secret (`X-Slack-Signature` over the raw body and
`X-Slack-Request-Timestamp` within 5 minutes, so a captured request cannot be replayed later),
the Slack user is mapped to an ARGUS person (`people:<name>.slack`), and the decision goes to the
incident as the `decide` update with the click's id. The message is then replaced through the
click's `response_url` ("Approved by … at …", buttons gone); a refusal is answered 4xx with the
reason and also shown to the person who clicked (ephemeral), and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from argus.integrations.base import IntegrationError
from argus.integrations.slack import (
    SlackPayloadError,
    SlackSignatureError,
    parse_block_action,
    verify_slack_request,
)
from argus.integrations.vendor_http import new_client, send
from argus.models import ApprovalDecision, DecisionKind

from .context import REJECTED, GatewayContext
from .deciding import may_decide, now, people_context, send_decision

log = logging.getLogger("argus.gateway.slack")
STATUS_OF = {"refused": 409, "unknown": 404, "closed": 409, "unavailable": 503}


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["slack"])
    cfg = ctx.config.notify.slack
    http = new_client(timeout=5.0)
    pending: set[asyncio.Task] = set()

    def respond(response_url: str, body: dict) -> None:
        """Post to the click's response_url in the background: the click is answered first."""

        def post() -> None:
            try:
                send(http, "POST", response_url, "slack", "response_url", json=body)
            except IntegrationError as exc:
                log.warning("slack response_url failed: %s", exc)

        task = asyncio.create_task(asyncio.to_thread(post))
        pending.add(task)
        task.add_done_callback(pending.discard)
        ctx.extras.setdefault("slack_responses", []).append(task)

    def refuse(status: int, reason: str, code: str, response_url: str | None = None) -> JSONResponse:
        REJECTED.labels("slack", code).inc()
        log.warning("slack click refused (%s): %s", code, reason)
        if response_url:
            respond(
                response_url,
                {"response_type": "ephemeral", "replace_original": False, "text": f"Refused: {reason}"},
            )
        return JSONResponse({"ok": False, "error": reason}, status_code=status)

    @r.post("/api/slack/actions", summary="Slack interactivity: approval button clicks")
    async def actions(request: Request) -> JSONResponse:
        if cfg is None:
            return refuse(404, "Slack is not configured (notify.slack)", "not_configured")
        raw = await ctx.body(request, "slack")
        secrets, directory = people_context(ctx.config, ctx.extras)
        signing_secret = secrets.get(cfg.signing_secret_secret)
        if not signing_secret:
            return refuse(
                503,
                f"secret {cfg.signing_secret_secret!r} is not set: clicks cannot be verified",
                "no_secret",
            )
        try:
            verify_slack_request(signing_secret, dict(request.headers), raw)
        except SlackSignatureError as exc:
            return refuse(401, f"unauthorized: {exc}", "unauthorized")
        try:
            click = parse_block_action(raw)
        except SlackPayloadError as exc:
            return refuse(400, str(exc), "bad_payload")
        if click.action not in ("approve", "reject") or not click.incident or not click.proposal_hash:
            return refuse(
                400, f"not an ARGUS approval button: {click.action!r}", "bad_payload", click.response_url
            )
        person = directory.person_by_slack(click.user)
        if person is None:
            return refuse(
                403, f"Slack user {click.user} is not an ARGUS user", "unknown_user", click.response_url
            )
        at = now()
        groups = may_decide(ctx.config, directory, person, at)
        if groups is None:
            return refuse(403, f"{person} may not approve remediation", "not_allowed", click.response_url)
        decision = ApprovalDecision(
            approver=person,
            decision=DecisionKind(click.action),
            proposal_hash=click.proposal_hash,
            via="slack",
            request_id=f"slack-{click.message_ts or click.action_ts}-{click.user}-{click.action}",
            groups=groups,
            origin=f"slack team {click.team} channel {click.channel}",
        )
        outcome = await send_decision(ctx.client, click.incident, decision)
        if outcome.status in STATUS_OF:
            return refuse(STATUS_OF[outcome.status], outcome.detail, outcome.status, click.response_url)
        verb = "Approved" if click.action == "approve" else "Rejected"
        text = f"{verb} by {person} at {at:%H:%M} UTC ({click.incident})"
        if outcome.status == "queued":
            text += f" — {outcome.detail}"
        respond(click.response_url, {"replace_original": True, "text": text, "blocks": []})
        log.info("slack %s of %s by %s: %s", click.action, click.incident, person, outcome.status)
        return JSONResponse({"ok": True, "text": text})

    return r
