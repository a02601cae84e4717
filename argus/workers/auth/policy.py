"""Which role each gateway route needs: one table, read top to bottom, first match wins.

Kinds of rule:
  public  no credentials (health, metrics, sign-in pages, CORS preflights)
  link    the signed approval link in the request is the credential (email/card approvals)
  self    a webhook that verifies its own signature (`auth.self_verified_paths`)
  ingest  machine-to-machine pushes (alerts, changes, heartbeat pings, spans): a token with
          `auth.ingest_role`, or the legacy webhook bearer token (`gateway.require_token`)
  role    a person or token with at least `role`

Anything not listed needs `viewer` to read and `admin` to change: a new route is closed until
someone decides who may use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from argus.models.security import AuthConfig, EncryptionConfig, Role

READ_METHODS = {"GET", "HEAD"}


@dataclass(frozen=True)
class Rule:
    kind: str  # public | link | self | ingest | role
    role: Role | None = None


@dataclass(frozen=True)
class _Entry:
    methods: frozenset[str] | None  # None: any
    pattern: re.Pattern[str]
    rule: Rule


def _e(methods: str | None, pattern: str, rule: Rule) -> _Entry:
    ms = frozenset(methods.split()) if methods else None
    return _Entry(ms, re.compile(f"(?:{pattern})\\Z"), rule)


PUBLIC = Rule("public")
LINK = Rule("link")
INGEST = Rule("ingest")
VIEWER, RESPONDER = Rule("role", Role.VIEWER), Rule("role", Role.RESPONDER)
APPROVER, ADMIN = Rule("role", Role.APPROVER), Rule("role", Role.ADMIN)


def build_table(auth: AuthConfig, encryption: EncryptionConfig) -> list[_Entry]:
    decode = Rule("role", encryption.decode_role)
    table = [
        _e("OPTIONS", r"/.*", PUBLIC),  # CORS preflight carries no credentials by design
        _e("GET HEAD", r"/(healthz|metrics|favicon\.ico)", PUBLIC),
        _e(None, r"/portal/(login|logout-done)", PUBLIC),
        _e("GET", r"/portal/static/.*", PUBLIC),
        _e(None, r"/auth/oidc/(start|callback)", PUBLIC),
        _e(None, r"/approve", LINK),
        # vendor callbacks that check their own credentials (Bot Framework JWT, Slack signature,
        # ticket webhook secrets: docs/people.md)
        _e("POST", r"/api/teams/messages|/api/slack/actions|/api/tickets/(jira|servicenow)", Rule("self")),
        # machine pushes
        _e("POST", r"/api/v2/alerts", INGEST),
        _e("POST", r"/api/v1/alerts(/[a-z_-]+)?", INGEST),
        _e("POST", r"/api/v1/changes", INGEST),
        _e("POST", r"/api/v1/heartbeats/[^/]+", INGEST),
        _e("POST", r"/v1/traces", INGEST),
        # the codec server reveals what is in the history
        _e("POST", r"/codec/(decode|encode)", decode),
        # people
        _e(None, r"/(api/v1|portal)/tokens(/.*)?", ADMIN),
        _e(None, r"/(api/v1|portal)/audit(/.*)?", ADMIN),
        _e("POST", r"/(api/v1|portal)/incidents/[^/]+/(approve|reject|decide)", APPROVER),
        _e("POST", r"/(api/v1|portal)/incidents/[^/]+/(ack|comment|resolve)", RESPONDER),
        _e("POST", r"/(api/v1|portal)/silences(/[^/]+/(expire|update))?", RESPONDER),
        _e("POST", r"/api/v2/silences", RESPONDER),  # Alertmanager's silence API (amtool)
        _e("DELETE", r"/api/v2/silence/[^/]+", RESPONDER),
        _e("POST", r"/portal/logout", VIEWER),
        _e("GET HEAD", r"/(api/v1|api/v2|portal|v1)(/.*)?", VIEWER),
        _e("GET HEAD", r"/docs|/openapi\.json|/redoc", VIEWER),
    ]
    own = [_e(None, re.escape(p) + r"(/.*)?", Rule("self")) for p in auth.self_verified_paths]
    return own + table


def rule_for(table: list[_Entry], method: str, path: str) -> Rule:
    for entry in table:
        if (entry.methods is None or method in entry.methods) and entry.pattern.match(path):
            return entry.rule
    return VIEWER if method in READ_METHODS else ADMIN


def changes_state(method: str) -> bool:
    return method not in READ_METHODS and method != "OPTIONS"
