"""Microsoft Teams: one-way cards to a Workflows webhook, the ARGUS bot's approval cards, and the
inbound side of the bot (JWT validation, invoke parsing, invoke replies).

Option A of integrations.md §3b is primary: the bot posts an Adaptive Card 1.5 proactively through
the Bot Connector (`POST {serviceUrl}v3/conversations/{id}/activities`) with `Action.Execute`
approve/reject buttons; a click comes back as an `adaptiveCard/action` invoke to
`POST /api/teams/messages`, whose bearer JWT `BotFrameworkAuth` checks exactly as the Bot Framework
does. Every card also gets `Action.OpenUrl` buttons to the signed links (option C) when the
notification has them, which is all a Workflows-webhook card (option B) can offer.

Secrets: the bot's app password (client secret), the Workflows webhook URL (it embeds a `sig`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm
from pydantic import Field, ValidationError

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.templating import NotificationTemplates, shared_links
from argus.integrations.vendor_http import (
    DEFAULT_TIMEOUT,
    json_error_message,
    new_client,
    send,
    shared_ssl_context,
)
from argus.models import Delivery, Notification
from argus.models.common import Model, OpenModel

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
BOT_OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_ISSUER = "https://api.botframework.com"
BOT_SCOPE = "https://api.botframework.com/.default"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512")
CLOCK_SKEW_SECONDS = 300
KEYS_MAX_AGE_SECONDS = 24 * 3600  # refresh the signing keys daily…
UNKNOWN_KID_REFRESH_SECONDS = 3600  # …or on an unknown kid, at most hourly


# `Notification.workflow_id` now names the workflow an approval answers; kept as a name for callers.
TeamsNotification = Notification


# ---- cards ---------------------------------------------------------------------------------


def card_actions(
    notification: Notification, *, interactive: bool, workflow_id: str | None = None
) -> list[dict[str, Any]]:
    """Action.Execute approve/reject (bot cards only), then Action.OpenUrl to the shared links."""
    actions: list[dict[str, Any]] = []
    wanted = {a.lower() for a in notification.actions}
    if interactive and notification.incident_id:
        data = {
            "incident": notification.incident_id,
            "wf": workflow_id or notification.incident_id,
            "proposal": notification.proposal_hash,
        }
        for verb, title, style in (("approve", "Approve", "positive"), ("reject", "Reject", "destructive")):
            if verb in wanted:
                actions.append(
                    {"type": "Action.Execute", "title": title, "verb": verb, "data": data, "style": style}
                )
    links = shared_links(notification)
    for verb in ("approve", "reject"):
        if verb in links and (verb in wanted or not wanted):
            # The signed-link fallback: a confirm page that acts on POST (never on GET).
            title = f"{verb.capitalize()} in browser" if interactive else verb.capitalize()
            actions.append({"type": "Action.OpenUrl", "title": title, "url": links[verb]})
    for name, url in links.items():
        if name not in ("approve", "reject"):
            actions.append(
                {"type": "Action.OpenUrl", "title": name.replace("_", " ").capitalize(), "url": url}
            )
    return actions


def notification_card(
    notification: Notification,
    templates: NotificationTemplates,
    *,
    interactive: bool,
    workflow_id: str | None = None,
) -> dict[str, Any]:
    actions = card_actions(notification, interactive=interactive, workflow_id=workflow_id)
    return templates.render_json(
        "teams", "card.json", notification, actions=actions, card_version=CARD_VERSION
    )


def card_attachment(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def decided_card(
    *,
    incident: str,
    decision: str,
    approver: str,
    at: datetime,
    title: str | None = None,
    proposal_hash: str | None = None,
) -> dict[str, Any]:
    """The card after a decision: who decided what and when, and no buttons left to press."""
    verb = {"approve": "Approved", "reject": "Rejected"}.get(decision.lower(), decision.capitalize())
    when = at.astimezone(UTC).strftime("%H:%M UTC")
    facts = [{"title": "Incident", "value": incident}]
    if proposal_hash:
        facts.append({"title": "Proposal", "value": proposal_hash})
    body: list[dict[str, Any]] = []
    if title:
        body.append({"type": "TextBlock", "text": title, "size": "Large", "weight": "Bolder", "wrap": True})
    body += [
        {"type": "FactSet", "facts": facts},
        {
            "type": "TextBlock",
            "text": f"{verb} by {approver} at {when}",
            "weight": "Bolder",
            "color": "Good" if verb == "Approved" else "Attention",
            "wrap": True,
        },
    ]
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
        "actions": [],
    }


def card_reply(card: dict[str, Any]) -> dict[str, Any]:
    """The invoke response that replaces the clicked card in place."""
    return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}


def message_reply(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


def error_reply(status_code: int, code: str, message: str) -> dict[str, Any]:
    """The invoke error response (Teams shows `message`); 400 for bad input, 500 for ours."""
    return {
        "statusCode": status_code,
        "type": "application/vnd.microsoft.error",
        "value": {"code": code, "message": message},
    }


# ---- option B: Workflows webhook -------------------------------------------------------------


class TeamsWorkflowsChannel:
    """`Channel` to a Teams Workflows "When a Teams webhook request is received" flow.

    One-way: its cards reach no bot, so they carry only Action.OpenUrl (signed links). Secret: the
    webhook URL.
    """

    name = "teams-webhook"

    def __init__(
        self,
        webhook_url: str,
        *,
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.webhook_url = webhook_url
        self.templates = templates or NotificationTemplates()
        self.sent = sent or SentKeys()
        self.http = new_client(timeout=timeout)

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        card = notification_card(notification, self.templates, interactive=False)
        envelope = {
            "type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
        }
        response = send(self.http, "POST", self.webhook_url, "teams", "workflows webhook", json=envelope)
        delivery = Delivery(
            channel=self.name,
            key=notification.key,
            ok=True,
            detail=f"HTTP {response.status_code}",
            at=datetime.now(UTC),
        )
        return remember_delivery(self.sent, delivery)


# ---- option A: the bot, outbound -------------------------------------------------------------


class BotTokenProvider:
    """Client-credentials token for the Bot Connector, cached until 5 minutes before expiry."""

    def __init__(
        self,
        app_id: str,
        app_password: str,
        tenant_id: str,
        *,
        authority: str = ENTRA_AUTHORITY,
        scope: str = BOT_SCOPE,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self._secret = app_password
        self.token_url = f"{authority.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self.scope = scope
        self.clock = clock
        self.http = new_client(timeout=timeout)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at - 300:
                response = send(
                    self.http,
                    "POST",
                    self.token_url,
                    "entra",
                    "bot token",
                    json_error_message("error_description", "error"),
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.app_id,
                        "client_secret": self._secret,
                        "scope": self.scope,
                    },
                )
                body = response.json()
                self._token = str(body["access_token"])
                self._expires_at = self.clock() + float(body.get("expires_in", 3599))
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class TeamsBotChannel:
    """`Channel` where the ARGUS bot posts cards proactively into one conversation.

    Needs the bot's Entra app (`app_id`, secret `app_password`, `tenant_id` for a single-tenant bot)
    and where it is installed: `service_url` and `conversation_id`, stored from the install's
    `conversationUpdate` (integrations.md §3b).
    """

    name = "teams"

    def __init__(
        self,
        app_id: str,
        app_password: str,
        tenant_id: str,
        service_url: str,
        conversation_id: str,
        *,
        authority: str = ENTRA_AUTHORITY,
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        token_provider: BotTokenProvider | None = None,
    ) -> None:
        self.service_url = service_url if service_url.endswith("/") else service_url + "/"
        self.conversation_id = conversation_id
        self.templates = templates or NotificationTemplates()
        self.sent = sent or SentKeys()
        self.tokens = token_provider or BotTokenProvider(
            app_id, app_password, tenant_id, authority=authority, timeout=timeout
        )
        self.http = new_client(timeout=timeout)

    def _activities_url(self, activity_id: str | None = None) -> str:
        url = f"{self.service_url}v3/conversations/{quote(self.conversation_id, safe='')}/activities"
        return url if activity_id is None else f"{url}/{quote(activity_id, safe='')}"

    def _call(self, method: str, url: str, operation: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        try:
            return send(
                self.http,
                method,
                url,
                "teams",
                operation,
                json_error_message("error.message", "message"),
                json=body,
                headers=headers,
            )
        except PermanentError as exc:
            if "HTTP 401" in str(exc):
                # A revoked or rotated token: drop it so the activity's retry fetches a new one.
                self.tokens.invalidate()
                raise IntegrationError(str(exc)) from None
            raise

    def card(self, notification: Notification) -> dict[str, Any]:
        return notification_card(
            notification, self.templates, interactive=True, workflow_id=notification.workflow_id
        )

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        activity = {
            "type": "message",
            "summary": notification.subject,  # the toast / activity-feed preview
            "attachments": [card_attachment(self.card(notification))],
        }
        response = self._call("POST", self._activities_url(), "post card", activity)
        activity_id = str(response.json().get("id", ""))
        delivery = Delivery(
            channel=self.name, key=notification.key, ok=True, detail=activity_id, at=datetime.now(UTC)
        )
        return remember_delivery(self.sent, delivery)

    def update_card(self, activity_id: str, card: dict[str, Any]) -> None:
        """Replace a posted card (e.g. with `decided_card(...)` when a decision came another way)."""
        activity = {"type": "message", "id": activity_id, "attachments": [card_attachment(card)]}
        self._call("PUT", self._activities_url(activity_id), "update card", activity)


# ---- option A: the bot, inbound --------------------------------------------------------------


class TeamsAuthError(Exception):
    """The bearer token of a bot request is refused; `reason` says why. Answer 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BotClaims(OpenModel):
    iss: str
    aud: str
    exp: int
    serviceurl: str
    appid: str | None = None


