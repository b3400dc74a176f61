"""Real receivers run inside the test process: an HTTP webhook endpoint and an SMTP server."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port, poll
from workflow_service.notifications.signing import InvalidSignature, verify_signature


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    signature_error: str = ""


@dataclass
class WebhookReceiver:
    """An HTTP server answering with the statuses of ``script`` in turn (then the last one).

    Every request's signature is checked with :func:`verify_signature`, as a real
    receiver would.
    """

    #: The secret(s) the receiver holds (several while it moves to a rotated one).
    secret: str | list[str]
    script: list[int] = field(default_factory=lambda: [200])
    requests: list[ReceivedRequest] = field(default_factory=list)
    #: What it answers (default: a short JSON document).
    answer: bytes | None = None
    #: Serve HTTPS with this server context.
    tls: ssl.SSLContext | None = None

    def __post_init__(self):
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()}
                try:
                    verify_signature(receiver.secret, headers, body)
                    ok, error = True, ""
                except InvalidSignature as exc:
                    ok, error = False, str(exc)
                with receiver.lock:
                    receiver.requests.append(ReceivedRequest(self.path, headers, body, ok, error))
                    index = min(len(receiver.requests), len(receiver.script)) - 1
                    status = receiver.script[index]
                answer = receiver.answer or (
                    b'{"received": true}' if status < 300 else b'{"error": "scripted"}'
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedRequest]:
        return poll(
            lambda: len(self.requests) >= count and list(self.requests),
            timeout=timeout,
            message=f"{count} webhook request(s)",
        )


class _Sink:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free port; read what it received."""

    def __init__(
        self, credentials: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None
    ):
        """``tls``: the server's context; then STARTTLS is required before anything else."""
        self.port = free_port()
        self.sink = _Sink()
        self.logins: list[str] = []
        options: dict = {}
        if credentials:
            options = {
                "auth_required": True,
                "auth_require_tls": tls is not None,
                "authenticator": self._authenticator(credentials),
            }
        if tls is not None:
            options.update(tls_context=tls, require_starttls=True)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **options)

    def _authenticator(self, credentials: tuple[str, str]):
        def check(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and (
                    auth_data.login.decode(),
                    auth_data.password.decode(),
                )
                == credentials
            )
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        return check

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.sink.messages

    def wait_for(self, match: Callable[[EmailMessage], bool], timeout: float = 15.0):
        return poll(
            lambda: [m for m in self.sink.messages if match(m)],
            timeout=timeout,
            message="an e-mail",
        )


def self_signed_tls(directory, dns_name: str | None = None) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 (or for ``dns_name`` alone) with a fresh
    self-signed certificate, and the certificate's path (the CA a client must trust)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name or "127.0.0.1")])
    subject_names: list[x509.GeneralName] = (
        [x509.DNSName(dns_name)]
        if dns_name
        else [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(subject_names),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    label = dns_name or "smtp"
    cert_path = f"{directory}/{label}-cert.pem"
    key_path = f"{directory}/{label}-key.pem"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
