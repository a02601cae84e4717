"""Who is asking and what they may do: tokens, portal sessions, OIDC, roles, CSRF, audit.

One `AuthService` per gateway process (and one per CLI command that changes something). It is
the only place that turns credentials into a `Principal`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from argus.integrations.sql import sqlite_url
from argus.models import ArgusConfig
from argus.models.security import ApiTokenInfo, AuditEntry, Principal, Role

from ..settings import ConfigError, Secrets
from .audit_log import AuditLog
from .oidc import OidcClient
from .policy import build_table
from .store import TOKEN_PREFIX, AuthStore, token_hash

SESSION_COOKIE = "argus_session"
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_MAX = 10_000
LOGIN_CSRF_COOKIE = "argus_login_csrf"
log = logging.getLogger("argus.auth")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_enabled(config: ArgusConfig) -> bool:
    """Explicit `auth.enabled`, else on unless the gateway listens on loopback only."""
    if config.auth.enabled is not None:
        return config.auth.enabled
    return not is_loopback(config.gateway.host)


def auth_url(config: ArgusConfig, state: Path) -> str:
    return config.auth.url or sqlite_url(state / "auth.db")


def role_for(config: ArgusConfig, user: str, groups: list[str]) -> Role | None:
    """`auth.users` by name, else the highest role among the person's groups (configured
    `people.<user>.groups` and the identity provider's), else None."""
    a = config.auth
    if user in a.users:
        return a.users[user]
    person = config.people.get(user)
    all_groups = set(groups) | set(person.groups if person else [])
    roles = [a.group_roles[g] for g in all_groups if g in a.group_roles]
    if roles:
        return max(roles, key=lambda r: r.rank)
    return None


class AuthService:
    def __init__(
        self,
        config: ArgusConfig,
        store: AuthStore,
        secrets: Secrets | None = None,
        webhook_token: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.enabled = auth_enabled(config)
        self.table = build_table(config.auth, config.encryption)
        self.webhook_token = webhook_token
        # The gateway's writer (started by its lifespan); the CLI writes with `record` instead.
        self.audit_log = AuditLog(store.audit_many)
        # Verified tokens, by hash: the lookup (a thread hop and a database query, ~1 ms) is not
        # repeated on every request. A revocation through this gateway applies at once; one made
        # elsewhere (`argus tokens revoke`, another gateway) within `token_cache_seconds`.
        self.token_cache_seconds = TOKEN_CACHE_SECONDS
        self._tokens: dict[str, tuple[Principal, float, datetime | None]] = {}
        self.oidc: OidcClient | None = None
        o = config.auth.oidc
        if o is not None:
            secret = secrets.get(o.client_secret_secret) if secrets else None
            if not secret:
                raise ConfigError(
                    f"auth.oidc needs secret {o.client_secret_secret!r} "
                    f"(environment ARGUS_{o.client_secret_secret.upper()} or the secrets file)"
                )
            self.oidc = OidcClient(o, secret, f"{self.public_url}/auth/oidc/callback")

    @property
    def public_url(self) -> str:
        g = self.config.gateway
        return (g.public_url or f"http://{g.host}:{g.port}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    # --- credentials -> principal ----------------------------------------------------------------
    def principal_for_token(self, token: str) -> Principal | None:
        info = self.store.verify_token(token)
        if info is None:
            return None
        person = self.config.people.get(info.user)
        principal = Principal(
            user=info.user,
            role=info.role,
            via="token",
            groups=list(person.groups) if person else [],
            token_id=info.id,
        )
        if len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens.clear()
        self._tokens[token_hash(token)] = (principal, time.monotonic(), info.expires_at)
        return principal

    async def principal_for_bearer(self, token: str) -> Principal | None:
        """`principal_for_token`, answered from the recent verifications when it can be."""
        hit = self._tokens.get(token_hash(token))
        if hit is not None:
            principal, checked, expires = hit
            fresh = time.monotonic() - checked < self.token_cache_seconds
            if fresh and (expires is None or expires > datetime.now(UTC)):
                return principal
        return await asyncio.to_thread(self.principal_for_token, token)

    def revoke_token(self, token_id: str) -> ApiTokenInfo:
        info = self.store.revoke_token(token_id)
        self._tokens = {h: v for h, v in self._tokens.items() if v[0].token_id != token_id}
        return info

    def is_webhook_token(self, token: str) -> bool:
        return bool(self.webhook_token) and hmac.compare_digest(token, self.webhook_token or "")

    def principal_for_session(self, sid: str) -> tuple[Principal, str] | None:
        row = self.store.session(sid)
        if row is None:
            return None
        groups = [g for g in row.groups.split(",") if g]
        principal = Principal(user=row.user, role=Role(row.role), via="session", groups=groups)
        return principal, row.csrf

    async def identify(
        self, authorization: str, session_id: str | None
    ) -> tuple[Principal | None, str | None, str | None]:
        """(principal, session CSRF token, problem). A bearer header wins over a session cookie;
        a bad one is a problem even when a session exists, so a caller never acts as someone else."""
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme:
            if scheme.lower() != "bearer" or not value:
                return None, None, "the Authorization header must be 'Bearer <token>'"
            if value.startswith(TOKEN_PREFIX):
                p = await self.principal_for_bearer(value)
                if p is None:
                    return None, None, "the API token is unknown, revoked or expired"
                return p, None, None
            if self.is_webhook_token(value):
                return Principal(user="webhook", role=Role.VIEWER, via="webhook"), None, None
            return None, None, "the bearer token is not valid"
        if session_id:
            found = await asyncio.to_thread(self.principal_for_session, session_id)
            if found is not None:
                return found[0], found[1], None
        if not self.enabled:
            return Principal(user="anonymous", role=Role.ADMIN, via="anonymous"), None, None
        return None, None, None

    # --- sessions --------------------------------------------------------------------------------
    def open_session(self, principal: Principal, token_id: str | None = None) -> tuple[str, str]:
        return self.store.create_session(
            principal.user,
            principal.role,
            principal.via,
            principal.groups,
            self.config.auth.session_ttl,
            token_id=token_id,
        )

    def role_for(self, user: str, groups: list[str]) -> Role | None:
        role = role_for(self.config, user, groups)
        if role is None and self.config.auth.oidc is not None:
            role = self.config.auth.oidc.default_role
        return role

    # --- audit -----------------------------------------------------------------------------------
    @staticmethod
    def entry(
        principal: Principal | None,
        action: str,
        outcome: str,
        target: str = "",
        detail: str = "",
        source: str = "",
    ) -> AuditEntry:
        return AuditEntry(
            at=datetime.now(UTC),
            actor=principal.user if principal else "unauthenticated",
            role=principal.role.value if principal else "",
            via=principal.via if principal else "",
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
            source=source,
        )

    async def audit(
        self,
        principal: Principal | None,
        action: str,
        outcome: str,
        target: str = "",
        detail: str = "",
        source: str = "",
    ) -> None:
        """Record from the gateway: queued, written by the audit log's background writer."""
        await self.audit_log.put(self.entry(principal, action, outcome, target, detail, source))

    def record(
        self,
        principal: Principal | None,
        action: str,
        outcome: str,
        target: str = "",
        detail: str = "",
        source: str = "",
    ) -> None:
        """Record now, synchronously (the CLI: one entry per command, then the process ends)."""
        entry = self.entry(principal, action, outcome, target, detail, source)
        try:
            self.store.audit(entry)
        except Exception:  # the action already happened; say loudly that its record did not
            log.exception("audit record lost: %s", entry.model_dump_json())


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
