"""Planning deliveries (in a step) and making one delivery attempt (in the actor).

Exactly-once, and where it is only almost:

* Planning inserts rows with INSERT ... ON CONFLICT DO NOTHING on the unique key
  (execution, step, recipient, channel), so a retried step plans nothing new; it then
  (re)sends one message per unfinished row. Duplicate messages are harmless.
* A worker sends only after claiming the row with a conditional UPDATE
  (pending -> sending, or a ``sending`` claim older than the lease). Only the worker
  holding the claim token may record the outcome.
* in_app: the inbox row is written in the same transaction that marks the delivery
  sent, so it happens exactly once.
* e-mail and webhook leave the system before we can record them. If the worker dies
  after the other side accepted and before ``sent`` is committed (one UPDATE, a few
  milliseconds), the row stays ``sending``; after the lease it is claimed and sent
  again. That window is what remains; the repeat carries the same ``Message-ID`` /
  ``X-Delivery-Id`` so a receiver can drop it.

Longer outages: a message has the queue catalog's attempts (ten, one second apart). A
delivery whose last attempt fails transiently is parked, ``failed`` with a
``next_resend_at`` from ``DELIVERY_RESEND_SCHEDULE``; housekeeping
(:func:`resend_parked`) sends it again then as a new message with fresh attempts, and
after the last pause of the schedule it stays failed for good. An operator's retry of
the dead delivery job reopens it (:func:`reopen_failed_delivery`) and sends it at once.
Every one of these goes through the same row, so the same id and the same claim.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import dramatiq

from shared.db import utcnow
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.models import Notification
from workflow_service.notifications.channels import (
    PermanentDeliveryError,
    TransientDeliveryError,
    build_email,
    post_webhook,
    send_email,
    webhook_body,
)
from workflow_service.notifications.models import Channel, Delivery, DeliveryStatus
from workflow_service.notifications.secrets import signing_secrets
from workflow_service.settings import NotificationSettings

log = logging.getLogger(__name__)

DELIVER_ACTOR = "deliver_notification"
DELIVERY_NAMESPACE = uuid.UUID("a3c1f0e2-55d4-4b8e-9d0f-7e2b6c4d9a18")
NOTIFICATION_QUEUE = "governance.notification"


@dataclass(frozen=True)
class PlannedDelivery:
    """One message to one recipient on one channel, already rendered."""

    recipient: str
    channel: str
    address: str | None = None
    subject: str = ""
    body: str = ""
    html: str | None = None
    payload: dict[str, Any] | None = field(default=None)


def plan(
    *,
    tenant_id: str,
    execution_id: str,
    step_key: str,
    entity_type: str | None,
    entity_id: str | None,
    items: Iterable[PlannedDelivery],
) -> list[str]:
    """Record the deliveries (idempotently); return the ids of those not yet final."""
    rows = [
        {
            "id": delivery_id(execution_id, step_key, item.recipient, item.channel),
            "tenant_id": tenant_id,
            "execution": execution_id,
            "step_key": step_key,
            "recipient": item.recipient,
            "channel": item.channel,
            "address": item.address,
            "subject": item.subject[:300],
            "body": item.body,
            "html": item.html,
            "payload": item.payload,
            "entity_type": entity_type,
            "entity_id": entity_id,
        }
        for item in items
    ]
    if rows:
        with database.atomic():
            Delivery.insert_many(rows).on_conflict_ignore().execute()
    return [
        d.id
        for d in Delivery.select(Delivery.id).where(
            (Delivery.execution == execution_id)
            & (Delivery.step_key == step_key)
            & Delivery.status.not_in(DeliveryStatus.FINAL)
        )
    ]


def delivery_id(execution_id: str, step_key: str, recipient: str, channel: str) -> str:
    """The id of a delivery, derived from its unique key.

    If a planning transaction rolls back after its message went out, planning again
    yields the same id, and the early message still finds its row.
    """
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{execution_id}|{step_key}|{recipient}|{channel}"))


def delivery_message(delivery_id: str, tenant_id: str) -> dramatiq.Message:
    """The message of one delivery attempt. Like every job's message it names its
    tenant: job-status records are per tenant (without one the job is a 404 on the
    api's ``/jobs/{id}`` and left out of its parent's children)."""
    return dramatiq.Message(
        queue_name=NOTIFICATION_QUEUE,
        actor_name=DELIVER_ACTOR,
        args=(delivery_id,),
        kwargs={},
        options={"tenant_id": tenant_id},
    )


def enqueue(broker: dramatiq.Broker, delivery_ids: Iterable[str]) -> list[str]:
    """Send one delivery message per id (call after the rows are committed)."""
    delivery_ids = list(delivery_ids)
    if not delivery_ids:
        return []
    # peewee's stubs type the rows of .tuples() as models.
    rows = Delivery.select(Delivery.id, Delivery.tenant_id).where(Delivery.id.in_(delivery_ids))
    tenants = dict(cast(Iterable[tuple[str, str]], rows.tuples()))
    return [
        broker.enqueue(delivery_message(d, tenants.get(d, ""))).message_id for d in delivery_ids
    ]


# ------------------------------------------------------------------------ one attempt


class DeliveryNotFound(LookupError):
    """No such delivery (yet): the planning transaction may not have committed."""


class DeliveryBusy(RuntimeError):
    """Another worker holds a live claim on it."""

    def __init__(self, retry_in_ms: int):
        super().__init__(f"another worker is sending it; look again in {retry_in_ms} ms")
        self.retry_in_ms = retry_in_ms


def claim(delivery_id: str, settings: NotificationSettings, now: datetime) -> str | None:
    """Take the delivery for sending; return the claim token, or None if not claimable."""
    token = str(uuid.uuid4())
    expired = now - timedelta(seconds=settings.claim_lease_s)
    claimed = (
        Delivery.update(
            status=DeliveryStatus.SENDING,
            claim_token=token,
            claimed_at=now,
            last_attempt_at=now,
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .where(
            (Delivery.id == delivery_id)
            & (
                (Delivery.status == DeliveryStatus.PENDING)
                | ((Delivery.status == DeliveryStatus.SENDING) & (Delivery.claimed_at < expired))
            )
        )
        .execute()
    )
    return token if claimed else None


def _finish(delivery_id: str, token: str, **fields: Any) -> bool:
    fields.setdefault("updated_at", utcnow())
    with database.atomic():
        finished = bool(
            Delivery.update(claim_token=None, **fields)
            .where((Delivery.id == delivery_id) & (Delivery.claim_token == token))
            .execute()
        )
        if finished and fields.get("status") in DeliveryStatus.FINAL:
            hooks.delivery_recorded(Delivery.get_by_id(delivery_id), token)
    return finished


def attempt(
    delivery_id: str,
    settings: NotificationSettings,
    *,
    last_attempt: bool,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Make one attempt; return the final status, or raise for the queue to retry.

    Raises :class:`TransientDeliveryError` (retry), :class:`PermanentDeliveryError`
    (no retry; the delivery is recorded failed), :class:`DeliveryNotFound` and
    :class:`DeliveryBusy` (retry later).
    """
    now = clock()
    token = claim(delivery_id, settings, now)
    if token is None:
        current = Delivery.get_or_none(Delivery.id == delivery_id)
        if current is None:
            raise DeliveryNotFound(f"delivery {delivery_id} does not exist")
        if current.status in DeliveryStatus.FINAL:
            return current.status  # a duplicate message: done already
        assert current.claimed_at is not None  # a row being sent carries its claim time
        remaining = current.claimed_at + timedelta(seconds=settings.claim_lease_s) - now
        raise DeliveryBusy(max(int(remaining.total_seconds() * 1000), 100))
    delivery = Delivery.get_by_id(delivery_id)
    try:
        if delivery.channel == Channel.IN_APP:
            with database.atomic():
                Notification.insert(
                    tenant_id=delivery.tenant_id,
                    recipient=delivery.recipient,
                    address=f"user:{delivery.recipient}",
                    channel=Channel.IN_APP,
                    execution=delivery.execution_id,
                    step_key=delivery.step_key,
                    subject=delivery.subject,
                    body=delivery.body,
                    entity_type=delivery.entity_type,
                    entity_id=delivery.entity_id,
                ).on_conflict_ignore().execute()
                _finish(delivery_id, token, status=DeliveryStatus.SENT, sent_at=clock(), error=None)
            return DeliveryStatus.SENT
        receipt = _send_external(delivery, settings)
    except PermanentDeliveryError as exc:
        _finish(
            delivery_id,
            token,
            status=DeliveryStatus.FAILED,
            error=str(exc),
            response_status=exc.status,
            response=exc.response or None,
            next_resend_at=None,
        )
        raise
    except TransientDeliveryError as exc:
        status = DeliveryStatus.FAILED if last_attempt else DeliveryStatus.PENDING
        resend_at = _next_resend(delivery, settings, clock()) if last_attempt else None
        _finish(
            delivery_id,
            token,
            status=status,
            error=str(exc),
            response_status=exc.status,
            response=exc.response or None,
            next_resend_at=resend_at,
        )
        if last_attempt:
            if resend_at is not None:
                log.warning(
                    "delivery %s: out of attempts; sent again at %sZ",
                    delivery_id,
                    resend_at.isoformat(timespec="seconds"),
                )
            else:
                log.warning(
                    "delivery %s: out of attempts and re-sends (%d); given up",
                    delivery_id,
                    delivery.resends,
                )
        raise
    except BaseException:
        # A bug or a shutdown: give the claim back so the retry can take it at once.
        _finish(delivery_id, token, status=DeliveryStatus.PENDING)
        raise
    # The narrow window: sent, not yet recorded (see the module docstring).
    _finish(
        delivery_id,
        token,
        status=DeliveryStatus.SENT,
        sent_at=clock(),
        error=None,
        next_resend_at=None,
        response_status=receipt.status,
        response=receipt.response or None,
    )
    return DeliveryStatus.SENT


