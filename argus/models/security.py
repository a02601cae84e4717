"""Roles, API tokens, the audit log and payload encryption: configuration and contracts.

Secrets are never here: token values exist only in the hands of their holders (ARGUS keeps a
SHA-256 hash), the OIDC client secret and the payload keys come from the environment or the
secrets file by the names these sections give.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration


class Role(StrEnum):
    """Ordered: each role may do everything the ones before it may."""

    VIEWER = "viewer"  # read incidents, documents, silences, on-call
    RESPONDER = "responder"  # acknowledge, comment, resolve, silence, push alerts and pings
    APPROVER = "approver"  # approve or reject remediation
    ADMIN = "admin"  # tokens, audit log, everything

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.RESPONDER: 1, Role.APPROVER: 2, Role.ADMIN: 3}


class OidcConfig(Model):
    """Portal sign-in with an OpenID Connect provider (authorization code flow with PKCE).

    The client secret is the secret named `client_secret_secret` (environment
    ARGUS_<NAME> or the secrets file). Roles come from `auth.users` by username, else from the
    groups in `groups_claim` through `auth.group_roles`, else `default_role` (none: refused)."""

    issuer: str
    client_id: str
    client_secret_secret: str = "oidc_client_secret"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    default_role: Role | None = None
    timeout: Duration = timedelta(seconds=10)
    label: str = "Sign in with SSO"


class AuthConfig(Model):
    """Who may do what through the portal, the gateway API and the CLI.

    `enabled: null` (the default) means: on when the gateway listens on anything but loopback,
    off on loopback, where every local process can reach the unauthenticated Temporal dev server
    anyway. With auth off, state-changing requests are still checked for CSRF and recorded in
    the audit log, under the name a person gives."""

    enabled: bool | None = None
    users: dict[str, Role] = Field(default_factory=dict)  # username -> role
    group_roles: dict[str, Role] = Field(default_factory=dict)  # group (people / OIDC) -> role
    oidc: OidcConfig | None = None
    session_ttl: Duration = timedelta(hours=12)
    ingest_role: Role = Role.RESPONDER  # pushing alerts, changes, heartbeats, spans
    self_verified_paths: list[str] = Field(default_factory=list)  # webhooks with their own signatures
    url: str | None = None  # SQLAlchemy URL of the token/session/audit store; default sqlite

    @field_validator("self_verified_paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"auth.self_verified_paths: {p!r} must start with '/'")
        return v


class ApiTokenInfo(Model):
    """An API token as ARGUS keeps it: never the token, only its hash and who holds it."""

    id: str
    user: str
    role: Role
    description: str = ""
    created_at: UtcDateTime
    expires_at: UtcDateTime | None = None
    revoked_at: UtcDateTime | None = None
    last_used_at: UtcDateTime | None = None
    created_by: str = ""


class NewApiToken(Model):
    info: ApiTokenInfo
    token: str  # shown once


class Principal(Model):
    """Who is asking, as the gateway or CLI established it."""

    user: str
    role: Role
    via: str  # token | session | oidc | cli | link | webhook | anonymous
    groups: list[str] = Field(default_factory=list)
    token_id: str | None = None


class AuditEntry(Model):
    id: int = 0
    at: UtcDateTime
    actor: str
    role: str = ""
    via: str = ""
    action: str  # e.g. "POST /portal/incidents/{id}/decide" or "cli approve"
    target: str = ""
    outcome: str  # allowed | refused:401 | refused:403 | error:<status> | ok:<status>
    detail: str = ""
    source: str = ""  # client address or "cli"


_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class EncryptionConfig(Model):
    """AES-256-GCM encryption of every Temporal payload (inputs, results, signals, updates,
    queries, memos, failures). Key material: secret `keys_secret`, a list `id:base64key,...`
    (32-byte keys); payloads are written with `current_key` and read with whichever key id
    their metadata names, so rotation is: add the new key, switch `current_key`, keep the old
    one until the namespace retention has passed."""

    enabled: bool = False
    current_key: str | None = None
    keys_secret: str = "payload_keys"
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    decode_role: Role = Role.RESPONDER

    @model_validator(mode="after")
    def _current(self) -> EncryptionConfig:
        if self.enabled and not self.current_key:
            raise ValueError("encryption.current_key: required when encryption is enabled")
        if self.current_key is not None and not _KEY_ID.match(self.current_key):
            raise ValueError(
                f"encryption.current_key {self.current_key!r}: use 1-40 letters, digits, '_', '.', '-'"
            )
        return self


__all__ = [
    "ApiTokenInfo",
    "AuditEntry",
    "AuthConfig",
    "EncryptionConfig",
    "NewApiToken",
    "OidcConfig",
    "Principal",
    "Role",
]
