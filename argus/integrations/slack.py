"""Slack: messages with Block Kit (incoming webhook or Web API `chat.postMessage`), approval
buttons, and the inbound side: request signature check and `block_actions` parsing.

Approval buttons carry `action_id` `argus_approve` / `argus_reject` and a `value` holding the
incident and the proposal hash (JSON), so the gateway can refuse a click on a stale proposal.
Clicks reach ARGUS only if the Slack app that owns the webhook or bot token has Interactivity on
with the gateway's Request URL (integrations.md §7).

Secrets: the webhook URL itself, the bot token (`xoxb-…`), the signing secret. None is ever put
in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import ValidationError

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.templating import NotificationTemplates, shared_links
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, new_client, send
from argus.models import Delivery, Notification
from argus.models.common import Model

SIGNATURE_TOLERANCE_SECONDS = 300
ACTION_PREFIX = "argus_"
# `ok: false` errors that a later attempt can get past; every other code is permanent.
RETRYABLE_API_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


class ApprovalValue(Model):
    """What an approval button carries back."""

    incident: str
    proposal: str | None = None

    def encode(self) -> str:
        return self.model_dump_json(exclude_none=True)


class SlackChannel:
    """`Channel` to one Slack channel: `webhook_url`, or `bot_token` + `channel` for the Web API.

    The Web API path returns the message `ts` (in `Delivery.detail`), which later updates need;
    a webhook returns nothing but `ok`.
    """

    name = "slack"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        channel: str | None = None,
        api_base: str = "https://slack.com/api",
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        if not webhook_url and not (bot_token and channel):
            raise ValueError("slack: give webhook_url, or bot_token + channel")
        self.webhook_url = webhook_url
        self.bot_token = bot_token
        self.channel = channel
        self.api_base = api_base.rstrip("/")
        self.templates = templates or NotificationTemplates()
        self.sent = sent or SentKeys()
        self.http = new_client(timeout=timeout)

    # ---- building ----------------------------------------------------------------------------

    def blocks(self, notification: Notification) -> list[dict[str, Any]]:
        actions = {a.lower() for a in notification.actions}
        buttons = []
        if notification.incident_id:
            value = ApprovalValue(
                incident=notification.incident_id, proposal=notification.proposal_hash
            ).encode()
            if "approve" in actions:
                buttons.append(_button("Approve", "approve", value, "primary"))
            if "reject" in actions:
                buttons.append(_button("Reject", "reject", value, "danger"))
        link_buttons = [
            {
                "type": "button",
                "action_id": f"argus_link_{i}",
                "text": {"type": "plain_text", "text": name.capitalize()},
                "url": url,
            }
            for i, (name, url) in enumerate(shared_links(notification).items())
        ][:5]
        return self.templates.render_json(
            "slack", "blocks.json", notification, buttons=buttons, link_buttons=link_buttons
        )

    def payload(self, notification: Notification) -> dict[str, Any]:
        # `text` is the fallback for notifications and screen readers; Slack wants it with blocks.
        text = f"[{notification.severity.upper()}] {notification.subject}"
        return {"text": text, "blocks": self.blocks(notification)}

    # ---- sending -----------------------------------------------------------------------------

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        payload = self.payload(notification)
        if self.webhook_url:
            send(self.http, "POST", self.webhook_url, "slack", "webhook", json=payload)
            detail = "webhook"
        else:
            body = self._api("chat.postMessage", {"channel": self.channel, **payload, "unfurl_links": False})
            detail = f"{body.get('channel')}:{body.get('ts')}"
        delivery = Delivery(
            channel=self.name, key=notification.key, ok=True, detail=detail, at=datetime.now(UTC)
        )
        return remember_delivery(self.sent, delivery)

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Replace a message posted through the Web API (e.g. buttons → "Approved by …")."""
        self._api("chat.update", {"channel": channel, "ts": ts, "text": text, "blocks": blocks or []})

    def respond(self, response_url: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Answer a click through its `response_url`, replacing the original message."""
        body: dict[str, Any] = {"replace_original": True, "text": text}
        if blocks is not None:
            body["blocks"] = blocks
        send(self.http, "POST", response_url, "slack", "response_url", json=body)

    def _api(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if not self.bot_token:
            raise PermanentError(f"slack {method}: needs a bot token")
        response = send(
            self.http,
            "POST",
            f"{self.api_base}/{method}",
            "slack",
            method,
            json=body,
            headers={
                "Authorization": f"Bearer {self.bot_token}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )
        data = response.json()
        if not data.get("ok"):
            error = str(data.get("error") or "unknown_error")
            message = f"slack {method}: {error}"
            if error in RETRYABLE_API_ERRORS:
                raise IntegrationError(message)
            raise PermanentError(message)
        return data


def _button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{action}",
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": value,
    }


# ---- inbound: signature and block_actions ----------------------------------------------------


class SlackSignatureError(Exception):
    """The request does not prove it came from Slack; answer 401 and act on nothing."""


class SlackPayloadError(ValueError):
    """The interactive payload is not a block action ARGUS understands; answer 400."""


def verify_slack_request(
    signing_secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """Check `X-Slack-Signature` over the raw body, and the timestamp's freshness (replays)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp")
    signature = lowered.get("x-slack-signature")
    if not timestamp:
        raise SlackSignatureError("missing X-Slack-Request-Timestamp header")
    if not signature:
        raise SlackSignatureError("missing X-Slack-Signature header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SlackSignatureError(f"X-Slack-Request-Timestamp is not a number: {timestamp[:20]!r}") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise SlackSignatureError(
            f"stale request: timestamp is {abs(current - sent_at):.0f} s away from now"
            f" (limit {tolerance:.0f} s)"
        )
    base = b"v0:" + timestamp.encode() + b":" + raw_body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SlackSignatureError("bad signature: X-Slack-Signature does not match the body")


class SlackBlockAction(Model):
    """One button click, as the gateway needs it."""

    user: str  # Slack user id
    user_name: str = ""
    action: str  # "approve" / "reject" (the `argus_` prefix removed), or the raw action_id
    value: str
    action_ts: str
    response_url: str
    incident: str | None = None
    proposal_hash: str | None = None
    team: str | None = None
    channel: str | None = None
    message_ts: str | None = None


def parse_block_action(form_body: bytes | str) -> SlackBlockAction:
    """Parse the `payload=` form field of a `block_actions` callback (first action)."""
    text = form_body.decode() if isinstance(form_body, bytes) else form_body
    fields = parse_qs(text, keep_blank_values=True)
    if "payload" not in fields:
        raise SlackPayloadError("form body has no 'payload' field")
    try:
        payload = json.loads(fields["payload"][0])
    except json.JSONDecodeError as exc:
        raise SlackPayloadError(f"payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise SlackPayloadError("payload is not a JSON object")
    if payload.get("type") != "block_actions":
        raise SlackPayloadError(f"payload type is {payload.get('type')!r}, expected 'block_actions'")
    actions = payload.get("actions") or []
    if not actions or not isinstance(actions[0], dict):
        raise SlackPayloadError("payload has no actions")
    action = actions[0]
    user = payload.get("user") or {}
    if not user.get("id"):
        raise SlackPayloadError("payload has no user.id")
    if not payload.get("response_url"):
        raise SlackPayloadError("payload has no response_url")
    action_id = str(action.get("action_id") or "")
    value = str(action.get("value") or "")
    incident = proposal = None
    if action_id.startswith(ACTION_PREFIX) and value:
        try:
            decoded = ApprovalValue.model_validate_json(value)
            incident, proposal = decoded.incident, decoded.proposal
        except ValidationError:
            raise SlackPayloadError(f"button value is not an ARGUS approval value: {value[:80]!r}") from None
    return SlackBlockAction(
        user=user["id"],
        user_name=str(user.get("username") or user.get("name") or ""),
        action=action_id.removeprefix(ACTION_PREFIX),
        value=value,
        action_ts=str(action.get("action_ts") or ""),
        response_url=payload["response_url"],
        incident=incident,
        proposal_hash=proposal,
        team=(payload.get("team") or {}).get("id"),
        channel=(payload.get("channel") or {}).get("id"),
        message_ts=(payload.get("container") or {}).get("message_ts"),
    )
