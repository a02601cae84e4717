"""Fake Slack: incoming webhooks, Web API `chat.postMessage`/`chat.update`, `response_url`s, per
docs/integrations.md §7; plus helpers that build signed `block_actions` callbacks as Slack sends them.

- Webhook `POST /services/T…/B…/<secret>` → 200 `ok`; errors 4xx plain text (`invalid_payload`,
  `no_text`, `invalid_blocks`, `no_service` for an unknown hook).
- Web API `POST /api/chat.postMessage` with `Authorization: Bearer xoxb-…`
  → 200 `{"ok":true,"channel","ts","message"}`
  or 200 `{"ok":false,"error":"invalid_auth"|"channel_not_found"|"no_text"|"invalid_blocks"}`.
- `POST /actions/<anything>` (a response_url) → 200 `{"ok":true}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from .base import FakeServer, Recorded, Reply

WEBHOOK_PATH = "/services/T0000001/B0000001/XXXXXXXXXXXXXXXXXXXXXXXX"


def _blocks_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            return "invalid_blocks"
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element.get("type") == "button" and len(element.get("value", "")) > 2000:
                return "invalid_blocks"
    return None


class FakeSlack(FakeServer):
    vendor = "slack"

    def __init__(
        self, *, bot_token: str = "xoxb-test-token", channels: tuple[str, ...] = ("C0ARGUS",)
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.channels = set(channels)
        self.webhook_messages: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> message
        self.responses: list[dict[str, Any]] = []
        self._ts = 1_700_000_000
        self.route("POST", r"/services/(?P<hook>.+)", self._webhook)
        self.route("POST", r"/api/chat\.postMessage", self._post_message)
        self.route("POST", r"/api/chat\.update", self._update)
        self.route("POST", r"/actions/.+", self._response_url)

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def api_base(self) -> str:
        return self.url + "/api"

    def error_body(self, status: int) -> Any:
        return None

    def fail(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        # Slack's HTTP errors are plain text.
        if kwargs.get("json") is None and kwargs.get("body") is None:
            kwargs["body"] = "rate_limited" if kwargs.get("status") == 429 else "internal_error"
        return super().fail(*args, **kwargs)

    def _webhook(self, request: Recorded, match: re.Match[str]) -> Reply:
        if request.path != WEBHOOK_PATH:
            return Reply(404, body="no_service")
        try:
            body = request.json()
        except ValueError:
            return Reply(400, body="invalid_payload")
        if not isinstance(body, dict):
            return Reply(400, body="invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Reply(400, body="no_text")
        if "blocks" in body and _blocks_problem(body["blocks"]):
            return Reply(400, body="invalid_blocks")
        self.webhook_messages.append(body)
        return Reply(200, body="ok")

    def _authorized(self, request: Recorded) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.bot_token}"

    def _post_message(self, request: Recorded, match: re.Match[str]) -> Reply:
        if not self._authorized(request):
            return Reply(json={"ok": False, "error": "invalid_auth"})
        body = request.json() if "json" in (request.headers.get("content-type") or "") else request.form()
        channel = body.get("channel")
        if channel not in self.channels:
            return Reply(json={"ok": False, "error": "channel_not_found"})
        if not body.get("text") and not body.get("blocks"):
            return Reply(json={"ok": False, "error": "no_text"})
        if "blocks" in body and _blocks_problem(body["blocks"]):
            return Reply(json={"ok": False, "error": "invalid_blocks"})
        self._ts += 1
        ts = f"{self._ts}.000100"
        message = {
            "type": "message",
            "text": body.get("text", ""),
            "blocks": body.get("blocks", []),
            "ts": ts,
            "bot_id": "B0ARGUS",
        }
        self.messages[(channel, ts)] = message
        return Reply(json={"ok": True, "channel": channel, "ts": ts, "message": message})

    def _update(self, request: Recorded, match: re.Match[str]) -> Reply:
        if not self._authorized(request):
            return Reply(json={"ok": False, "error": "invalid_auth"})
        body = request.json()
        key = (body.get("channel"), body.get("ts"))
        if key not in self.messages:
            return Reply(json={"ok": False, "error": "message_not_found"})
        self.messages[key].update({"text": body.get("text", ""), "blocks": body.get("blocks", [])})
        return Reply(json={"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text", "")})

    def _response_url(self, request: Recorded, match: re.Match[str]) -> Reply:
        self.responses.append(request.json())
        return Reply(json={"ok": True})


def sign_slack_request(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack would send with `body` (for gateway tests)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def block_action_body(
    *,
    action_id: str = "argus_approve",
    value: str = '{"incident":"INC-42","proposal":"abc123"}',
    user_id: str = "U0ALICE",
    username: str = "alice",
    response_url: str = "https://hooks.slack.com/actions/T0000001/1/abc",
    action_ts: str = "1700000123.000200",
) -> bytes:
    """A `block_actions` callback body (`payload=<url-encoded JSON>`) as Slack posts it."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "name": username, "team_id": "T0000001"},
        "api_app_id": "A0ARGUS",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000001.000100",
            "channel_id": "C0ARGUS",
            "is_ephemeral": False,
        },
        "trigger_id": "123.456.abc",
        "team": {"id": "T0000001", "domain": "acme"},
        "channel": {"id": "C0ARGUS", "name": "incidents"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "argus_approval",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
                "style": "primary",
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def start_slack_fake(**kwargs: Any) -> FakeSlack:
    fake = FakeSlack(**kwargs)
    fake.start()
    return fake
