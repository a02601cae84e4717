"""A real SMTP server for tests: aiosmtpd's Controller on a free loopback port, keeping every
message (envelope and parsed email), optionally checking AUTH LOGIN/PLAIN and offering (and
requiring) STARTTLS with a self-signed certificate for 127.0.0.1 made on the spot."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse_rcpt: dict[str, str] = {}  # address -> SMTP reply, e.g. "550 5.1.1 no such user"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpFake:
    """`start()` → `.host`, `.port`; `.messages` = [(mail_from, rcpt_tos, EmailMessage)]."""

    def __init__(
        self, *, username: str | None = None, password: str | None = None, starttls: bool = False
    ) -> None:
        self.inbox = _Inbox()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username, self.password = username, password
        self.cert_file: str | None = None
        kwargs: dict[str, Any] = {}
        if username is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": starttls}
        if starttls:
            kwargs.update(tls_context=self._server_tls(), require_starttls=True)
        self.controller = Controller(self.inbox, hostname=self.host, port=self.port, **kwargs)

    def _server_tls(self) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "argus-test-smtp")])
        now = datetime.datetime.now(datetime.UTC)
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(self.host))])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        directory = tempfile.mkdtemp(prefix="argus-smtp-tls-")
        self.cert_file = f"{directory}/cert.pem"
        key_file = f"{directory}/key.pem"
        with open(self.cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            pem = serialization.PrivateFormat.PKCS8
            f.write(key.private_bytes(serialization.Encoding.PEM, pem, serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, key_file)
        return context

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self.cert_file is None:
            raise RuntimeError("this SmtpFake was started without starttls=True")
        return ssl.create_default_context(cafile=self.cert_file)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.inbox.messages

    def start(self) -> SmtpFake:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_smtp_fake(**kwargs: Any) -> SmtpFake:
    return SmtpFake(**kwargs).start()
