"""Email: SMTP (smtplib), Microsoft Graph `sendMail` (msgraph-sdk), SendGrid v3 (httpx).

Every channel sends one message per recipient, because approval links are personal (a signed
link for Alice must not reach Bob), and records each (key, recipient) sent, so a retry after a
partial failure mails only those still missing. Subject, text and HTML come from Jinja2 templates
(`email/…`, overridable). The SMTP Message-ID is derived from the key and recipient, so even a
duplicate that slips through the crash window is recognisable as one by mail systems; messages of
one incident share a `References` root so clients thread them.

Secrets: SMTP password, the Graph credential (injected), the SendGrid API key.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.templating import NotificationTemplates, links_for
from argus.integrations.vendor_http import (
    DEFAULT_TIMEOUT,
    json_error_message,
    new_client,
    parse_retry_after,
    send,
    shared_ssl_context,
)
from argus.models import Delivery, Notification
from argus.models.common import Model

T = TypeVar("T")


class EmailParts(Model):
    subject: str
    text: str
    html: str


class Addressee(Model):
    person: str  # the name links are keyed by (`approve:<person>`), or the address itself
    address: str


def message_id(key: str, address: str, domain: str) -> str:
    digest = hashlib.sha256(f"{key}\n{address.lower()}".encode()).hexdigest()[:32]
    return f"<argus.{digest}@{domain}>"


def thread_id(incident_id: str, domain: str) -> str:
    return f"<argus.incident.{hashlib.sha256(incident_id.encode()).hexdigest()[:24]}@{domain}>"


class _Mailer:
    """What the three channels share: addressing, rendering, once-per-recipient bookkeeping."""

    name = "email"

    def __init__(
        self,
        *,
        sender: str,
        default_recipients: list[str] | None,
        address_book: dict[str, str] | None,
        templates: NotificationTemplates | None,
        sent: SentKeys | None,
    ) -> None:
        self.sender = sender
        self.default_recipients = default_recipients or []
        self.address_book = address_book or {}
        self.templates = templates or NotificationTemplates()
        self.sent = sent or SentKeys()

    def addressees(self, notification: Notification) -> list[Addressee]:
        found: list[Addressee] = []
        for person in notification.recipients:
            address = self.address_book.get(person) or (person if "@" in person else None)
            if address:
                found.append(Addressee(person=person, address=address))
        if not found:
            found = [Addressee(person=a, address=a) for a in self.default_recipients]
        if not found:
            raise PermanentError(f"{self.name}: no email address for recipients {notification.recipients}")
        return list({a.address.lower(): a for a in found}.values())

    def render(self, notification: Notification, person: str) -> EmailParts:
        links = links_for(notification, person)
        return EmailParts(
            subject=" ".join(
                self.templates.render("email", "subject.txt", notification, links=links).split()
            ),
            text=self.templates.render("email", "text.txt", notification, links=links) + "\n",
            html=self.templates.render("email", "html", notification, links=links),
        )

    def deliver(
        self, notification: Notification, send_one: Callable[[Addressee, EmailParts], str]
    ) -> Delivery:
        previous = previous_delivery(self.sent, self.name, notification.key)
        if previous is not None:
            return previous
        details = []
        for addressee in self.addressees(notification):
            scope_key = f"{notification.key}|{addressee.address.lower()}"
            done = self.sent.get(f"{self.name}:recipient", scope_key)
            if done is None:
                detail = send_one(addressee, self.render(notification, addressee.person))
                done = {"detail": detail}
                self.sent.put(f"{self.name}:recipient", scope_key, done)
            details.append(f"{addressee.address}:{done['detail']}")
        delivery = Delivery(
            channel=self.name, key=notification.key, ok=True, detail=", ".join(details), at=datetime.now(UTC)
        )
        return remember_delivery(self.sent, delivery)


# ---- SMTP ------------------------------------------------------------------------------------


class SmtpChannel(_Mailer):
    """`Channel` over SMTP. `starttls=True` upgrades the connection; `username`/`password` log in."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        default_recipients: list[str] | None = None,
        address_book: dict[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        message_id_domain: str = "argus.local",
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
    ) -> None:
        super().__init__(
            sender=sender,
            default_recipients=default_recipients,
            address_book=address_book,
            templates=templates,
            sent=sent,
        )
        self.host, self.port = host, port
        self.username, self._password = username, password
        self.starttls = starttls
        self.tls_context = tls_context
        self.timeout = timeout
        self.domain = message_id_domain

    def build(self, notification: Notification, addressee: Addressee, parts: EmailParts) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = addressee.address
        message["Subject"] = parts.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(notification.key, addressee.address, self.domain)
        if notification.incident_id:
            root = thread_id(notification.incident_id, self.domain)
            message["References"] = root
            message["In-Reply-To"] = root
            message["X-Argus-Incident"] = notification.incident_id
        message["X-Argus-Kind"] = str(notification.kind)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message.set_content(parts.text)
        message.add_alternative(parts.html, subtype="html")
        return message

    def send(self, notification: Notification) -> Delivery:
        return self.deliver(
            notification, lambda who, parts: self._send_one(self.build(notification, who, parts))
        )

    def _send_one(self, message: EmailMessage) -> str:
        error: IntegrationError | None = None
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.tls_context or ssl.create_default_context())
                if self.username and self._password:
                    smtp.login(self.username, self._password)
                smtp.send_message(message)
            return str(message["Message-ID"])
        except smtplib.SMTPAuthenticationError as exc:
            error = PermanentError(f"smtp: login refused ({exc.smtp_code})")
        except smtplib.SMTPNotSupportedError as exc:
            error = PermanentError(f"smtp: {exc} (does the server want STARTTLS first?)")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(
                f"{rcpt}: {code} {msg.decode(errors='replace')}"
                for rcpt, (code, msg) in exc.recipients.items()
            )
            error = (PermanentError if all(c >= 500 for c in codes) else IntegrationError)(
                f"smtp: recipients refused: {text}"
            )
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            error = (PermanentError if exc.smtp_code >= 500 else IntegrationError)(
                f"smtp: {exc.smtp_code} {text}"
            )
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
            error = IntegrationError(f"smtp: {type(exc).__name__}: {exc}")
        raise error


