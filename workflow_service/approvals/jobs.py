"""Periodic approval and delivery housekeeping, run by the scheduler (one leader).

* overdue stages: marked once (a conditional UPDATE that re-checks the stage and its
  due time, so a stage decided meanwhile is not marked, nor the next one it opened)
  and their pending approvers and ``escalate_to`` people told in-app, and by e-mail
  where the directory has an address;
* decided approvals whose execution still waits (the deciding request died between
  commit and resume, or decided in the instant before the execution was parked) are
  resumed; the engine's resume is conditional, so this never resumes twice;
* open approvals of cancelled or ended executions are cancelled;
* deliveries left pending (their message lost) are sent again, at most once a period
  (not every run, which would pile copies onto a queue that is only slow); claiming
  makes a duplicate message harmless;
* deliveries parked after their message ran out of attempts are sent again when their
  ``next_resend_at`` comes (``DELIVERY_RESEND_SCHEDULE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import dramatiq

from shared.db import utcnow
from workflow_service.approvals import service
from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot, ApprovalStatus
from workflow_service.db import database
from workflow_service.models import Execution, ExecutionStatus
from workflow_service.notifications import delivery
from workflow_service.notifications.models import Delivery, DeliveryStatus
from workflow_service.users import directory

log = logging.getLogger(__name__)
BATCH = 200


def mark_overdue(broker: dramatiq.Broker, now: datetime | None = None) -> list[str]:
    """Escalate every pending stage past its due time, once; returns the request ids."""
    now = now or utcnow()
    due = list(
        ApprovalRequest.select()
        .where(
            (ApprovalRequest.status == ApprovalStatus.PENDING)
            & (ApprovalRequest.due_at < now)
            & ApprovalRequest.overdue_at.is_null()
        )
        .limit(BATCH)
    )
    escalated, to_send = [], []
    for request in due:
        planned = escalate_overdue(request, now)
        if planned is None:
            continue
        to_send += planned
        escalated.append(request.id)
    delivery.enqueue(broker, to_send)
    return escalated


def escalate_overdue(request: ApprovalRequest, now: datetime) -> list[str] | None:
    """Mark ``request``'s stage overdue and tell people, unless that stage is no longer
    pending and due (decided, escalated, or moved on to the next stage, which has a due
    time of its own, since ``request`` was read). Returns the e-mail deliveries to send
    after commit, or None when there was nothing to do."""
    with database.atomic():
        claimed = (
            ApprovalRequest.update(overdue_at=now, updated_at=now)
            .where(
                (ApprovalRequest.id == request.id)
                & (ApprovalRequest.status == ApprovalStatus.PENDING)
                & (ApprovalRequest.current_stage == request.current_stage)
                & (ApprovalRequest.due_at < now)
                & ApprovalRequest.overdue_at.is_null()
            )
            .execute()
        )
        if not claimed:
            return None
        return _escalate(request, now)


def _escalate(request: ApprovalRequest, now: datetime) -> list[str]:
    stage = request.current_stage
    pending = [
        s.approver
        for s in ApprovalSlot.select(ApprovalSlot.approver).where(
            (ApprovalSlot.request == request.id)
            & (ApprovalSlot.stage == stage)
            & (ApprovalSlot.status == ApprovalStatus.PENDING)
        )
    ]
    people = directory.resolve(
        request.tenant_id,
        [f"user:{u}" for u in pending] + list(request.escalate_to),
        owner=request.owner,
        initiator=request.initiator,
    )
    key = f"{request.step_key}.overdue.{stage}"
    subject = f"Overdue approval: {request.title}"[:300]
    body = (
        f'The approval "{request.title}" was due at {request.due_at:%Y-%m-%d %H:%M} UTC '
        f"and still waits for: {', '.join(pending) or 'nobody'}. Approval id: {request.id}"
    )
    service.notify_in_app(request, [p.user_id for p in people], key, subject, body)
    return service.plan_emails(request, people, key, subject, body)


def settle_stragglers(
    resume: Callable[[str, str], str | None], now: datetime | None = None, grace_s: float = 5.0
) -> dict[str, int]:
    """Resume executions whose approval was decided; cancel approvals of ended ones."""
    now = now or utcnow()
    before = now - timedelta(seconds=grace_s)
    decided = (
        ApprovalRequest.select(ApprovalRequest)
        .join(Execution, on=(ApprovalRequest.execution == Execution.id))
        .where(
            ApprovalRequest.status.in_((ApprovalStatus.APPROVED, ApprovalStatus.REJECTED))
            & (Execution.status == ExecutionStatus.WAITING_APPROVAL)
            & (ApprovalRequest.decided_at < before)
        )
        .limit(BATCH)
    )
    resumed = 0
    for request in decided:
        if resume(request.execution_id, f"approval:{request.step_key}"):
            log.info("resumed execution %s after approval %s", request.execution_id, request.id)
            resumed += 1
    ended = (
        ApprovalRequest.select(ApprovalRequest.execution)
        .join(Execution, on=(ApprovalRequest.execution == Execution.id))
        .where(
            (ApprovalRequest.status == ApprovalStatus.PENDING)
            & Execution.status.in_(ExecutionStatus.FINAL)
        )
        .limit(BATCH)
    )
    cancelled = sum(service.cancel_for_execution(r.execution_id, now) for r in ended)
    return {"resumed": resumed, "cancelled": cancelled}


def resend_deliveries(
    broker: dramatiq.Broker,
    older_than_s: float = 120.0,
    lease_s: float = 60.0,
    now: datetime | None = None,
) -> list[str]:
    """Send again deliveries stuck pending, or claimed by a worker that vanished.

    A re-send stamps ``updated_at``: a pending delivery is re-sent at most once every
    ``older_than_s``, an abandoned claim once every ``lease_s``. When the notification
    queue is that far behind, the first message is most likely still in it, and a copy
    every run would only lengthen the queue. ``claimed_at`` stays, so a re-sent message
    can take over the abandoned claim.
    """
    now = now or utcnow()
    lease_before = now - timedelta(seconds=lease_s)
    is_stuck = (
        (Delivery.status == DeliveryStatus.PENDING)
        & (Delivery.updated_at < now - timedelta(seconds=older_than_s))
    ) | (
        (Delivery.status == DeliveryStatus.SENDING)
        & (Delivery.claimed_at < lease_before)
        & (Delivery.updated_at < lease_before)
    )
    candidates = [d.id for d in Delivery.select(Delivery.id).where(is_stuck).limit(BATCH)]
    # Taken with a conditional UPDATE each: one a worker claimed or finished since the
    # SELECT, or another run re-sent, is left alone.
    stuck = [
        delivery_id
        for delivery_id in candidates
        if Delivery.update(updated_at=now).where((Delivery.id == delivery_id) & is_stuck).execute()
    ]
    delivery.enqueue(broker, stuck)
    return stuck


def register_jobs(scheduler, context) -> None:
    """Scheduler registrar: one housekeeping job, run by the leader only."""
    settings = context.settings
    engine = context.engine
    interval = max(min(settings.sweep_interval_s, 30.0), 0.5)

    def housekeeping() -> None:
        if not context.is_leader():
            return
        with database.connection_context():
            overdue = mark_overdue(engine.broker)
            settled = settle_stragglers(engine.resume)
            resent = resend_deliveries(engine.broker, lease_s=settings.notifications.claim_lease_s)
            resent += delivery.resend_parked(engine.broker, engine.clock())
        if overdue or any(settled.values()) or resent:
            log.info(
                "approvals: %d overdue, %s, %d deliveries re-sent",
                len(overdue),
                settled,
                len(resent),
            )

    scheduler.add_job(housekeeping, "interval", seconds=interval, id="approvals-housekeeping")
