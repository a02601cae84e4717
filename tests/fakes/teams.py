"""Fake Microsoft side of the Teams bot: Entra token endpoint, Bot Connector, Bot Framework OpenID
metadata + JWKS; plus `BotSigningKey` and `invoke_activity` to sign and build the invokes Teams
sends to the bot (docs/integrations.md §3b). Also a Workflows webhook (`POST /workflows/<id>` → 202).

- `POST /{tenant}/oauth2/v2.0/token` (form, client_credentials) → `{"token_type":"Bearer","expires_in":3599,
  "access_token"}`; a wrong secret → 401 `{"error":"invalid_client","error_description":"AADSTS7000215: …"}`.
- `POST /v3/conversations/{id}/activities` (Bearer token from above) → 201 `{"id"}`; `PUT …/activities/{aid}`
  → 200 `{"id"}`; unknown conversation → 404 `{"error":{"code":"ConversationNotFound","message":…}}`;
  bad token → 401 `{"message":"Authorization has been denied for this request."}`.
- `GET /v1/.well-known/openidconfiguration` → metadata with `jwks_uri`; `GET /v1/.well-known/keys` → the
  published keys (`publish_key`, with `endorsements`).
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .base import FakeServer, Recorded, Reply

BOT_ISSUER = "https://api.botframework.com"


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class BotSigningKey:
    """An RSA key playing the Bot Framework's signer: its public JWK and the tokens it signs."""

    def __init__(self, kid: str | None = None, endorsements: tuple[str, ...] = ("msteams",)) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.endorsements = list(endorsements)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64uint(numbers.n),
            "e": _b64uint(numbers.e),
            "endorsements": self.endorsements,
        }

    def token(self, claims: dict[str, Any], alg: str = "RS256", kid: str | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=alg, headers={"kid": kid or self.kid})


def bot_claims(
    app_id: str, service_url: str, *, issuer: str = BOT_ISSUER, lifetime: int = 3600, **extra: Any
) -> dict[str, Any]:
    """The claims of a Bot Framework → bot token."""
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": app_id,
        "serviceurl": service_url,
        "nbf": now - 5,
        "iat": now,
        "exp": now + lifetime,
        **extra,
    }


def invoke_activity(
    *,
    verb: str = "approve",
    data: dict[str, Any] | None = None,
    service_url: str = "https://smba.trafficmanager.net/amer/",
    tenant_id: str = "tenant-1",
    aad_object_id: str = "aad-alice",
    name: str = "Alice",
    invoke_id: str = "f:invoke-1",
    reply_to_id: str = "1700000000001",
    bot_app_id: str = "bot-app-id",
) -> dict[str, Any]:
    """An `adaptiveCard/action` invoke as Teams posts it to the bot's messaging endpoint."""
    return {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": invoke_id,
        "timestamp": "2026-11-26T10:02:00.000Z",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": "29:1abc", "name": name, "aadObjectId": aad_object_id},
        "conversation": {
            "conversationType": "channel",
            "tenantId": tenant_id,
            "id": "19:argus@thread.tacv2;messageid=1700000000001",
        },
        "recipient": {"id": f"28:{bot_app_id}", "name": "ARGUS"},
        "replyToId": reply_to_id,
        "value": {
            "action": {
                "type": "Action.Execute",
                "id": "act-1",
                "verb": verb,
                "data": data or {"incident": "INC-42", "wf": "incident-INC-42", "proposal": "abc123"},
            },
            "trigger": "manual",
        },
        "channelData": {
            "tenant": {"id": tenant_id},
            "team": {"id": "19:team@thread.tacv2"},
            "channel": {"id": "19:argus@thread.tacv2"},
            "source": {"name": "message"},
        },
    }