def _next_resend(
    delivery: Delivery, settings: NotificationSettings, now: datetime
) -> datetime | None:
    """When a delivery that just ran out of attempts is sent again (None: never)."""
    schedule = settings.resend_schedule_s
    if delivery.resends >= len(schedule):
        return None
    return now + timedelta(seconds=schedule[delivery.resends])


# ------------------------------------------------------------------ after the attempts


def resend_parked(
    broker: dramatiq.Broker, now: datetime | None = None, limit: int = 200
) -> list[str]:
    """Send again the parked deliveries whose ``next_resend_at`` has come (housekeeping).

    Each goes back to pending (one conditional UPDATE, so two housekeepers or an
    operator's retry at the same moment send it once) with its re-send counted, then
    gets a new message with the catalog's attempts. Should that send fail, the pending
    row is what the sweep of stuck deliveries re-sends.
    """
    now = now or utcnow()
    due = (Delivery.status == DeliveryStatus.FAILED) & (Delivery.next_resend_at <= now)
    candidates = [
        d.id
        for d in Delivery.select(Delivery.id)
        .where(due)
        .order_by(Delivery.next_resend_at)
        .limit(limit)
    ]
    taken = [
        delivery_id
        for delivery_id in candidates
        if Delivery.update(
            status=DeliveryStatus.PENDING,
            next_resend_at=None,
            resends=Delivery.resends + 1,
            updated_at=now,
        )
        .where((Delivery.id == delivery_id) & due)
        .execute()
    ]
    enqueue(broker, taken)
    return taken