class BotFrameworkAuth:
    """Validates `Authorization: Bearer <jwt>` on `POST /api/teams/messages` (integrations.md §3b):

    keys from the Bot Framework OpenID metadata's `jwks_uri` (cached; refreshed daily, or on an
    unknown `kid` at most hourly); `alg` RS256/384/512; the key's `endorsements` contain the
    activity's `channelId`; `iss` is the Bot Framework; `aud` is our app id; `exp` with 5 minutes'
    skew; the `serviceurl` claim equals the activity's `serviceUrl`.
    """

    def __init__(
        self,
        app_id: str,
        *,
        openid_url: str = BOT_OPENID_URL,
        issuer: str = BOT_ISSUER,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.openid_url = openid_url
        self.issuer = issuer
        self.timeout = timeout
        self.clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch_keys(self) -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=self.timeout, verify=shared_ssl_context()) as http:
            try:
                metadata = await http.get(self.openid_url)
                metadata.raise_for_status()
                jwks = await http.get(metadata.json()["jwks_uri"])
                jwks.raise_for_status()
                keys = jwks.json()["keys"]
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise IntegrationError(
                    f"teams: cannot fetch Bot Framework signing keys ({type(exc).__name__})"
                ) from None
        return {k["kid"]: k for k in keys if isinstance(k, dict) and "kid" in k}

    async def _refresh(self, *, reason: str) -> None:
        try:
            keys = await self._fetch_keys()
        except IntegrationError:
            if not self._keys:
                raise
            return  # keep serving with the cached keys; the next request tries again
        self._keys, self._fetched_at = keys, self.clock()

    async def signing_key(self, kid: str) -> dict[str, Any]:
        async with self._lock:
            now = self.clock()
            if self._fetched_at is None or now - self._fetched_at > KEYS_MAX_AGE_SECONDS:
                await self._refresh(reason="daily")
            elif kid not in self._keys and now - self._fetched_at >= UNKNOWN_KID_REFRESH_SECONDS:
                await self._refresh(reason="unknown kid")
            if kid not in self._keys:
                raise TeamsAuthError(f"unknown signing key kid {kid!r}")
            return self._keys[kid]

    async def authenticate(self, authorization: str | None, activity: Mapping[str, Any]) -> BotClaims:
        if not authorization or not authorization.startswith("Bearer "):
            raise TeamsAuthError("missing bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TeamsAuthError("malformed token") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TeamsAuthError(f"algorithm {alg!r} not allowed")
        kid = header.get("kid")
        if not kid:
            raise TeamsAuthError("token header has no kid")
        jwk = await self.signing_key(str(kid))
        channel_id = activity.get("channelId")
        if not channel_id or channel_id not in (jwk.get("endorsements") or []):
            raise TeamsAuthError(f"signing key is not endorsed for channel {channel_id!r}")
        try:
            key = RSAAlgorithm.from_jwk(json.dumps(jwk))
            claims = jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=[alg],
                audience=self.app_id,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidSignatureError:
            raise TeamsAuthError("bad signature") from None
        except jwt.ExpiredSignatureError:
            raise TeamsAuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise TeamsAuthError("wrong audience: the token is not for this bot") from None
        except jwt.InvalidIssuerError:
            raise TeamsAuthError("wrong issuer") from None
        except jwt.ImmatureSignatureError:
            raise TeamsAuthError("token not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TeamsAuthError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise TeamsAuthError(f"invalid token ({type(exc).__name__})") from None
        service_url = claims.get("serviceurl")
        if not service_url:
            raise TeamsAuthError("token has no serviceurl claim")
        if str(service_url).rstrip("/") != str(activity.get("serviceUrl") or "").rstrip("/"):
            raise TeamsAuthError("serviceurl claim does not match the activity's serviceUrl")
        return BotClaims.model_validate(claims)


# ---- invoke parsing --------------------------------------------------------------------------


class TeamsInvokeError(ValueError):
    """The activity is not an Action.Execute invoke ARGUS can act on; answer with `error_reply(400, …)`."""


class TeamsInvoke(Model):
    verb: str
    data: dict[str, Any] = Field(default_factory=dict)
    user_aad_id: str
    user_name: str = ""
    tenant_id: str
    invoke_id: str
    reply_to_id: str | None = None
    service_url: str
    channel_id: str
    conversation_id: str

    @property
    def incident(self) -> str | None:
        value = self.data.get("incident")
        return None if value is None else str(value)

    @property
    def workflow_id(self) -> str | None:
        value = self.data.get("wf")
        return None if value is None else str(value)

    @property
    def proposal_hash(self) -> str | None:
        value = self.data.get("proposal")
        return None if value is None else str(value)

    @property
    def idempotency_key(self) -> str:
        return f"teams:{self.invoke_id}:{self.verb}"


def parse_invoke(activity_json: bytes | str | Mapping[str, Any]) -> TeamsInvoke:
    """The `adaptiveCard/action` invoke of a card button, as a typed model."""
    if isinstance(activity_json, bytes | str):
        try:
            activity = json.loads(activity_json)
        except json.JSONDecodeError as exc:
            raise TeamsInvokeError(f"activity is not JSON: {exc}") from None
    else:
        activity = dict(activity_json)
    if not isinstance(activity, dict):
        raise TeamsInvokeError("activity is not a JSON object")
    if activity.get("type") != "invoke":
        raise TeamsInvokeError(f"activity type is {activity.get('type')!r}, expected 'invoke'")
    if activity.get("name") != "adaptiveCard/action":
        raise TeamsInvokeError(f"invoke name is {activity.get('name')!r}, expected 'adaptiveCard/action'")
    action = (activity.get("value") or {}).get("action")
    if not isinstance(action, dict):
        raise TeamsInvokeError("invoke has no value.action")
    if action.get("type") != "Action.Execute":
        raise TeamsInvokeError(f"action type is {action.get('type')!r}, expected 'Action.Execute'")
    if not action.get("verb"):
        raise TeamsInvokeError("action has no verb")
    data = action.get("data") or {}
    if not isinstance(data, dict):
        raise TeamsInvokeError("action data is not an object")
    sender = activity.get("from") or {}
    if not sender.get("aadObjectId"):
        raise TeamsInvokeError("from.aadObjectId is missing: the approver cannot be identified")
    conversation = activity.get("conversation") or {}
    tenant = conversation.get("tenantId") or ((activity.get("channelData") or {}).get("tenant") or {}).get(
        "id"
    )
    if not tenant:
        raise TeamsInvokeError("no tenant id (conversation.tenantId or channelData.tenant.id)")
    for field in ("id", "serviceUrl", "channelId"):
        if not activity.get(field):
            raise TeamsInvokeError(f"activity has no {field}")
    try:
        return TeamsInvoke(
            verb=str(action["verb"]),
            data=data,
            user_aad_id=str(sender["aadObjectId"]),
            user_name=str(sender.get("name") or ""),
            tenant_id=str(tenant),
            invoke_id=str(activity["id"]),
            reply_to_id=activity.get("replyToId"),
            service_url=str(activity["serviceUrl"]),
            channel_id=str(activity["channelId"]),
            conversation_id=str(conversation.get("id") or ""),
        )
    except ValidationError as exc:  # pragma: no cover - the checks above cover the fields
        raise TeamsInvokeError(str(exc)) from None
