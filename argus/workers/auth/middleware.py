"""The gateway's gatekeeper: every request is matched to its rule (policy.py), its caller
identified (service.py), refused with 401/403 before any handler runs when it may not proceed,
and — when it changes state — recorded in the audit log with its outcome.

A pure ASGI middleware, so the routers stay as they are and a new router is covered the day
it is added.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

from fastapi.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argus.models.security import Principal

from .policy import Rule, changes_state, rule_for
from .service import SESSION_COOKIE, AuthService, csrf_ok

CSRF_HEADER = "x-csrf-token"


def _refusal(status: int, error: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "problems": []}, status_code=status, headers=headers)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is the same as none
            cookies = SimpleCookie()
        sid = cookies[SESSION_COOKIE].value if SESSION_COOKIE in cookies else None
        principal, csrf, problem = await self.service.identify(headers.get("authorization", ""), sid)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["principal"] = principal
        state["session_csrf"] = csrf
        rule = rule_for(self.service.table, method, path)
        refusal = self._check(rule, principal, problem, method, path, headers, csrf)
        client = scope.get("client")
        source = f"{client[0]}" if client else ""
        if refusal is not None:
            status, error = refusal
            if status == 401 and method == "GET" and path.startswith("/portal"):
                response: Any = RedirectResponse(f"/portal/login?next={quote(path)}", status_code=303)
            else:
                response = _refusal(status, error)
            await response(scope, receive, send)
            if changes_state(method) or status in (401, 403):
                await self._record(principal, method, path, f"refused:{status}", state, error, source)
            return
        if rule.kind == "ingest" and self.service.enabled:
            # The legacy webhook check defers to this decision, but only to a real one: with auth
            # off everyone is "anonymous admin", and `gateway.require_token` must still hold.
            state["ingest_ok"] = True
        status_box = {"status": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if changes_state(method):
                st = status_box["status"]
                outcome = f"ok:{st}" if st < 400 else f"error:{st}"
                await self._record(principal, method, path, outcome, state, "", source)

    def _check(
        self,
        rule: Rule,
        principal: Principal | None,
        problem: str | None,
        method: str,
        path: str,
        headers: dict[str, str],
        csrf: str | None,
    ) -> tuple[int, str] | None:
        if rule.kind in ("public", "link", "self"):
            return None
        if problem is not None and self.service.enabled:
            return 401, problem
        # A browser session sends its cookie on its own: a change needs proof it came from our
        # page. Portal forms carry the token in the form (checked by the portal); API calls in a
        # header.
        if (
            principal is not None
            and principal.via == "session"
            and changes_state(method)
            and not path.startswith("/portal/")
            and not csrf_ok(csrf, headers.get(CSRF_HEADER))
        ):
            return 403, f"missing or wrong {CSRF_HEADER} header for a session-authenticated change"
        if not self.service.enabled:
            return None
        if principal is None:
            return 401, "authentication required: send 'Authorization: Bearer <API token>' or sign in"
        if rule.kind == "ingest":
            needed = self.service.config.auth.ingest_role
            if principal.via == "webhook" or principal.role.allows(needed):
                return None
            return 403, f"{principal.user} has role {principal.role.value}; pushing data needs {needed.value}"
        if principal.via == "webhook":
            return 403, "the webhook token may only push alerts, changes, heartbeats and spans"
        assert rule.role is not None
        if not principal.role.allows(rule.role):
            return 403, (
                f"{principal.user} has role {principal.role.value}; {method} {path} needs {rule.role.value}"
            )
        return None

    async def _record(
        self,
        principal: Principal | None,
        method: str,
        path: str,
        outcome: str,
        state: dict[str, Any],
        error: str,
        source: str,
    ) -> None:
        # Handlers name what they acted on and how (e.g. the incident and the decision).
        actor = state.get("audit_actor") or principal
        await self.service.audit(
            actor,
            f"{method} {path}",
            outcome,
            target=str(state.get("audit_target", "")),
            detail=str(state.get("audit_detail", "")) or error,
            source=source,
        )