# ---- Microsoft Graph ---------------------------------------------------------------------------


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also when the caller's thread already runs a loop."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class GraphMailChannel(_Mailer):
    """`Channel` through Graph `POST /users/{id}/sendMail` with msgraph-sdk.

    `credential` is any azure-identity `TokenCredential` (e.g. `ClientSecretCredential` with the
    `Mail.Send` application permission, scoped by an application access policy to the sender
    mailbox); tests pass one with a static `get_token`. `sender_user_id` is the mailbox's id or UPN.
    The SDK's RetryHandler is turned off: Temporal retries.
    """

    name = "email-graph"

    def __init__(
        self,
        credential: Any,
        sender_user_id: str,
        *,
        default_recipients: list[str] | None = None,
        address_book: dict[str, str] | None = None,
        base_url: str = "https://graph.microsoft.com/v1.0",
        timeout: float = 10.0,
        save_to_sent_items: bool = False,
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
    ) -> None:
        super().__init__(
            sender=sender_user_id,
            default_recipients=default_recipients,
            address_book=address_book,
            templates=templates,
            sent=sent,
        )
        self.credential = credential
        self.sender_user_id = sender_user_id
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.save_to_sent_items = save_to_sent_items

    def _client(self) -> Any:
        # Made per call, inside the loop that uses it: an httpx.AsyncClient must not cross loops.
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph_core import GraphClientFactory

        host = urlsplit(self.base_url).hostname or "graph.microsoft.com"
        auth = AzureIdentityAuthenticationProvider(
            self.credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=[host]
        )
        no_retry = {
            RetryHandlerOption.get_key(): RetryHandlerOption(delay=0, max_retries=0, should_retry=False)
        }
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=self.timeout, verify=shared_ssl_context()), options=no_retry
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = self.base_url
        return GraphServiceClient(request_adapter=adapter)

    def _body(self, notification: Notification, addressee: Addressee, parts: EmailParts) -> Any:
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.email_address import EmailAddress
        from msgraph.generated.models.internet_message_header import InternetMessageHeader
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.message import Message
        from msgraph.generated.models.recipient import Recipient
        from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

        headers = [InternetMessageHeader(name="X-Argus-Key", value=notification.key[:900])]
        if notification.incident_id:
            headers.append(InternetMessageHeader(name="X-Argus-Incident", value=notification.incident_id))
        message = Message(
            subject=parts.subject,
            body=ItemBody(content_type=BodyType.Html, content=parts.html),
            to_recipients=[Recipient(email_address=EmailAddress(address=addressee.address))],
            internet_message_headers=headers,
        )
        return SendMailPostRequestBody(message=message, save_to_sent_items=self.save_to_sent_items)

    def send(self, notification: Notification) -> Delivery:
        def one(addressee: Addressee, parts: EmailParts) -> str:
            body = self._body(notification, addressee, parts)
            return _run(lambda: self._post(body))

        return self.deliver(notification, one)

    async def _post(self, body: Any) -> str:
        from kiota_abstractions.api_error import APIError

        client = self._client()
        error: IntegrationError | None = None
        try:
            await client.users.by_user_id(self.sender_user_id).send_mail.post(body)
            return "accepted"
        except APIError as exc:
            error = _graph_error(exc)
        except httpx.TimeoutException as exc:
            error = IntegrationError(f"graph sendMail: timed out ({type(exc).__name__})")
        except httpx.TransportError as exc:
            error = IntegrationError(f"graph sendMail: connection failed ({type(exc).__name__})")
        raise error


