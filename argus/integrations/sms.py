"""SMS and voice calls through Twilio's REST API (form-encoded, HTTP Basic `AccountSid:AuthToken`).

- SMS: `POST /2010-04-01/Accounts/{sid}/Messages.json` `To, From, Body`
  → 201 `{"sid": "SM…", "status": "queued"}`.
- Voice: `POST …/Calls.json` `To, From, Twiml=<Response><Say>…</Say></Response>` → 201 `{"sid": "CA…"}`.
- Errors: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`; 429 is code 20429.

Which kinds call instead of texting is configurable (`voice_kinds`, default: escalations). One
message or call per recipient, each recorded, so a retry after a partial failure reaches only
those still missing. Base URL configurable (regional edges, tests). Secret: the auth token (or
an API key secret with `api_key_sid`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

import httpx

from argus.integrations.base import PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.templating import NotificationTemplates, links_for
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, new_client, send
from argus.models import Delivery, Notification, NotificationKind

SMS_MAX = 1600  # Twilio's Body limit; longer is refused with 21617


def _twilio_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    code = body.get("code")
    return f"{body.get('message', '')}{f' (Twilio error {code})' if code else ''}"


def twiml_say(text: str, voice: str = "alice", loop: int = 2) -> str:
    return f'<Response><Say voice="{escape(voice)}" loop="{loop}">{escape(text)}</Say></Response>'


class SmsChannel:
    """`Channel` for SMS and voice through Twilio.

    `recipients` in a notification are resolved through `phone_book` (name → E.164 number) or
    taken as numbers when they start with `+`; `default_recipients` otherwise.
    """

    name = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_key_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        phone_book: dict[str, str] | None = None,
        default_recipients: list[str] | None = None,
        voice_kinds: set[NotificationKind] | None = None,
        status_callback: str | None = None,
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        self.phone_book = phone_book or {}
        self.default_recipients = default_recipients or []
        self.voice_kinds = {NotificationKind.ESCALATION} if voice_kinds is None else voice_kinds
        self.status_callback = status_callback
        self.templates = templates or NotificationTemplates()
        self.sent = sent or SentKeys()
        self.http = new_client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            auth=httpx.BasicAuth(api_key_sid or account_sid, auth_token),
        )

    def numbers(self, notification: Notification) -> list[tuple[str, str]]:
        """(person, number) pairs; the person keys their personal links."""
        found = []
        for person in notification.recipients:
            number = self.phone_book.get(person) or (person if person.startswith("+") else None)
            if number:
                found.append((person, number))
        if not found:
            found = [(n, n) for n in self.default_recipients]
        if not found:
            raise PermanentError(f"sms: no phone number for recipients {notification.recipients}")
        return list(dict((number, (person, number)) for person, number in found).values())

    def send(self, notification: Notification) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        voice = notification.kind in self.voice_kinds
        details = []
        for person, number in self.numbers(notification):
            record_key = f"{notification.key}|{number}"
            done = self.sent.get("sms:recipient", record_key)
            if done is None:
                links = links_for(notification, person)
                if voice:
                    text = self.templates.render("sms", "voice.txt", notification, links=links)
                    sid = self._create(
                        "Calls.json", {"To": number, "From": self.from_number, "Twiml": twiml_say(text)}
                    )
                else:
                    text = self.templates.render("sms", "text.txt", notification, links=links)
                    body = text if len(text) <= SMS_MAX else text[: SMS_MAX - 1] + "…"
                    sid = self._create(
                        "Messages.json", {"To": number, "From": self.from_number, "Body": body}
                    )
                done = {"sid": sid}
                self.sent.put("sms:recipient", record_key, done)
            details.append(f"{number}:{done['sid']}")
        delivery = Delivery(
            channel=self.name, key=notification.key, ok=True, detail=", ".join(details), at=datetime.now(UTC)
        )
        return remember_delivery(self.sent, delivery)

    def _create(self, resource: str, form: dict[str, str]) -> str:
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        path = f"/2010-04-01/Accounts/{self.account_sid}/{resource}"
        operation = "call" if resource.startswith("Calls") else "message"
        response = send(self.http, "POST", path, "twilio", operation, _twilio_error, data=form)
        return str(response.json().get("sid", ""))
