"""Email channels: SMTP over a real aiosmtpd server, Graph sendMail (msgraph-sdk) and SendGrid
against fakes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.email import GraphMailChannel, SendGridChannel, SmtpChannel, message_id
from argus.integrations.templating import NotificationTemplates
from argus.models import Notification, NotificationKind
from tests.fakes.graph import FakeGraph, StaticTokenCredential
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.smtp import SmtpFake

BOOK = {"alice": "alice@example.com", "bob": "bob@example.com"}


def approval(key: str = "wf-1:solicit:0") -> Notification:
    return Notification(
        key=key,
        kind=NotificationKind.APPROVAL_REQUEST,
        incident_id="INC-42",
        subject="Approval needed for INC-42: restart checkout",
        body="Restart **checkout** pods.\n\n<script>alert(1)</script>",
        severity="critical",
        service="checkout",
        recipients=["alice", "bob"],
        links={
            "approve:alice": "https://argus/l/alice-yes",
            "reject:alice": "https://argus/l/alice-no",
            "approve:bob": "https://argus/l/bob-yes",
            "reject:bob": "https://argus/l/bob-no",
            "incident": "https://argus/i/42",
        },
        actions=["approve", "reject"],
        proposal_hash="abc123",
    )


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    with SmtpFake(username="argus", password="mail-secret") as server:
        yield server


def smtp_channel(server: SmtpFake, **kwargs: object) -> SmtpChannel:
    kwargs.setdefault("username", "argus")
    kwargs.setdefault("password", "mail-secret")
    return SmtpChannel(
        server.host, server.port, sender="argus@example.com", address_book=BOOK, timeout=2.0, **kwargs
    )  # type: ignore[arg-type]


def test_smtp_multipart_headers_personal_links_and_once(smtp: SmtpFake) -> None:
    channel = smtp_channel(smtp)
    delivery = channel.send(approval())
    assert channel.send(approval()).duplicate and delivery.ok
    assert len(smtp.messages) == 2
    by_rcpt = {rcpt[0]: message for _, rcpt, message in smtp.messages}
    alice = by_rcpt["alice@example.com"]
    assert alice["From"] == "argus@example.com" and alice["To"] == "alice@example.com"
    assert (
        alice["Subject"].strip()
        == "[ARGUS] INC-42 approval needed: Approval needed for INC-42: restart checkout"
    )
    assert alice["Message-ID"] == message_id("wf-1:solicit:0", "alice@example.com", "argus.local")
    assert alice["References"] == alice["In-Reply-To"] and alice["X-Argus-Incident"] == "INC-42"
    assert alice.get_content_type() == "multipart/alternative"
    text = alice.get_body(("plain",)).get_content()
    html = alice.get_body(("html",)).get_content()
    assert "https://argus/l/alice-yes" in text and "https://argus/l/bob-yes" not in text
    assert "https://argus/l/alice-no" in html and "bob" not in html.lower().replace("bob@", "")
    assert "<strong>checkout</strong>" in html and "<script>" not in html  # markdown, raw HTML escaped
    assert by_rcpt["bob@example.com"]["Message-ID"] != alice["Message-ID"]


def test_smtp_starttls_then_login() -> None:
    with SmtpFake(username="argus", password="mail-secret", starttls=True) as server:
        plain = smtp_channel(server)  # the server requires STARTTLS before MAIL
        with pytest.raises(PermanentError, match=r"AUTH extension not supported.*STARTTLS"):
            plain.send(approval())
        secure = smtp_channel(server, starttls=True, tls_context=server.client_tls_context())
        assert secure.send(approval()).ok and len(server.messages) == 2


def test_smtp_partial_failure_retries_only_the_missing(smtp: SmtpFake) -> None:
    smtp.inbox.refuse_rcpt["bob@example.com"] = "451 4.3.0 try again later"
    channel = smtp_channel(smtp)
    with pytest.raises(IntegrationError, match="451") as caught:
        channel.send(approval())
    assert not isinstance(caught.value, PermanentError)
    del smtp.inbox.refuse_rcpt["bob@example.com"]
    channel.send(approval())
    assert sorted(r[0] for _, r, _ in smtp.messages) == ["alice@example.com", "bob@example.com"]


def test_smtp_refusals(smtp: SmtpFake) -> None:
    smtp.inbox.refuse_rcpt["bob@example.com"] = "550 5.1.1 no such user"
    note = approval().model_copy(update={"recipients": ["bob"]})
    with pytest.raises(PermanentError, match="550"):
        smtp_channel(smtp).send(note)
    with pytest.raises(PermanentError, match="login refused") as caught:
        smtp_channel(smtp, password="wrong").send(approval())
    assert "wrong" not in str(caught.value)


def test_smtp_down_is_retryable() -> None:
    from tests.fakes.smtp import free_port

    channel = SmtpChannel(
        "127.0.0.1",
        free_port(),
        sender="argus@example.com",
        default_recipients=["ops@example.com"],
        timeout=1.0,
    )
    with pytest.raises(IntegrationError, match="ConnectionRefused"):
        channel.send(approval().model_copy(update={"recipients": []}))


def test_smtp_template_override(tmp_path, smtp: SmtpFake) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "default.subject.txt.j2").write_text("OPS {{ n.incident_id }} {{ kind }}")
    channel = smtp_channel(smtp, templates=NotificationTemplates(tmp_path))
    channel.send(approval())
    assert smtp.messages[0][2]["Subject"] == "OPS INC-42 approval_request"


def test_no_address_is_permanent(smtp: SmtpFake) -> None:
    note = approval().model_copy(update={"recipients": ["carol"]})
    with pytest.raises(PermanentError, match="no email address"):
        smtp_channel(smtp).send(note)


# ---- Graph -----------------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph("graph-test-token") as server:
        yield server


def graph_channel(
    graph: FakeGraph, token: str = "graph-test-token", timeout: float = 2.0
) -> GraphMailChannel:
    return GraphMailChannel(
        StaticTokenCredential(token),
        "argus@example.com",
        address_book=BOOK,
        base_url=graph.base_url,
        timeout=timeout,
    )


def test_graph_send_mail_once_per_recipient(graph: FakeGraph) -> None:
    channel = graph_channel(graph)
    channel.send(approval())
    channel.send(approval())
    assert len(graph.sent_mail) == 2
    sent = graph.last("POST", r"/v1\.0/users/argus@example\.com/sendMail")
    assert sent.headers["authorization"] == "Bearer graph-test-token"
    message = graph.sent_mail[0]["message"]
    assert message["body"]["contentType"] == "html" and "restart checkout" in message["subject"]
    assert message["toRecipients"] == [{"emailAddress": {"address": "alice@example.com"}}]
    assert {"name": "X-Argus-Key", "value": "wf-1:solicit:0"} in message["internetMessageHeaders"]
    assert graph.sent_mail[0]["saveToSentItems"] is False


def test_graph_errors(graph: FakeGraph) -> None:
    with pytest.raises(PermanentError, match="InvalidAuthenticationToken"):
        graph_channel(graph, token="other").send(approval())
    channel = graph_channel(graph, timeout=0.3)
    graph.rate_limit("POST", r".*/sendMail", retry_after="9")
    with pytest.raises(IntegrationError) as caught:
        channel.send(approval())
    assert caught.value.retry_after == 9.0
    assert len(graph.requests_to("POST", r".*/sendMail")) == 2  # the SDK did not retry the 429
    graph.fail("POST", r".*/sendMail", status=503)
    with pytest.raises(IntegrationError, match="503"):
        channel.send(approval())
    graph.slow("POST", r".*/sendMail", delay=1.5)
    with pytest.raises(IntegrationError, match="timed out"):
        channel.send(approval())
    graph.fail(
        "POST",
        r".*/sendMail",
        status=400,
        json={"error": {"code": "ErrorInvalidRecipients", "message": "At least one recipient isn't valid."}},
    )
    with pytest.raises(PermanentError, match="ErrorInvalidRecipients"):
        channel.send(approval())


async def test_graph_channel_works_inside_a_running_loop(graph: FakeGraph) -> None:
    assert graph_channel(graph).send(approval()).ok


# ---- SendGrid --------------------------------------------------------------------------------


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid("SG.test-key") as server:
        yield server


def test_sendgrid_payload_and_once(sendgrid: FakeSendGrid) -> None:
    channel = SendGridChannel(
        "SG.test-key", sender="argus@example.com", address_book=BOOK, base_url=sendgrid.url, timeout=2.0
    )
    delivery = channel.send(approval())
    assert channel.send(approval()).duplicate and len(sendgrid.mail) == 2
    mail = sendgrid.mail[0]
    assert mail["personalizations"][0]["custom_args"]["argus_key"] == "wf-1:solicit:0"
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]
    assert "alice@example.com:" in delivery.detail


def test_sendgrid_errors(sendgrid: FakeSendGrid) -> None:
    with pytest.raises(PermanentError, match="authorization grant is invalid") as caught:
        SendGridChannel(
            "SG.bad", sender="argus@example.com", address_book=BOOK, base_url=sendgrid.url, timeout=2.0
        ).send(approval())
    assert "SG.bad" not in str(caught.value)
    channel = SendGridChannel(
        "SG.test-key", sender="argus@example.com", address_book=BOOK, base_url=sendgrid.url, timeout=0.2
    )
    sendgrid.fail("POST", "/v3/mail/send", status=429, headers={"X-RateLimit-Reset": "12"})
    with pytest.raises(IntegrationError) as caught2:
        channel.send(approval())
    assert caught2.value.retry_after == 12.0
    sendgrid.fail("POST", "/v3/mail/send", status=500)
    with pytest.raises(IntegrationError):
        channel.send(approval())
    sendgrid.slow("POST", "/v3/mail/send", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        channel.send(approval())
    sendgrid.fail(
        "POST",
        "/v3/mail/send",
        status=400,
        json={
            "errors": [
                {
                    "message": "Does not contain a valid address.",
                    "field": "personalizations.0.to.0.email",
                    "help": None,
                }
            ]
        },
    )
    with pytest.raises(
        PermanentError, match=r"personalizations\.0\.to\.0\.email: Does not contain a valid address"
    ):
        channel.send(approval())