def _graph_error(exc: Any) -> IntegrationError:
    status = int(getattr(exc, "response_status_code", 0) or 0)
    inner = getattr(exc, "error", None)
    code = getattr(inner, "code", None) or ""
    message = getattr(inner, "message", None) or getattr(exc, "message", None) or type(exc).__name__
    text = f"graph sendMail: HTTP {status}: {code + ': ' if code else ''}{message}"
    headers = {k.lower(): v for k, v in (getattr(exc, "response_headers", None) or {}).items()}
    if status in (408, 429) or status >= 500 or status == 0:
        return IntegrationError(text, retry_after=parse_retry_after(headers.get("retry-after")))
    return PermanentError(text)


# ---- SendGrid --------------------------------------------------------------------------------


class SendGridChannel(_Mailer):
    """`Channel` through SendGrid v3 `POST /v3/mail/send` (202, empty). Secret: `api_key`.

    SendGrid has no idempotency key: ARGUS tags each message with `custom_args.argus_key` (visible
    in its event webhook and activity feed) and relies on the local sent-keys record.
    """

    name = "email-sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        sender: str,
        default_recipients: list[str] | None = None,
        address_book: dict[str, str] | None = None,
        base_url: str = "https://api.sendgrid.com",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        templates: NotificationTemplates | None = None,
        sent: SentKeys | None = None,
    ) -> None:
        super().__init__(
            sender=sender,
            default_recipients=default_recipients,
            address_book=address_book,
            templates=templates,
            sent=sent,
        )
        self.http = new_client(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}
        )

    def payload(self, notification: Notification, addressee: Addressee, parts: EmailParts) -> dict[str, Any]:
        custom = {"argus_key": notification.key[:200], "argus_kind": str(notification.kind)}
        if notification.incident_id:
            custom["argus_incident"] = notification.incident_id
        return {
            "personalizations": [{"to": [{"email": addressee.address}], "custom_args": custom}],
            "from": {"email": self.sender, "name": "ARGUS"},
            "subject": parts.subject,
            "content": [
                {"type": "text/plain", "value": parts.text},
                {"type": "text/html", "value": parts.html},
            ],
            "headers": {"X-Argus-Key": notification.key[:200]},
            "categories": ["argus", str(notification.kind)],
        }

    def send(self, notification: Notification) -> Delivery:
        def one(addressee: Addressee, parts: EmailParts) -> str:
            response = send(
                self.http,
                "POST",
                "/v3/mail/send",
                "sendgrid",
                "mail send",
                _sendgrid_error,
                json=self.payload(notification, addressee, parts),
            )
            return response.headers.get("x-message-id", "accepted")

        return self.deliver(notification, one)


def _sendgrid_error(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return response.text.strip()[:500]
    parts = [
        f"{e.get('field') + ': ' if e.get('field') else ''}{e.get('message', '')}"
        for e in errors
        if isinstance(e, dict)
    ]
    return "; ".join(parts) or json_error_message("message")(response)
