"""Webhook signatures: what we send, and a helper receivers use to check it.

Each POST carries ``X-Signature-Timestamp`` (Unix seconds at send time) and
``X-Signature: sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with
the shared secret. Signing the timestamp with the body lets a receiver reject a
captured request replayed later: :func:`verify_signature` refuses timestamps older
(or further in the future) than a tolerance. Within the tolerance a receiver that must
not act twice dedupes on ``X-Delivery-Id``, which stays the same across retries.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
DELIVERY_HEADER = "X-Delivery-Id"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """The request is not signed with our secret, or is too old to trust."""


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers for ``body`` (bytes exactly as they go on the wire)."""
    if not secret:
        raise ValueError("a webhook secret is required to sign")
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: SCHEME + _digest(secret, ts, body)}


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    clock: Callable[[], float] = time.time,
) -> int:
    """Check a received webhook; return its timestamp or raise :class:`InvalidSignature`.

    ``headers`` may be any mapping; names are matched case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    signature = lowered.get(SIGNATURE_HEADER.lower())
    if not timestamp or not signature:
        raise InvalidSignature("signature headers are missing")
    try:
        ts = int(timestamp)
    except ValueError:
        raise InvalidSignature("the signature timestamp is not an integer") from None
    if abs(clock() - ts) > tolerance_s:
        raise InvalidSignature("the signature timestamp is outside the accepted window")
    if not signature.startswith(SCHEME):
        raise InvalidSignature(f"the signature must start with {SCHEME!r}")
    expected = _digest(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature[len(SCHEME) :]):
        raise InvalidSignature("the signature does not match")
    return ts