class FakeTeams(FakeServer):
    vendor = "teams"

    def __init__(
        self,
        *,
        tenant_id: str = "tenant-1",
        app_id: str = "bot-app-id",
        app_password: str = "bot-secret",
        conversations: tuple[str, ...] = ("19:argus@thread.tacv2",),
        token_lifetime: int = 3599,
    ) -> None:
        super().__init__()
        self.tenant_id, self.app_id, self.app_password = tenant_id, app_id, app_password
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # issued access token -> expiry
        self.activities: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in conversations}
        self.webhook_posts: list[dict[str, Any]] = []
        self.keys: list[dict[str, Any]] = []
        self._activity_seq = 1_700_000_000_000
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self._token)
        self.route("POST", r"/v3/conversations/(?P<cid>[^/]+)/activities", self._post_activity)
        self.route("PUT", r"/v3/conversations/(?P<cid>[^/]+)/activities/(?P<aid>[^/]+)", self._put_activity)
        self.route("GET", r"/v1/\.well-known/openidconfiguration", self._openid)
        self.route("GET", r"/v1/\.well-known/keys", lambda r, m: Reply(json={"keys": self.keys}))
        self.route("POST", r"/workflows/(?P<flow>[^/]+)", self._workflow)

    # ---- test helpers ------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return self.url + "/"

    @property
    def openid_url(self) -> str:
        return self.url + "/v1/.well-known/openidconfiguration"

    @property
    def workflows_url(self) -> str:
        return self.url + "/workflows/flow-1?api-version=2016-06-01&sig=SECRETSIG"

    def publish_key(self, key: BotSigningKey) -> None:
        with self.lock:
            self.keys.append(key.jwk())

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def error_body(self, status: int) -> Any:
        return {"error": {"code": "ServiceError", "message": f"Injected failure {status}"}}

    # ---- routes ------------------------------------------------------------------------------

    def _token(self, request: Recorded, match: re.Match[str]) -> Reply:
        form = request.form()
        if match["tenant"] != self.tenant_id:
            return Reply(
                400,
                json={
                    "error": "invalid_request",
                    "error_description": f"AADSTS90002: Tenant '{match['tenant']}' not found.",
                    "error_codes": [90002],
                },
            )
        if form.get("grant_type") != "client_credentials":
            return Reply(
                400,
                json={
                    "error": "unsupported_grant_type",
                    "error_description": "AADSTS70003: The app requested an unsupported grant type.",
                },
            )
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_password:
            return Reply(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret"
                    " being sent in the request is the client secret value, not the client secret ID.",
                    "error_codes": [7000215],
                },
            )
        token = "eyFake." + uuid.uuid4().hex
        self.tokens[token] = time.time() + self.token_lifetime
        return Reply(
            json={
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    def _authorized(self, request: Recorded) -> bool:
        header = request.headers.get("authorization") or ""
        token = header.removeprefix("Bearer ")
        return header.startswith("Bearer ") and self.tokens.get(token, 0) > time.time()

    def _post_activity(self, request: Recorded, match: re.Match[str]) -> Reply:
        if not self._authorized(request):
            return Reply(401, json={"message": "Authorization has been denied for this request."})
        conversation = self.activities.get(match["cid"])
        if conversation is None:
            return Reply(
                404, json={"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}
            )
        activity = request.json() or {}
        if activity.get("type") != "message":
            return Reply(400, json={"error": {"code": "BadArgument", "message": "Unknown activity type"}})
        for attachment in activity.get("attachments", []):
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive" and not isinstance(
                attachment.get("content"), dict
            ):
                return Reply(
                    400,
                    json={
                        "error": {"code": "BadArgument", "message": "Adaptive card content must be an object"}
                    },
                )
        self._activity_seq += 1
        activity_id = str(self._activity_seq)
        conversation[activity_id] = activity
        return Reply(201, json={"id": activity_id})

    def _put_activity(self, request: Recorded, match: re.Match[str]) -> Reply:
        if not self._authorized(request):
            return Reply(401, json={"message": "Authorization has been denied for this request."})
        conversation = self.activities.get(match["cid"])
        if conversation is None or match["aid"] not in conversation:
            return Reply(404, json={"error": {"code": "ActivityNotFound", "message": "Activity not found."}})
        conversation[match["aid"]] = request.json()
        return Reply(200, json={"id": match["aid"]})

    def _openid(self, request: Recorded, match: re.Match[str]) -> Reply:
        return Reply(
            json={
                "issuer": BOT_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    def _workflow(self, request: Recorded, match: re.Match[str]) -> Reply:
        if request.param("sig") != "SECRETSIG":
            return Reply(
                401,
                json={
                    "error": {
                        "code": "DirectApiAuthorizationRequired",
                        "message": "The request must be authenticated.",
                    }
                },
            )
        body = request.json() or {}
        attachments = body.get("attachments") or []
        if (
            body.get("type") != "message"
            or not attachments
            or attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive"
        ):
            return Reply(
                400,
                json={
                    "error": {
                        "code": "InvalidRequestContent",
                        "message": "The request content is not an Adaptive Card message.",
                    }
                },
            )
        self.webhook_posts.append(body)
        return Reply(202)


def start_teams_fake(**kwargs: Any) -> FakeTeams:
    """A started fake Entra + Bot Connector + Bot Framework OpenID/JWKS + Workflows webhook."""
    fake = FakeTeams(**kwargs)
    fake.start()
    return fake
