"""Sign-in (API token, OIDC, or a name when auth is off), sign-out, API tokens and the audit log
over HTTP. `install` puts the gatekeeper middleware in front of every router."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import Field, ValidationError

from argus.integrations.normalizers.common import problems_from
from argus.models.common import Model
from argus.models.durations import Duration
from argus.models.security import Principal, Role

from ..auth import AuthMiddleware, AuthService, AuthStore, auth_url
from ..auth.audit_log import AuditLog
from ..auth.oidc import OidcError
from ..auth.service import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_ok
from ..auth.store import AuthError
from ..settings import load_secrets, state_dir
from .context import GatewayContext, GatewayError
from .pages import principal_of, render, safe_next

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
PENDING_TTL = timedelta(minutes=10)


def auth_service(ctx: GatewayContext) -> AuthService:
    """Built once per gateway process from its configuration; tests may put their own in extras."""
    svc = ctx.extras.get("auth")
    if svc is None:
        store = AuthStore(auth_url(ctx.config, state_dir(ctx.config)))
        svc = AuthService(ctx.config, store, load_secrets(ctx.config), webhook_token=ctx.token)
        ctx.extras["auth"] = svc
    return svc


def install(app: FastAPI, ctx: GatewayContext) -> None:
    app.add_middleware(AuthMiddleware, service=auth_service(ctx))


def audit_log(ctx: GatewayContext) -> AuditLog:
    """The audit log's background writer: started and flushed by the gateway's lifespan."""
    return auth_service(ctx).audit_log


class TokenCreate(Model):
    user: str = Field(min_length=1, max_length=200)
    role: Role
    description: str = Field(default="", max_length=500)
    ttl: Duration | None = None


def _cookie(response: Response, svc: AuthService, sid: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(svc.config.auth.session_ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=svc.secure_cookies,
        path="/",
    )


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["auth"])
    svc = auth_service(ctx)

    def login_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        page = render(
            request,
            "login.html.j2",
            status=status,
            error=error,
            login_csrf=token,
            next=safe_next(request.query_params.get("next")),
            auth_on=svc.enabled,
            oidc_label=svc.oidc.cfg.label if svc.oidc else "",
        )
        page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/portal/login")
        return page

    @r.get("/portal/login", response_class=HTMLResponse, summary="Portal sign-in page")
    async def login_form(request: Request) -> HTMLResponse:
        return login_page(request)

    @r.post("/portal/login", summary="Sign in with an API token (or a name when auth is off)")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
            return login_page(request, 403, "The sign-in form expired or was not sent from this page.")
        nxt = safe_next(str(form.get("next", "")))
        token_id = None
        if svc.enabled:
            token = str(form.get("token", "")).strip()
            principal = await asyncio.to_thread(svc.principal_for_token, token) if token else None
            if principal is None:
                request.state.audit_detail = "sign-in refused: unknown, revoked or expired token"
                return login_page(request, 401, "That token is unknown, revoked or expired.")
            token_id = principal.token_id
        else:
            name = str(form.get("name", "")).strip()
            if not NAME.match(name):
                return login_page(request, 400, "Give the name you act under (letters, digits, . _ @ + -).")
            principal = Principal(user=name, role=Role.ADMIN, via="name")
        sid, _ = await asyncio.to_thread(svc.open_session, principal, token_id)
        request.state.audit_actor = principal
        request.state.audit_detail = (
            f"signed in ({principal.role.value}) via {'token' if svc.enabled else 'name'}"
        )
        response = RedirectResponse(nxt, status_code=303)
        _cookie(response, svc, sid)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/portal/login")
        return response

    @r.post("/portal/logout", summary="Sign out")
    async def logout(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(getattr(request.state, "session_csrf", None), str(form.get("csrf", ""))):
            raise GatewayError(403, "missing or wrong CSRF token in the form")
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            await asyncio.to_thread(svc.store.end_session, sid)
        response = RedirectResponse("/portal/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @r.get("/auth/oidc/start", summary="Begin OIDC sign-in")
    async def oidc_start(request: Request) -> Response:
        if svc.oidc is None:
            raise GatewayError(404, "OIDC sign-in is not configured (auth.oidc)")
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        nxt = safe_next(request.query_params.get("next"))
        try:
            url = await svc.oidc.authorization_url(state, nonce, verifier)
        except OidcError as exc:
            return login_page(request, 502, str(exc))
        await asyncio.to_thread(svc.store.add_pending, state, nonce, verifier, nxt, PENDING_TTL)
        return RedirectResponse(url, status_code=303)

    @r.get("/auth/oidc/callback", summary="OIDC redirect target")
    async def oidc_callback(request: Request) -> Response:
        if svc.oidc is None:
            raise GatewayError(404, "OIDC sign-in is not configured (auth.oidc)")
        q = request.query_params
        if q.get("error"):
            return login_page(
                request, 401, f"The identity provider refused: {q.get('error_description') or q['error']}"
            )
        pending = await asyncio.to_thread(svc.store.take_pending, q.get("state", ""))
        if pending is None or not q.get("code"):
            return login_page(
                request, 400, "This sign-in is unknown, expired or was already used; start again."
            )
        try:
            tokens = await svc.oidc.exchange(q["code"], pending.verifier)
            claims = await svc.oidc.verify_id_token(tokens["id_token"], pending.nonce)
        except OidcError as exc:
            return login_page(request, 401, str(exc))
        user, groups = svc.oidc.identity(claims)
        role = svc.role_for(user, groups)
        if role is None:
            return login_page(
                request, 403, f"{user} signed in but has no ARGUS role (auth.users / auth.group_roles)."
            )
        principal = Principal(user=user, role=role, via="oidc", groups=groups)
        sid, _ = await asyncio.to_thread(svc.open_session, principal)
        await svc.audit(principal, "oidc sign-in", "ok:303", detail=f"role {role.value}, groups {groups}")
        response = RedirectResponse(pending.next_url, status_code=303)
        _cookie(response, svc, sid)
        return response

    @r.get("/api/v1/whoami", summary="The caller as the gateway sees them")
    async def whoami(request: Request) -> JSONResponse:
        p = principal_of(request)
        return JSONResponse({"auth": svc.enabled, "principal": p.model_dump(mode="json") if p else None})

    @r.get("/api/v1/tokens", summary="API tokens (admin)")
    async def tokens(include_revoked: bool = False) -> JSONResponse:
        items = await asyncio.to_thread(svc.store.list_tokens, include_revoked)
        return JSONResponse([t.model_dump(mode="json") for t in items])

    @r.post("/api/v1/tokens", summary="Create an API token (admin); the token is shown once")
    async def create_token(request: Request) -> JSONResponse:
        try:
            body = TokenCreate.model_validate(await ctx.json(request, "tokens"))
        except ValidationError as exc:
            raise GatewayError(422, "invalid token request", problems_from(exc)) from exc
        me = principal_of(request)
        new = await asyncio.to_thread(
            svc.store.create_token, body.user, body.role, body.description, body.ttl, me.user if me else ""
        )
        request.state.audit_target = f"token {new.info.id}"
        request.state.audit_detail = f"for {new.info.user} as {new.info.role.value}"
        return JSONResponse(new.model_dump(mode="json"), status_code=201)

    @r.post("/api/v1/tokens/{token_id}/revoke", summary="Revoke an API token (admin)")
    async def revoke(token_id: str, request: Request) -> JSONResponse:
        try:
            info = await asyncio.to_thread(svc.revoke_token, token_id)
        except AuthError as exc:
            raise GatewayError(404, str(exc)) from exc
        request.state.audit_target = f"token {token_id}"
        return JSONResponse(info.model_dump(mode="json"))

    @r.get("/api/v1/audit", summary="The audit log, newest first (admin)")
    async def audit(limit: int = 100, actor: str | None = None) -> JSONResponse:
        if not 1 <= limit <= 10_000:
            raise GatewayError(422, f"limit {limit} must be between 1 and 10000")
        items = await asyncio.to_thread(svc.store.audit_entries, limit, actor)
        return JSONResponse([e.model_dump(mode="json") for e in items])

    return r
