"""Approvers who left the directory: their open slots go to others, or are escalated.

A person deactivated or removed in the directory (``/users``, an import) no longer
decides (:func:`service.check_in_directory`, whatever their token says). Their pending
slots in a stage now awaiting decisions are cancelled, and the stage's own rule picks
who else may decide it: a role-based stage gives slots to the role's other eligible
people who have none yet. When the stage can no longer be decided by the people it
has left, its ``escalate_to`` people are told (like an overdue stage), and it stays
open: once someone eligible joins, the next departure or decision attempt finds them.

Runs from the scheduler's housekeeping (one leader, see :func:`register_jobs`) and at
once when a departed person tries to decide.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import peewee

from shared.db import utcnow
from workflow_service import ending
from workflow_service.approvals import service
from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot, ApprovalStatus
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.kernel.hooks import SYSTEM_ACTOR
from workflow_service.notifications import delivery
from workflow_service.users import directory
from workflow_service.users.models import User

log = logging.getLogger(__name__)
BATCH = 200


@dataclass
class Reassigned:
    departed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    #: E-mail deliveries to send after commit.
    deliveries: list[str] = field(default_factory=list)
    #: ``approved`` when the remaining approvals now settle the request.
    outcome: str | None = None
    #: The execution failed because its next stage has nobody to decide it.
    ended: ending.Ended | None = None


def reassign_request(request_id: str, now: datetime | None = None) -> Reassigned:
    """Cancel the current stage's slots of departed approvers and reassign them."""
    now = now or utcnow()
    result = Reassigned()
    with database.atomic():
        # The decision lock (see service): no decision counts the stage meanwhile.
        locked = (
            ApprovalRequest.update(lock_version=ApprovalRequest.lock_version + 1)
            .where(
                (ApprovalRequest.id == request_id)
                & (ApprovalRequest.status == ApprovalStatus.PENDING)
            )
            .execute()
        )
        if not locked:
            return result
        request = ApprovalRequest.get_by_id(request_id)
        index = request.current_stage
        slots = list(
            ApprovalSlot.select().where(
                (ApprovalSlot.request == request.id) & (ApprovalSlot.stage == index)
            )
        )
        gone = [
            s
            for s in slots
            if s.status == ApprovalStatus.PENDING
            and service.departed(request.tenant_id, s.approver, s.known)
        ]
        if not gone:
            return result
        result.departed = [s.approver for s in gone]
        ApprovalSlot.update(status=ApprovalStatus.CANCELLED).where(
            ApprovalSlot.id.in_([s.id for s in gone])
        ).execute()
        slotted = {s.approver for s in slots}
        try:
            people = [p for p in service.eligible(request, index) if p.user_id not in slotted]
        except service.NoEligibleApprovers:
            people = []
        if people:
            opened = service.add_slots(request, index, people, now)
            result.added, result.deliveries = opened.approvers, list(opened.deliveries)
        counts = service.stage_counts(request, index)
        live = sum(n for s, n in counts.items() if s != ApprovalStatus.CANCELLED)
        stage = service.stages_of(request)[index]
        if live and counts.get(ApprovalStatus.APPROVED, 0) >= stage.needed(live):
            # Everyone left to decide had approved: the stage is decided.
            last = (
                ApprovalSlot.select()
                .where(
                    (ApprovalSlot.request == request.id)
                    & (ApprovalSlot.stage == index)
                    & (ApprovalSlot.status == ApprovalStatus.APPROVED)
                )
                .order_by(ApprovalSlot.decided_at.desc())
                .first()
            )
            decided = service.advance(request, last, last.approver, now)
            result.outcome, result.ended = decided.outcome, decided.ended
            result.deliveries += list(decided.deliveries)
        elif not live or live < stage.needed(live):
            result.escalated, planned = _escalate(request, index, result.departed, now)
            result.deliveries += planned
        # Who may decide changed, and maybe the outcome: one entry per reassignment
        # (the lock version taken above names it).
        hooks.action_recorded(
            request.tenant_id,
            f"approval:{request.id}:reassigned:{request.lock_version}",
            "approval.reassigned",
            actor=SYSTEM_ACTOR,
            entity_type="approval",
            entity_id=request.id,
            digest={
                "entity": f"{request.entity_type}:{request.entity_id}",
                "execution_id": str(request.execution_id),
                "stage": index + 1,
                "departed": result.departed,
                "added": result.added,
                "escalated": result.escalated,
                "outcome": result.outcome,
            },
        )
    log.info(
        "approval %s: %s left the directory; slots given to %s%s",
        request_id,
        ", ".join(result.departed),
        ", ".join(result.added) or "nobody",
        f"; escalated to {', '.join(result.escalated) or 'nobody'}" if result.escalated else "",
    )
    return result


