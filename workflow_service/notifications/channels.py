"""The three ways a notification leaves the system, and how their failures are classified.

Each sender either returns a short receipt (recorded on the delivery), raises
:class:`TransientDeliveryError` (the queue retries: connection errors, timeouts, 5xx,
408, 429, SMTP 4xx) or :class:`PermanentDeliveryError` (other 4xx, SMTP 5xx, no address:
retrying cannot help, so the delivery fails at once with the answer recorded).
In-app delivery is not here: it is a database insert done in the same transaction
that marks the delivery sent (see :mod:`.delivery`).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from workflow_service.notifications import signing
from workflow_service.notifications.settings import NotificationSettings

#: How much of a receiver's answer is kept on the delivery record.
MAX_RECORDED_RESPONSE = 2_000
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


def send_email(settings: NotificationSettings, msg: EmailMessage) -> Receipt:
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            refused = smtp.send_message(msg)
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


def post_webhook(
    settings: NotificationSettings, url: str, body: bytes, *, delivery_id: str
) -> Receipt:
    """POST ``body`` signed with the webhook secret. Redirects are not followed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentDeliveryError(f"webhook url {url!r} is not an http(s) URL")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "governance-workflows-webhook/1",
        signing.DELIVERY_HEADER: delivery_id,
        # Signed at send time, so a retry an hour later is not mistaken for a replay.
        **signing.sign(settings.webhook_secret, body),
    }
    if not settings.webhook_allow_private:
        _refuse_private_address(parts.hostname, parts.port or 443)
    conn_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_class(parts.hostname, parts.port, timeout=settings.webhook_timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        status = response.status
        answer = response.read(MAX_RECORDED_RESPONSE).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise TransientDeliveryError(
            f"webhook request failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        conn.close()
    if 200 <= status < 300:
        return Receipt(status=status, response=answer)
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise TransientDeliveryError(f"webhook answered {status}", status=status, response=answer)
    raise PermanentDeliveryError(f"webhook answered {status}", status=status, response=answer)


def _refuse_private_address(host: str, port: int) -> None:
    """Refuse a webhook whose host resolves to an address inside the network."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TransientDeliveryError(f"webhook host {host!r} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise PermanentDeliveryError(
                f"webhook host {host!r} resolves to {address}, a private or reserved address; "
                "set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it"
            )
