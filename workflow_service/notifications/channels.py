"""The three ways a notification leaves the system, and how their failures are classified.

Each sender either returns a short receipt (recorded on the delivery), raises
:class:`TransientDeliveryError` (the queue retries: connection errors, timeouts, 5xx,
408, 429, SMTP 4xx) or :class:`PermanentDeliveryError` (other 4xx, SMTP 5xx, no address:
retrying cannot help, so the delivery fails at once with the answer recorded).
In-app delivery is not here: it is a database insert done in the same transaction
that marks the delivery sent (see :mod:`.delivery`).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from shared.addresses import is_email_address
from workflow_service.notifications import signing
from workflow_service.settings import NotificationSettings
from workflow_service.steps import webhook_urls

#: How much of a receiver's answer is kept on the delivery record (and shown on
#: ``/deliveries``): enough to see what went wrong, too little to store a document.
MAX_RECORDED_RESPONSE = 256
RETRYABLE_STATUSES = frozenset({408, 429})


class DeliveryError(Exception):
    """A send failed; ``status`` and ``response`` are what the other side answered."""

    def __init__(self, message: str, *, status: int | None = None, response: str = ""):
        super().__init__(message)
        self.status = status
        self.response = response


class TransientDeliveryError(DeliveryError):
    """Worth retrying: the other side may accept the same request later."""


class PermanentDeliveryError(DeliveryError):
    """Retrying the same request cannot succeed."""


@dataclass(frozen=True)
class Receipt:
    status: int | None = None
    response: str = ""


# ----------------------------------------------------------------------------- e-mail


def build_email(
    settings: NotificationSettings,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
) -> EmailMessage:
    if not is_email_address(to):
        # One plain address only: a comma or a name could add a recipient.
        raise PermanentDeliveryError("the recipient is not exactly one e-mail address")
    msg = EmailMessage()
    # A header may not contain line breaks; a template could have produced some.
    msg["Subject"] = " ".join(subject.split())
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    # Stable across retries, so a mail system that saw it once can drop a repeat.
    msg["Message-ID"] = message_id
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def _one_address(msg: EmailMessage) -> str:
    to = str(msg["To"] or "")
    if not is_email_address(to) or msg["Cc"] is not None or msg["Bcc"] is not None:
        raise PermanentDeliveryError("the recipient is not exactly one e-mail address")
    return to


def send_email(settings: NotificationSettings, msg: EmailMessage) -> Receipt:
    # The envelope names the one checked address, whatever the headers say.
    recipients = [_one_address(msg)]
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            refused = smtp.send_message(msg, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {text!r}" for rcpt, (code, text) in exc.recipients.items()
        )
        kind = (
            TransientDeliveryError if all(400 <= c < 500 for c in codes) else PermanentDeliveryError
        )
        raise kind(
            f"recipient refused: {detail}",
            status=codes[0] if codes else None,
            response=detail[:MAX_RECORDED_RESPONSE],
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        kind = TransientDeliveryError if 400 <= exc.smtp_code < 500 else PermanentDeliveryError
        raise kind(
            f"SMTP server answered {exc.smtp_code}",
            status=exc.smtp_code,
            response=text[:MAX_RECORDED_RESPONSE],
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # Connection refused, reset, timeout, TLS failure, server disconnect.
        raise TransientDeliveryError(
            f"SMTP connection failed: {type(exc).__name__}: {exc}"
        ) from None
    if refused:
        raise PermanentDeliveryError(f"recipient refused: {refused}")
    return Receipt(status=250, response="accepted")


# ---------------------------------------------------------------------------- webhook


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


#: Resolves a host name to its addresses (strings), once per delivery attempt.
Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` has (IPv4 and IPv6), in the resolver's order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to addresses resolved and checked beforehand.

    The check of a webhook's addresses is worthless if connecting resolves the name
    again: a DNS server under the attacker's control can answer a public address to
    the check and ``127.0.0.1`` to the connection (DNS rebinding). So the host is
    resolved once, every address is checked, and the socket is opened to those very
    addresses. Everything else still names the host from the URL: ``http.client``
    sends ``Host`` from ``self.host``, and :class:`_PinnedHTTPSConnection` gives it to
    TLS as SNI and as the name the certificate must match.

    ``connect()`` is the documented place to say how a connection is opened; we
    override it rather than pass an IP as the host (which would put the IP in
    ``Host``, SNI and certificate checks) or patch name resolution process-wide.
    """

    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def _open_socket(self) -> socket.socket:
        error: OSError | None = None
        for address in self.addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
            except OSError as exc:
                error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error or OSError(f"no address to connect to for {self.host}")

    def connect(self) -> None:
        self.sock = self._open_socket()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """TLS over the pinned socket: SNI and certificate verification for the URL's host."""

    default_port = http.client.HTTPS_PORT

    def __init__(
        self,
        host: str,
        port: int,
        *,
        addresses: list[str],
        timeout: float,
        context: ssl.SSLContext,
    ):
        super().__init__(host, port, addresses=addresses, timeout=timeout)
        self.tls = context

    def connect(self) -> None:
        sock = self._open_socket()
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def post_webhook(
    settings: NotificationSettings,
    url: str,
    body: bytes,
    *,
    delivery_id: str,
    secrets: list[str],
    resolve: Resolver = resolve_host,
    tls: ssl.SSLContext | None = None,
) -> Receipt:
    """POST ``body`` to ``url``, signed with each of ``secrets`` (the tenant's current
    secret first). Redirects are not followed.

    The host is resolved once (``resolve``); unless private networks are allowed every
    address must be public, IPv4 embedded in IPv6 included, and the connection goes to
    those addresses only (see :class:`_PinnedHTTPConnection`). A URL that cannot be a
    webhook (scheme, host, port) fails at once: no retry can fix it.
    """
    try:
        target = webhook_urls.parse_webhook_url(url)
    except webhook_urls.InvalidWebhookUrl as exc:
        raise PermanentDeliveryError(
            f"webhook url {webhook_urls.redact_url(url)!r} {exc}"
        ) from None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "governance-workflows-webhook/1",
        # Signed at send time, so a retry an hour later is not mistaken for a replay.
        **signing.sign(secrets, body, delivery_id=delivery_id),
    }
    if target.username is not None:
        credentials = f"{target.username}:{target.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    addresses = _checked_addresses(settings, target, resolve)
    conn: _PinnedHTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPSConnection(
            target.host,
            target.port,
            addresses=addresses,
            timeout=settings.webhook_timeout_s,
            context=tls or ssl.create_default_context(),
        )
    else:
        conn = _PinnedHTTPConnection(
            target.host, target.port, addresses=addresses, timeout=settings.webhook_timeout_s
        )
    try:
        conn.request("POST", target.target, body=body, headers=headers)
        response = conn.getresponse()
        status = response.status
        answer = response.read(MAX_RECORDED_RESPONSE).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise TransientDeliveryError(
            f"webhook request to {target.host} ({', '.join(addresses)}) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        conn.close()
    answer = answer[:MAX_RECORDED_RESPONSE]
    if 200 <= status < 300:
        return Receipt(status=status, response=answer)
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise TransientDeliveryError(f"webhook answered {status}", status=status, response=answer)
    raise PermanentDeliveryError(f"webhook answered {status}", status=status, response=answer)


def _checked_addresses(
    settings: NotificationSettings, target: webhook_urls.WebhookTarget, resolve: Resolver
) -> list[str]:
    """The addresses to connect to: resolved once, each one checked."""
    if not settings.webhook_allow_private and webhook_urls.refused_host_name(target.host):
        raise PermanentDeliveryError(
            f"webhook host {target.host!r} is this machine; "
            "set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it"
        )
    try:
        addresses = resolve(target.host, target.port)
    except OSError as exc:
        raise TransientDeliveryError(
            f"webhook host {target.host!r} does not resolve: {exc}"
        ) from None
    if not addresses:
        raise TransientDeliveryError(f"webhook host {target.host!r} has no address")
    if settings.webhook_allow_private:
        return addresses
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise PermanentDeliveryError(
                f"webhook host {target.host!r} resolves to {address!r}, not an IP address"
            ) from None
        reason = webhook_urls.refusal_reason(ip)
        if reason is not None:
            # One bad address refuses the host: a name that also points inside the
            # network is not a public receiver.
            raise PermanentDeliveryError(
                f"webhook host {target.host!r} resolves to {ip}, {reason}; "
                "set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it"
            )
    return addresses