def _escalate(
    request: ApprovalRequest, index: int, departed: list[str], now: datetime
) -> tuple[list[str], list[str]]:
    """Tell the stage's ``escalate_to`` people it can no longer be decided."""
    people = directory.resolve(
        request.tenant_id,
        list(request.escalate_to),
        owner=request.owner,
        initiator=request.initiator,
    )
    tag = hashlib.sha256(",".join(sorted(departed)).encode()).hexdigest()[:12]
    key = f"{request.step_key}.departed.{index}.{tag}"
    subject = f"Approval lacks approvers: {request.title}"[:300]
    body = (
        f'Stage {index + 1} of the approval "{request.title}" lost {", ".join(departed)} '
        "(no longer in the directory) and has too few approvers left to be decided. Add "
        "someone eligible to the directory, or cancel its execution "
        f"({request.execution_id}). Approval id: {request.id}"
    )
    users = [p.user_id for p in people]
    service.notify_in_app(request, users, key, subject, body)
    return users, service.plan_emails(request, people, key, subject, body)


def requests_with_departed(limit: int = BATCH) -> list[str]:
    """Pending approvals with a pending slot of someone deactivated or removed."""
    on_user = (User.tenant_id == ApprovalSlot.tenant_id) & (User.user_id == ApprovalSlot.approver)
    pending = ApprovalSlot.status == ApprovalStatus.PENDING
    inactive = (
        ApprovalSlot.select(ApprovalSlot.request)
        .join(User, on=on_user)
        .where(pending & (User.active == False))  # noqa: E712 - SQL, not Python
        .distinct()
        .limit(limit)
    )
    removed = (
        ApprovalSlot.select(ApprovalSlot.request)
        .join(User, peewee.JOIN.LEFT_OUTER, on=on_user)
        .where(pending & ApprovalSlot.known & User.id.is_null())
        .distinct()
        .limit(limit)
    )
    return list(dict.fromkeys([s.request_id for s in inactive] + [s.request_id for s in removed]))


def reassign_and_send(
    request_id: str, broker, resume: Callable[[str, str], str | None]
) -> Reassigned:
    """:func:`reassign_request`, then send its e-mails and resume a settled execution."""
    result = reassign_request(request_id)
    delivery.enqueue(broker, result.deliveries)
    # The parked job names the people who decide now, or how its execution ended.
    ending.report(broker, [result.ended])
    if result.departed and result.outcome is None:
        service.report_approvers(broker, request_id)
    if result.outcome in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        request = ApprovalRequest.get_by_id(request_id)
        resume(request.execution_id, f"approval:{request.step_key}")
    return result


def reassign_departed(broker, resume: Callable[[str, str], str | None]) -> list[str]:
    """Reassign every approval a departed approver holds up; returns their ids."""
    done = []
    for request_id in requests_with_departed():
        if reassign_and_send(request_id, broker, resume).departed:
            done.append(request_id)
    return done


def register_jobs(scheduler, context) -> None:
    """Scheduler registrar: the departed-approver sweep, run by the leader only."""
    engine = context.engine
    interval = max(min(context.settings.sweep_interval_s, 30.0), 0.5)

    def sweep() -> None:
        if not context.is_leader():
            return
        with database.connection_context():
            done = reassign_departed(engine.broker, engine.resume)
        if done:
            log.info("approvals: reassigned the slots of departed approvers in %d", len(done))

    scheduler.add_job(sweep, "interval", seconds=interval, id="approvals-departed-approvers")
