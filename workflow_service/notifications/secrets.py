"""Each tenant's webhook signing secret: made on first use, rotated by the tenant's admin.

A receiver of one tenant must not be able to forge deliveries for another, so every
tenant signs with its own secret.

**Derived, not stored.** A tenant's secret is
``HMAC-SHA256(WEBHOOK_SECRET, "webhook-signing-secret" | tenant | generation | salt)``,
where the salt is 32 random bytes kept on the tenant's :class:`WebhookSigningKey` row
and ``WEBHOOK_SECRET`` is the server's master key, which lives only in the environment.
A database dump alone therefore holds no secret: without the master key a salt is
worthless. We derive rather than encrypt because there is then nothing to decrypt,
no cipher or nonce to manage, and no ciphertext whose loss together with the key would
matter more than the key alone. The price is the same as with encryption under one
key: changing ``WEBHOOK_SECRET`` changes every tenant's secret at once (with no grace
period), so it is changed only when the master key itself is compromised, and every
tenant's admin then rotates to learn the new secret.

**Rotation.** Generations count up per tenant. The newest one signs; the one before
it signs as well (a second signature in ``X-Signature``) until the grace period has
passed since the newest was made, so receivers can move to the new secret at leisure.
A secret is shown once, in the answer to the rotation that made it; the first
generation, made by the first delivery when nobody has rotated yet, is never shown,
so a tenant's admin rotates once to learn its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random_source
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from shared.db import utcnow
from workflow_service.db import database
from workflow_service.notifications.models import WebhookSigningKey
from workflow_service.settings import NotificationSettings

SECRET_PREFIX = "whsec_"


class RotationConflict(RuntimeError):
    """Another rotation of the same tenant's secret won the race."""


@dataclass(frozen=True)
class Rotation:
    secret: str
    key: WebhookSigningKey
    #: The secret it replaces still signs until then (None: there was none).
    previous_accepted_until: datetime | None


def derive_secret(master_key: str, key: WebhookSigningKey) -> str:
    """The signing secret of one generation (see the module docstring)."""
    if not master_key:
        raise ValueError("WEBHOOK_SECRET (the master key of webhook signing) is not set")
    info = "\x00".join(
        ("webhook-signing-secret", key.tenant_id, str(key.generation), key.salt)
    ).encode("utf-8")
    return SECRET_PREFIX + hmac.new(master_key.encode("utf-8"), info, hashlib.sha256).hexdigest()


def _latest(tenant_id: str, count: int) -> list[WebhookSigningKey]:
    return list(
        WebhookSigningKey.select()
        .where(WebhookSigningKey.tenant_id == tenant_id)
        .order_by(WebhookSigningKey.generation.desc())
        .limit(count)
    )


def _accepted_until(current: WebhookSigningKey, settings: NotificationSettings) -> datetime:
    return current.created_at + timedelta(seconds=settings.webhook_secret_grace_s)


def _new_key(tenant_id: str, generation: int, actor: str | None, now: datetime) -> dict:
    return {
        "tenant_id": tenant_id,
        "generation": generation,
        "salt": random_source.token_hex(32),
        "created_at": now,
        "created_by": actor,
    }


def signing_secrets(
    tenant_id: str, settings: NotificationSettings, *, now: datetime | None = None
) -> list[str]:
    """The secrets a delivery of ``tenant_id`` is signed with, the current one first.

    Makes the tenant's first secret if it has none (concurrent first uses agree: the
    unique key keeps one row and both read it).
    """
    now = now or utcnow()
    keys = _latest(tenant_id, 2)
    if not keys:
        WebhookSigningKey.insert(_new_key(tenant_id, 1, None, now)).on_conflict_ignore().execute()
        keys = _latest(tenant_id, 2)
    current = keys[0]
    found = [derive_secret(settings.webhook_secret, current)]
    if len(keys) > 1 and now < _accepted_until(current, settings):
        found.append(derive_secret(settings.webhook_secret, keys[1]))
    return found


def rotate(
    tenant_id: str, actor: str, settings: NotificationSettings, *, now: datetime | None = None
) -> Rotation:
    """Make the tenant's next secret; the current one keeps signing for the grace period.

    Generations older than the one being replaced are deleted: they sign nothing any more.
    """
    now = now or utcnow()
    try:
        with database.atomic():
            keys = _latest(tenant_id, 1)
            generation = keys[0].generation + 1 if keys else 1
            row = _new_key(tenant_id, generation, actor, now)
            WebhookSigningKey.insert(row).execute()
            WebhookSigningKey.delete().where(
                (WebhookSigningKey.tenant_id == tenant_id)
                & (WebhookSigningKey.generation < generation - 1)
            ).execute()
    except peewee.IntegrityError:
        raise RotationConflict(tenant_id) from None
    key = WebhookSigningKey.get(
        (WebhookSigningKey.tenant_id == tenant_id) & (WebhookSigningKey.generation == generation)
    )
    return Rotation(
        secret=derive_secret(settings.webhook_secret, key),
        key=key,
        previous_accepted_until=_accepted_until(key, settings) if keys else None,
    )


def _iso(value: datetime) -> str:
    return value.isoformat() + "Z"


def describe(
    tenant_id: str, settings: NotificationSettings, *, now: datetime | None = None
) -> dict[str, Any]:
    """What a tenant's admin may know about its signing secrets: never the secrets."""
    now = now or utcnow()
    keys = _latest(tenant_id, 2)
    current = keys[0] if keys else None
    previous = None
    if current is not None and len(keys) > 1 and now < _accepted_until(current, settings):
        previous = {
            "generation": keys[1].generation,
            "created_at": _iso(keys[1].created_at),
            "accepted_until": _iso(_accepted_until(current, settings)),
        }
    return {
        "tenant_id": tenant_id,
        "current": None
        if current is None
        else {
            "generation": current.generation,
            "created_at": _iso(current.created_at),
            "created_by": current.created_by,
        },
        "previous": previous,
        "grace_seconds": settings.webhook_secret_grace_s,
    }
