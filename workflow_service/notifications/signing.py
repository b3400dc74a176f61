"""Webhook signatures: what we send, and a helper receivers use to check it.

Each POST carries three headers:

* ``X-Signature-Timestamp``: Unix seconds at send time;
* ``X-Delivery-Id``: the delivery's id, the same on every retry of one delivery;
* ``X-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the tenant's signing
  secret, of ``f"{timestamp}.{delivery_id}.".encode() + body``.

Signing the timestamp lets a receiver reject a captured request replayed later
(:func:`verify_signature` refuses timestamps outside a tolerance); signing the delivery
id means a replay under a new id fails, so a receiver that must not act twice can
dedupe on ``X-Delivery-Id`` within the tolerance. The delivery id may hold only
letters, digits, ``-`` and ``_``, so where it ends in the signed string is never
ambiguous.

While a tenant rotates its secret, both are valid for a grace period and a delivery
carries one signature per secret, newest first: ``X-Signature: sha256=<new>,sha256=<old>``
(the comma-separated list GitHub, Stripe and Standard Webhooks use for the same purpose).
A receiver accepts the request if any signature matches a secret it holds, so it may
switch to the new secret at any time during the grace period.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
DELIVERY_HEADER = "X-Delivery-Id"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300
#: At most this many signatures are looked at (a grace period needs two).
MAX_SIGNATURES = 4
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class InvalidSignature(ValueError):
    """The request is not signed with our secret, or is too old to trust."""


def signed_message(timestamp: str, delivery_id: str, body: bytes) -> bytes:
    """The bytes a signature covers."""
    return f"{timestamp}.{delivery_id}.".encode("ascii") + body


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _secrets(secrets: str | Iterable[str]) -> list[str]:
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    if not listed or not all(listed):
        raise ValueError("a webhook signing secret is required")
    return listed


def sign(
    secrets: str | Iterable[str],
    body: bytes,
    *,
    delivery_id: str,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The signature headers for ``body`` (bytes exactly as they go on the wire), one
    signature per secret in the order given (the current secret first)."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("a delivery id holds 1-128 letters, digits, '-' or '_'")
    ts = str(int(time.time()) if timestamp is None else timestamp)
    message = signed_message(ts, delivery_id, body)
    signatures = ",".join(SCHEME + _digest(s, message) for s in _secrets(secrets))
    return {TIMESTAMP_HEADER: ts, DELIVERY_HEADER: delivery_id, SIGNATURE_HEADER: signatures}


def verify_signature(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    clock: Callable[[], float] = time.time,
) -> int:
    """Check a received webhook; return its timestamp or raise :class:`InvalidSignature`.

    ``secrets`` is the receiver's secret, or several (its old and new one while it
    rotates). ``headers`` may be any mapping; names are matched case-insensitively.
    """
    keys = _secrets(secrets)
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    signature = lowered.get(SIGNATURE_HEADER.lower())
    delivery_id = lowered.get(DELIVERY_HEADER.lower())
    if not timestamp or not signature or not delivery_id:
        raise InvalidSignature("signature headers are missing")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise InvalidSignature("the signature timestamp is not an integer")
    ts = int(timestamp)
    if abs(clock() - ts) > tolerance_s:
        raise InvalidSignature("the signature timestamp is outside the accepted window")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise InvalidSignature("the delivery id is not one this sender uses")
    offered = [s.strip() for s in signature.split(",")[:MAX_SIGNATURES]]
    if not all(s.startswith(SCHEME) for s in offered):
        raise InvalidSignature(f"each signature must start with {SCHEME!r}")
    message = signed_message(timestamp, delivery_id, body)
    for key in keys:
        expected = _digest(key, message)
        if any(hmac.compare_digest(expected, s[len(SCHEME) :]) for s in offered):
            return ts
    raise InvalidSignature("the signature does not match")
