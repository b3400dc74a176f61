"""The delivery record: one row per (execution, step, recipient, channel).

The unique key is what makes "never sent twice" hold across step retries and
duplicate messages: planning a delivery again finds the existing row, and only the
worker that claims a row (conditional UPDATE) may send it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel, JSONField
from workflow_service.models import Execution


class Channel:
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"
    ALL = (IN_APP, EMAIL, WEBHOOK)


class DeliveryStatus:
    PENDING = "pending"
    #: Claimed by one worker, which is sending it now (or died while sending).
    SENDING = "sending"
    SENT = "sent"
    #: Failed for good, or, with ``next_resend_at`` set, parked until housekeeping
    #: sends it again (see :func:`~workflow_service.notifications.delivery.resend_parked`).
    FAILED = "failed"
    FINAL = (SENT, FAILED)


class Delivery(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=lambda: str(uuid.uuid4()))
    tenant_id = peewee.CharField(max_length=64)
    execution = peewee.ForeignKeyField(Execution, backref="deliveries", on_delete="CASCADE")
    if TYPE_CHECKING:
        execution_id: str  # peewee's accessor for the foreign key's raw value
    step_key = peewee.CharField(max_length=64)
    #: A user id for in_app and email; the URL for a webhook.
    recipient = peewee.CharField(max_length=512)
    channel = peewee.CharField(max_length=16)
    #: Where it goes: the e-mail address or URL (the user id for in_app).
    address = peewee.CharField(max_length=512, null=True)
    subject = peewee.CharField(max_length=300, default="")
    body = peewee.TextField(default="")
    html = peewee.TextField(null=True)
    #: The JSON a webhook posts.
    payload = JSONField(null=True)
    entity_type = peewee.CharField(max_length=32, null=True)
    entity_id = peewee.CharField(max_length=64, null=True)
    status = peewee.CharField(max_length=16, default=DeliveryStatus.PENDING)
    attempts = peewee.IntegerField(default=0)
    claim_token = peewee.CharField(max_length=36, null=True)
    claimed_at = peewee.DateTimeField(null=True)
    #: What the other side answered last (HTTP or SMTP status and text).
    response_status = peewee.IntegerField(null=True)
    response = peewee.TextField(null=True)
    error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    #: When a worker last claimed it to send (migration 132, like the two below).
    last_attempt_at = peewee.DateTimeField(null=True)
    #: A failed delivery whose message ran out of attempts is sent again at this time;
    #: null when it is not (sent, failed for good, or the re-send schedule is spent).
    next_resend_at = peewee.DateTimeField(null=True, index=True)
    #: How many times housekeeping sent it again after its message ran out of attempts.
    resends = peewee.IntegerField(default=0)

    class Meta:
        indexes = (
            (("execution", "step_key", "recipient", "channel"), True),
            (("status", "updated_at"), False),
        )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "execution_id": self.execution_id,
            "step_key": self.step_key,
            "recipient": self.recipient,
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "response": self.response,
            "error": self.error,
            "created_at": self.created_at.isoformat() + "Z",
            "sent_at": _iso(self.sent_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "next_resend_at": _iso(self.next_resend_at),
            "resends": self.resends,
        }


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


NOTIFICATION_MODELS: tuple[type[BaseModel], ...] = (Delivery,)


class WebhookSigningKey(BaseModel):
    """One generation of a tenant's webhook signing secret.

    The secret itself is not stored: it is derived from the server's master key and
    this row (see :mod:`workflow_service.notifications.secrets`). The newest generation
    signs; the one before it signs too until ``grace`` after the newest was made.
    """

    id = peewee.CharField(max_length=36, primary_key=True, default=lambda: str(uuid.uuid4()))
    tenant_id = peewee.CharField(max_length=64)
    generation = peewee.IntegerField()
    #: Random, per generation: what makes this tenant's secret its own.
    salt = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)
    #: Who rotated to it; null for the secret generated on first use.
    created_by = peewee.CharField(max_length=128, null=True)

    class Meta:
        table_name = "webhook_signing_key"
        indexes = ((("tenant_id", "generation"), True),)


#: Tables of migration 131 (kept apart: migration 130 creates NOTIFICATION_MODELS).
SIGNING_KEY_MODELS: tuple[type[BaseModel], ...] = (WebhookSigningKey,)
