"""Fake Microsoft Graph `POST /v1.0/users/{id}/sendMail` (202, empty), as msgraph-sdk 1.65 sends it:
the user id percent-encoded (`argus%40example.com`), the body `{"Message": {...}, "SaveToSentItems": false}`.

Checks `authorization: Bearer <token>` against the static token the test's credential hands out
(401 `InvalidAuthenticationToken` otherwise) and that the message has recipients (400
`ErrorInvalidRecipients`). Errors are Graph's `{"error": {"code", "message", "innerError"}}`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .base import FakeServer, Recorded, Reply


def _graph_error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        json={
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": "2026-11-26T10:02:00", "request-id": "req-1"},
            }
        },
    )


class StaticTokenCredential:
    """An azure-identity style credential with a fixed token: what tests inject instead of Entra."""

    def __init__(self, token: str = "graph-test-token") -> None:
        self.token = token
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.calls.append((scopes, kwargs))
        return AccessToken(self.token, int(time.time()) + 3600)


class FakeGraph(FakeServer):
    vendor = "graph"

    def __init__(self, token: str = "graph-test-token") -> None:
        super().__init__()
        self.token = token
        self.sent_mail: list[dict[str, Any]] = []  # (user, message)
        self.route("POST", r"/v1\.0/users/(?P<user>[^/]+)/sendMail", self._send_mail)

    @property
    def base_url(self) -> str:
        return self.url + "/v1.0"

    def error_body(self, status: int) -> Any:
        return {
            "error": {
                "code": "ServiceUnavailable"
                if status >= 500
                else "TooManyRequests"
                if status == 429
                else "BadRequest",
                "message": f"Injected failure {status}",
            }
        }

    def authenticate(self, request: Recorded) -> Reply | None:
        header = request.headers.get("authorization") or ""
        if not header:
            return _graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if header != f"Bearer {self.token}":
            return _graph_error(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.")
        return None

    def _send_mail(self, request: Recorded, match: re.Match[str]) -> Reply:
        # Action parameters are matched case-insensitively by Graph; msgraph-sdk 1.65 sends them
        # PascalCase: {"Message": {...}, "SaveToSentItems": false}.
        body = {k[:1].lower() + k[1:]: v for k, v in (request.json() or {}).items()}
        message = body.get("message") or {}
        if not message.get("toRecipients"):
            return _graph_error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        self.sent_mail.append({"user": match["user"], **body})
        return Reply(202)


def start_graph_fake(token: str = "graph-test-token") -> FakeGraph:
    fake = FakeGraph(token)
    fake.start()
    return fake