def reopen_failed_delivery(message: dramatiq.Message, new_job_id: str) -> Callable[[], None] | None:
    """Before an operator's retry of a dead delivery job: make its delivery pending.

    A failed delivery is final, so the retried message would find nothing to claim and
    "succeed" without sending. The retry means "send it again": the row goes back to
    pending (only from failed; a parked one loses its re-send time) and the new message
    sends it through the same row, the same id. Returns the undo for when sending the
    new message fails (None when nothing was reopened, e.g. it was sent meanwhile).
    """
    if message.actor_name != DELIVER_ACTOR or len(message.args) != 1:
        return None
    delivery_id = str(message.args[0])
    failed = (Delivery.id == delivery_id) & (Delivery.status == DeliveryStatus.FAILED)
    before = (
        Delivery.select(Delivery.attempts, Delivery.next_resend_at, Delivery.updated_at)
        .where(failed)
        .first()
    )
    if before is None:
        return None
    reopened = (
        Delivery.update(status=DeliveryStatus.PENDING, next_resend_at=None, updated_at=utcnow())
        .where(failed)
        .execute()
    )
    if not reopened:
        return None

    def undo() -> None:
        # Only while no worker has claimed it since (a claim counts an attempt).
        (
            Delivery.update(
                status=DeliveryStatus.FAILED,
                next_resend_at=before.next_resend_at,
                updated_at=before.updated_at,
            )
            .where(
                (Delivery.id == delivery_id)
                & (Delivery.status == DeliveryStatus.PENDING)
                & (Delivery.attempts == before.attempts)
            )
            .execute()
        )

    return undo


def _send_external(delivery: Delivery, settings: NotificationSettings):
    if delivery.channel == Channel.EMAIL:
        if not delivery.address:
            raise PermanentDeliveryError(f"user {delivery.recipient!r} has no e-mail address")
        msg = build_email(
            settings,
            to=delivery.address,
            subject=delivery.subject,
            text=delivery.body,
            html=delivery.html,
            message_id=f"<{delivery.id}@governance-workflows>",
        )
        return send_email(settings, msg)
    if delivery.channel == Channel.WEBHOOK:
        body = webhook_body(delivery.payload or {})
        return post_webhook(
            settings,
            delivery.address or delivery.recipient,
            body,
            delivery_id=delivery.id,
            secrets=signing_secrets(delivery.tenant_id, settings),
        )
    raise PermanentDeliveryError(f"unknown channel {delivery.channel!r}")
