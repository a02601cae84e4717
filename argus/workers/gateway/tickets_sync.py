"""Two-way ticket sync: Jira and ServiceNow tell the gateway when a ticket is resolved or
reopened, and the incident hears it as the `ticket_state` signal.

- `POST /api/tickets/jira`: a Jira webhook (`jira:issue_updated`). Registered with a secret, Jira
  signs the body (`X-Hub-Signature: sha256=<hex HMAC>`); or it carries `Authorization: Bearer
  <secret>` (Data Center). Only status changes count; the incident is named by the ticket's
  `argus-wf-<workflow id>` label (ARGUS adds it), else by the description ARGUS wrote.
- `POST /api/tickets/servicenow`: a business rule's REST message, `Authorization: Bearer <secret>`,
  body `{"number", "state", "correlation_id", "sys_updated_by"}`; the incident is named by the
  `correlation_id` ARGUS set (`argus:<workflow id>/<run>/ticket`).

Secrets by name (`tickets.sync.jira_secret`, `tickets.sync.servicenow_secret`). Changes made by
ARGUS's own integration users (`tickets.sync.ignore_users`) are ignored, so ARGUS resolving a
ticket does not echo back. Refusals are 4xx with the reason, logged, and signal nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from argus.models import TicketStateSignal

from .context import REJECTED, GatewayContext
from .deciding import people_context

log = logging.getLogger("argus.gateway.tickets")
JIRA_LABEL = "argus-wf-"
_DESCRIPTION = re.compile(r"ARGUS incident (\S+)")
SERVICENOW_STATES = {
    "1": "open",
    "2": "in_progress",
    "3": "on_hold",
    "6": "resolved",
    "7": "closed",
    "8": "canceled",
}


def refuse(system: str, status: int, reason: str) -> JSONResponse:
    REJECTED.labels(f"tickets-{system}", str(status)).inc()
    log.warning("%s ticket webhook refused (%s): %s", system, status, reason)
    return JSONResponse({"error": reason}, status_code=status)


def authenticated(secret: str, headers: Any, raw: bytes) -> str | None:
    """None if the request proves the secret (HMAC signature or bearer token), else why not."""
    signature = headers.get("x-hub-signature") or headers.get("x-argus-signature")
    if signature:
        expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return (
            None
            if hmac.compare_digest(expected, signature.strip())
            else "bad signature: the body was not signed with our secret"
        )
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return None if hmac.compare_digest(token.strip(), secret) else "wrong bearer token"
    return "unsigned request: no X-Hub-Signature and no bearer token"


def jira_event(body: dict[str, Any]) -> tuple[str | None, TicketStateSignal | None, str]:
    """(workflow id, signal, why not) from a Jira issue webhook."""
    issue = body.get("issue")
    if not isinstance(issue, dict) or not issue.get("key"):
        raise ValueError("payload has no issue.key")
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    category = ((status.get("statusCategory") or {}).get("key")) or ""
    items = (body.get("changelog") or {}).get("items") or []
    change = next((i for i in items if isinstance(i, dict) and i.get("field") == "status"), None)
    if change is None:
        return None, None, "not a status change"
    wf = next(
        (lbl[len(JIRA_LABEL) :] for lbl in fields.get("labels") or [] if str(lbl).startswith(JIRA_LABEL)),
        None,
    )
    if wf is None:
        found = _DESCRIPTION.search(str(fields.get("description") or ""))
        wf = found.group(1) if found else None
    state = "resolved" if category == "done" else "reopened"
    user = body.get("user") or {}
    by = str(
        user.get("name") or user.get("emailAddress") or user.get("displayName") or user.get("accountId") or ""
    )
    return wf, TicketStateSignal(system="jira", key=str(issue["key"]), state=state, by=by), ""


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["tickets"])
    sync = ctx.config.tickets.sync

    async def signal(system: str, workflow_id: str, sig: TicketStateSignal) -> JSONResponse:
        if sig.by and sig.by in sync.ignore_users:
            return JSONResponse({"ignored": f"change made by ARGUS's own user {sig.by}"})
        try:
            await ctx.client.get_workflow_handle(workflow_id).signal("ticket_state", sig)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                if "completed" in exc.message.lower():
                    return refuse(system, 409, f"incident {workflow_id} is already closed")
                return refuse(system, 404, f"unknown incident {workflow_id!r}")
            return refuse(system, 503, f"ARGUS could not reach the incident ({exc.message})")
        log.info("%s ticket %s is %s: signalled %s", system, sig.key, sig.state, workflow_id)
        return JSONResponse({"ok": True, "incident": workflow_id, "ticket": sig.key, "state": sig.state})

    async def verified(
        system: str, secret_name: str, request: Request
    ) -> tuple[bytes | None, Any, JSONResponse | None]:
        raw = await ctx.body(request, f"tickets-{system}")
        secrets, _ = people_context(ctx.config, ctx.extras)
        secret = secrets.get(secret_name)
        if not secret:
            return (
                None,
                None,
                refuse(system, 503, f"secret {secret_name!r} is not set: {system} webhooks are off"),
            )
        why = authenticated(secret, request.headers, raw)
        if why:
            return None, None, refuse(system, 401, f"unauthorized: {why}")
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, None, refuse(system, 400, f"body is not JSON: {exc}")
        if not isinstance(body, dict):
            return None, None, refuse(system, 400, "body is not a JSON object")
        return raw, body, None

    @r.post("/api/tickets/jira", summary="Jira webhook: issue resolved or reopened")
    async def jira(request: Request) -> JSONResponse:
        _, body, refusal = await verified("jira", sync.jira_secret, request)
        if refusal is not None:
            return refusal
        try:
            wf, sig, why = jira_event(body)
        except ValueError as exc:
            return refuse("jira", 400, str(exc))
        if sig is None:
            return JSONResponse({"ignored": why})
        if wf is None:
            return refuse("jira", 404, f"issue {sig.key} is not an ARGUS ticket (no {JIRA_LABEL}<id> label)")
        return await signal("jira", wf, sig)

    @r.post("/api/tickets/servicenow", summary="ServiceNow business rule: incident resolved or reopened")
    async def servicenow(request: Request) -> JSONResponse:
        _, body, refusal = await verified("servicenow", sync.servicenow_secret, request)
        if refusal is not None:
            return refusal
        number, state, correlation = (
            body.get("number"),
            body.get("state"),
            str(body.get("correlation_id") or ""),
        )
        if not number or state in (None, ""):
            return refuse("servicenow", 400, "payload needs number and state")
        if not correlation.startswith("argus:") or correlation.startswith("argus:sha256:"):
            return refuse(
                "servicenow",
                404,
                f"incident {number} is not an ARGUS ticket (correlation_id {correlation!r})",
            )
        wf = correlation.removeprefix("argus:").split("/", 1)[0]
        name = SERVICENOW_STATES.get(str(state), str(state).lower())
        sig = TicketStateSignal(
            system="servicenow",
            key=str(number),
            state="reopened" if name in ("open", "in_progress", "on_hold") else name,
            by=str(body.get("sys_updated_by") or ""),
        )
        return await signal("servicenow", wf, sig)

    return r
