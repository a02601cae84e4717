"""Roles and tokens for the portal, the gateway API and the CLI; OIDC sign-in; the audit log."""

from .middleware import AuthMiddleware
from .policy import Rule, build_table, rule_for
from .service import AuthService, auth_enabled, auth_url, role_for
from .store import AuthError, AuthStore

__all__ = [
    "AuthError",
    "AuthMiddleware",
    "AuthService",
    "AuthStore",
    "Rule",
    "auth_enabled",
    "auth_url",
    "build_table",
    "role_for",
    "rule_for",
]
