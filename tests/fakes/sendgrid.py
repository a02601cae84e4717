"""Fake SendGrid v3 `POST /v3/mail/send`: 202 empty with `X-Message-Id`; 400/401/413 with
`{"errors": [{"message", "field", "help"}]}`; checks `Authorization: Bearer <api key>`."""

from __future__ import annotations

import re
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply


def _errors(status: int, message: str, field: str | None = None) -> Reply:
    return Reply(status, json={"errors": [{"message": message, "field": field, "help": None}]})


class FakeSendGrid(FakeServer):
    vendor = "sendgrid"

    def __init__(self, api_key: str = "SG.test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.mail: list[dict[str, Any]] = []
        self.route("POST", r"/v3/mail/send", self._send)

    def error_body(self, status: int) -> Any:
        return {"errors": [{"message": f"Injected failure {status}", "field": None, "help": None}]}

    def authenticate(self, request: Recorded) -> Reply | None:
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return _errors(401, "The provided authorization grant is invalid, expired, or revoked")

    def _send(self, request: Recorded, match: re.Match[str]) -> Reply:
        body = request.json() or {}
        if not body.get("personalizations"):
            return _errors(
                400,
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            )
        if not (body.get("from") or {}).get("email"):
            return _errors(400, "The from object must be provided for every email send.", "from")
        if not body.get("subject"):
            return _errors(400, "The subject is required.", "subject")
        types = [c.get("type") for c in body.get("content", [])]
        if types and types[0] != "text/plain":
            return _errors(
                400, "If present, text/plain content must be first, followed by text/html.", "content"
            )
        self.mail.append(body)
        return Reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})


def start_sendgrid_fake(api_key: str = "SG.test-key") -> FakeSendGrid:
    fake = FakeSendGrid(api_key)
    fake.start()
    return fake
