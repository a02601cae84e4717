"""Fake Twilio REST API 2010-04-01: Messages.json and Calls.json (form-encoded, Basic auth).

201 with the resource JSON (`sid`, `status: queued`, …); errors `{"code", "message", "more_info", "status"}`:
21211 invalid To, 21617 body too long, 21205 bad Url/Twiml, 20003 authentication.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply


def _error(status: int, code: int, message: str) -> Reply:
    return Reply(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio(FakeServer):
    vendor = "twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-token") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, str]] = []
        self.calls: list[dict[str, str]] = []
        self.unavailable: set[str] = set()  # numbers whose sends answer 503 (partial-failure tests)
        base = r"/2010-04-01/Accounts/(?P<sid>AC\w+)"
        self.route("POST", base + r"/Messages\.json", self._message)
        self.route("POST", base + r"/Calls\.json", self._call)

    def error_body(self, status: int) -> Any:
        code = 20429 if status == 429 else 20500
        return {
            "code": code,
            "message": "Too Many Requests" if status == 429 else f"Injected failure {status}",
            "more_info": "",
            "status": status,
        }

    def authenticate(self, request: Recorded) -> Reply | None:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") == expected:
            return None
        return _error(401, 20003, "Authenticate")

    def _valid_number(self, number: str) -> bool:
        return bool(re.fullmatch(r"\+[1-9]\d{6,14}", number or ""))

    def _message(self, request: Recorded, match: re.Match[str]) -> Reply:
        form = request.form()
        if not self._valid_number(form.get("To", "")):
            return _error(400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number.")
        if form.get("To") in self.unavailable:
            return _error(503, 20503, "Service Unavailable")
        if len(form.get("Body", "")) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = "SM" + uuid.uuid4().hex
        self.messages.append({"sid": sid, **form})
        return Reply(
            201,
            json={
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )

    def _call(self, request: Recorded, match: re.Match[str]) -> Reply:
        form = request.form()
        if not self._valid_number(form.get("To", "")):
            return _error(400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number.")
        if not form.get("Twiml") and not form.get("Url"):
            return _error(400, 21205, "Url parameter is required.")
        sid = "CA" + uuid.uuid4().hex
        self.calls.append({"sid": sid, **form})
        return Reply(
            201,
            json={
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "status": "queued",
                "direction": "outbound-api",
            },
        )


def start_twilio_fake(**kwargs: Any) -> FakeTwilio:
    fake = FakeTwilio(**kwargs)
    fake.start()
    return fake
