"""Opening approval requests, recording decisions, and settling outcomes.

Concurrency: every decision starts with ``UPDATE approval_request SET lock_version =
lock_version + 1 WHERE id = ? AND status = 'pending'``. On PostgreSQL that row lock
makes concurrent deciders of one request take turns, and each re-reads the slots after
the previous one committed; on SQLite the UPDATE takes the database's write lock, with
the same effect. So the stage is counted with every earlier decision in view, the
request flips from ``pending`` exactly once, and exactly one decider gets the outcome
and resumes the execution (whose own resume is a conditional UPDATE as well).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import peewee

from shared.auth import Principal
from shared.db import utcnow
from shared.jobstatus import rewrite_waiting
from shared.queues import ENTITY_QUEUES
from workflow_service import ending
from workflow_service.approvals import emails
from workflow_service.approvals.models import (
    ApprovalRefusal,
    ApprovalRequest,
    ApprovalSlot,
    ApprovalStatus,
)
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.models import Execution, ExecutionStatus, Notification
from workflow_service.notifications import delivery
from workflow_service.notifications.models import Channel
from workflow_service.steps.recipients import entity_owner
from workflow_service.users import directory

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ errors


class ApprovalError(Exception):
    """Base of decision errors; the web layer maps each subclass to a status."""


class ApprovalNotFound(ApprovalError):
    pass


class NotAnApprover(ApprovalError):
    #: How the refusal is recorded (:class:`ApprovalRefusal`).
    reason = "not_an_approver"


class SelfApprovalRefused(NotAnApprover):
    reason = "self_approval"


class ApproverRoleRequired(NotAnApprover):
    """The decider has a slot but no role that may approve this stage."""

    reason = "role_required"


class DeciderNotInDirectory(NotAnApprover):
    """The decider was deactivated or removed from the directory since they were asked."""

    reason = "not_in_directory"


class AlreadyDecided(ApprovalError):
    pass


class StaleApproval(ApprovalError):
    """The entity moved on (another version or status, or gone) since the approval was
    asked for: nothing is decided, and the approval is closed."""


class VersionNotReviewed(ApprovalError):
    """The decision names a version other than the one the approval is for."""


class ExecutionNotWaiting(ApprovalError):
    """The execution was cancelled (or ended) while the approval was open."""


class NoEligibleApprovers(ApprovalError):
    """A stage cannot be decided by the people it names (the step fails with this)."""


# ------------------------------------------------------------------------------ stages


@dataclass(frozen=True)
class Stage:
    approvers: tuple[str, ...]
    mode: str = "any"  # all | any | quorum
    quorum: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stage:
        return cls(tuple(data["approvers"]), data.get("mode", "any"), data.get("quorum"))

    def to_dict(self) -> dict[str, Any]:
        return {"approvers": list(self.approvers), "mode": self.mode, "quorum": self.quorum}

    def needed(self, slots: int) -> int:
        """Approvals that settle the stage, given how many approvers it has."""
        if self.mode == "all":
            return slots
        if self.mode == "quorum":
            return self.quorum or 1
        return 1


def stages_of(request: ApprovalRequest) -> list[Stage]:
    return [Stage.from_dict(s) for s in request.stages]


def _self_ids(request: ApprovalRequest) -> set[str]:
    """Who may not approve unless self-approval is allowed: owner and initiator (and
    the creator)."""
    return {p for p in (request.owner, request.initiator, request.creator) if p}


def _never_deciders(request: ApprovalRequest) -> set[str]:
    """Who may never decide ``request``, whatever ``allow_self_approval`` says: when
    approving moves the entity to ``approved``, its creator, owner and initiator."""
    return _self_ids(request) if request.approves_entity else set()


#: The role that may decide any stage (besides the roles a stage names approvers by).
APPROVER_ROLE = "approver"


def deciding_roles(request: ApprovalRequest, index: int | None = None) -> tuple[str, ...]:
    """Roles that may decide stage ``index`` (default: the current one): ``approver``
    and every role the stage names approvers by (``role:<name>``)."""
    stage = stages_of(request)[request.current_stage if index is None else index]
    named = [a.partition(":")[2] for a in stage.approvers if a.startswith("role:")]
    return tuple(dict.fromkeys([APPROVER_ROLE, *named]))


def notify_in_app(
    request: ApprovalRequest, users: Sequence[str], key: str, subject: str, body: str
) -> None:
    rows = [
        {
            "id": _notification_id(request.id, key, user),
            "tenant_id": request.tenant_id,
            "recipient": user,
            "address": f"user:{user}",
            "channel": "in_app",
            "execution": request.execution_id,
            "step_key": key,
            "subject": subject[:300],
            "body": body,
            "entity_type": request.entity_type,
            "entity_id": request.entity_id,
        }
        for user in users
    ]
    if rows:
        Notification.insert_many(rows).on_conflict_ignore().execute()


def plan_emails(
    request: ApprovalRequest,
    people: Sequence[directory.Person],
    key: str,
    subject: str,
    body: str,
) -> list[str]:
    """Plan an e-mail about ``request`` to each of ``people`` with an address (send the
    ids it answers after commit)."""
    return delivery.plan(
        tenant_id=request.tenant_id,
        execution_id=request.execution_id,
        step_key=key,
        entity_type=request.entity_type,
        entity_id=request.entity_id,
        items=[
            delivery.PlannedDelivery(
                recipient=p.user_id,
                channel=Channel.EMAIL,
                address=p.email,
                subject=subject,
                body=body,
            )
            for p in people
            if p.email
        ],
    )


def _notification_id(request_id: str, key: str, user: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.UUID(request_id), f"{key}:{user}"))


@dataclass(frozen=True)
class OpenedStage:
    approvers: list[str]
    #: E-mail deliveries planned for them; send after the transaction commits.
    deliveries: list[str]


def eligible(request: ApprovalRequest, index: int) -> list[directory.Person]:
    """The people who may decide stage ``index``; :class:`NoEligibleApprovers` if too few."""
    stage = stages_of(request)[index]
    people = directory.resolve(
        request.tenant_id, stage.approvers, owner=request.owner, initiator=request.initiator
    )
    # Separation of duties: who approved an earlier stage does not count again. A slot
    # cancelled because others settled its stage was no decision, so it excludes nobody.
    approved_earlier = {
        s.approver
        for s in ApprovalSlot.select(ApprovalSlot.approver).where(
            (ApprovalSlot.request == request.id)
            & (ApprovalSlot.stage < index)
            & (ApprovalSlot.status == ApprovalStatus.APPROVED)
        )
    }
    people = [p for p in people if p.user_id not in approved_earlier]
    excluded: list[str] = []
    barred = _never_deciders(request) if request.allow_self_approval else _self_ids(request)
    if barred:
        excluded = [p.user_id for p in people if p.user_id in barred]
        people = [p for p in people if p.user_id not in barred]
    needed = stage.needed(len(people))
    if not people or len(people) < needed:
        detail = f" (self-approval excluded {', '.join(excluded)})" if excluded else ""
        raise NoEligibleApprovers(
            f"stage {index + 1} needs {max(needed, 1)} approval(s) but its approvers "
            f"({', '.join(stage.approvers)}) include {len(people)} eligible people{detail}"
        )
    return people


def open_stage(request: ApprovalRequest, index: int, now: datetime) -> OpenedStage:
    """Create the slots of stage ``index`` and tell its approvers."""
    return add_slots(request, index, eligible(request, index), now)


def add_slots(
    request: ApprovalRequest, index: int, people: Sequence[directory.Person], now: datetime
) -> OpenedStage:
    """Give ``people`` slots in stage ``index`` and tell them."""
    ApprovalSlot.insert_many(
        [
            {
                "request": request.id,
                "tenant_id": request.tenant_id,
                "stage": index,
                "approver": p.user_id,
                "known": p.known,
                "created_at": now,
            }
            for p in people
        ]
    ).on_conflict_ignore().execute()
    users = [p.user_id for p in people]
    key = f"{request.step_key}.approval.{index}"
    subject, body = emails.decision_request(request, index)
    channels = request.notify_channels or ["in_app"]
    if "in_app" in channels:
        notify_in_app(request, users, key, subject, body)
    deliveries: list[str] = []
    if "email" in channels:
        deliveries = plan_emails(request, people, key, subject, body)
    return OpenedStage(users, deliveries)


def open_request(
    *,
    execution: Execution,
    step_key: str,
    title: str,
    stages: Sequence[Stage],
    owner: str | None,
    initiator: str | None,
    entity_version: int | None,
    allow_self_approval: bool,
    entity_status: str | None = None,
    creator: str | None = None,
    approves_entity: bool = False,
    due_in_s: int | None,
    escalate_to: Sequence[str],
    notify_channels: Sequence[str] = ("in_app",),
    now: datetime | None = None,
) -> tuple[ApprovalRequest, list[str]]:
    """The request of this execution's step, created with its first stage if new.

    Also returns the e-mail deliveries planned for the first stage's approvers, to be
    sent once the caller's transaction has committed.
    """
    now = now or utcnow()
    existing = ApprovalRequest.get_or_none(
        (ApprovalRequest.execution == execution.id) & (ApprovalRequest.step_key == step_key)
    )
    if existing is not None:
        return existing, []
    ApprovalRequest.insert(
        tenant_id=execution.tenant_id,
        execution=execution.id,
        step_key=step_key,
        title=title[:300],
        entity_type=execution.entity_type,
        entity_id=execution.entity_id,
        entity_version=entity_version,
        entity_status=entity_status,
        owner=owner,
        initiator=initiator,
        creator=creator,
        approves_entity=approves_entity,
        stages=[s.to_dict() for s in stages],
        allow_self_approval=allow_self_approval,
        due_in_s=due_in_s,
        escalate_to=list(escalate_to),
        notify_channels=list(notify_channels),
        due_at=now + timedelta(seconds=due_in_s) if due_in_s else None,
        created_at=now,
        updated_at=now,
    ).on_conflict_ignore().execute()
    request = ApprovalRequest.get(
        (ApprovalRequest.execution == execution.id) & (ApprovalRequest.step_key == step_key)
    )
    hooks.approval_recorded(request, "requested", None, stages=len(stages), due_in_s=due_in_s)
    # Fail now, not after the first stage, when a later stage could never be decided.
    for index in range(1, len(stages)):
        eligible(request, index)
    return request, open_stage(request, 0, now).deliveries


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class DecisionResult:
    request: ApprovalRequest
    slot: ApprovalSlot
    #: ``approved``/``rejected`` when this decision settled the request (``cancelled``
    #: when the next stage has nobody left to decide it), else None.
    outcome: str | None
    #: The stage that opened because of this decision (sequential approvals).
    advanced_to: int | None = None
    #: E-mail deliveries to the new stage's approvers (send after commit).
    deliveries: tuple[str, ...] = ()
    #: The execution this decision failed (nobody left for the next stage): report it
    #: with :func:`ending.report` after commit.
    ended: ending.Ended | None = None


def get_request(tenant_id: str, request_id: str) -> ApprovalRequest:
    request = ApprovalRequest.get_or_none(
        (ApprovalRequest.id == request_id) & (ApprovalRequest.tenant_id == tenant_id)
    )
    if request is None:
        raise ApprovalNotFound(f"no approval {request_id!r}")
    return request


def check_approver(
    request: ApprovalRequest, user_id: str, roles: frozenset[str] | None = None
) -> None:
    """Raise :class:`NotAnApprover` unless ``user_id`` may decide ``request``.

    :class:`SelfApprovalRefused` for its owner, initiator or creator (always, when
    approving approves the entity); :class:`ApproverRoleRequired` when ``roles`` (the
    decider's token roles; None skips the check) hold none of :func:`deciding_roles`.
    """
    if user_id in _never_deciders(request):
        raise SelfApprovalRefused(
            f"You created, own or submitted this {request.entity_type}, and approving "
            f"moves it to approved: someone else must decide (allow_self_approval does "
            "not change that)."
        )
    asked = (
        ApprovalSlot.select()
        .where((ApprovalSlot.request == request.id) & (ApprovalSlot.approver == user_id))
        .exists()
    )
    if not asked:
        if not request.allow_self_approval and user_id in _self_ids(request):
            raise SelfApprovalRefused(
                "Self-approval is not allowed: you own this "
                f"{request.entity_type} or made the change that requested approval."
            )
        raise NotAnApprover("You are not an approver of this approval.")
    check_in_directory(request, user_id)
    if roles is not None:
        allowed = deciding_roles(request)
        if not Principal(user_id, roles, request.tenant_id).has_role(*allowed):
            raise ApproverRoleRequired(
                "Deciding this approval needs one of the roles: "
                f"{', '.join(sorted({*allowed, 'admin'}))}; a slot alone is not enough."
            )


def departed(tenant_id: str, user_id: str, known: bool) -> bool:
    """The user was deactivated in the directory, or removed from it (``known``: they
    were in it when asked)."""
    user = directory.get_user(tenant_id, user_id)
    return (user is not None and not user.active) or (user is None and known)


def check_in_directory(request: ApprovalRequest, user_id: str) -> None:
    """:class:`DeciderNotInDirectory` when ``user_id`` left the directory since they
    were asked (a token outlives the directory entry it was issued for)."""
    known = (
        ApprovalSlot.select()
        .where(
            (ApprovalSlot.request == request.id)
            & (ApprovalSlot.approver == user_id)
            & ApprovalSlot.known
        )
        .exists()
    )
    if departed(request.tenant_id, user_id, known):
        raise DeciderNotInDirectory(
            f"{user_id} is no longer an active user of the directory, so they no longer "
            "decide approvals (whatever their token says); their open slots go to others."
        )


def check_current(
    request: ApprovalRequest,
    entity: dict | None,
    *,
    gone: bool = False,
    version: int | None = None,
    now: datetime | None = None,
    broker: Any = None,
) -> None:
    """Refuse a decision on anything but what the approval was asked for.

    ``entity`` is the entity as the api shows it now (None: unknown), ``gone`` true when
    the api says it no longer exists, ``version`` the one the decider names. When the
    entity moved on (gone, another version or status) the approval is closed as stale
    and :class:`StaleApproval` raised; a ``version`` other than the approval's raises
    :class:`VersionNotReviewed` and leaves it open. ``broker``: see :func:`close`.
    """
    if request.status != ApprovalStatus.PENDING:
        return  # closed already: the decision says so, with the reason
    what = f"{request.entity_type} {request.entity_id}"
    asked = _asked_for(request)
    reason = None
    if gone:
        reason = f"the {what} no longer exists"
    elif entity:
        current_version = _int(entity.get("version"))
        current_status = entity.get("status")
        moved = (
            request.entity_version is not None
            and current_version is not None
            and current_version != request.entity_version
        ) or (
            request.entity_status is not None
            and isinstance(current_status, str)
            and current_status != request.entity_status
        )
        if moved:
            reason = (
                f"the {what} moved on: it is at version {current_version} "
                f"({current_status}), the approval was asked for {asked}"
            )
    if reason is not None:
        close(request.id, f"stale: {reason}", now, broker=broker)
        raise StaleApproval(
            f"Nothing was decided: {reason}. This approval is closed as stale; a new "
            "review asks for a new approval."
        )
    if version is not None and request.entity_version not in (None, version):
        raise VersionNotReviewed(
            f"You decided on version {version}, but this approval is for version "
            f"{request.entity_version}, the {request.entity_type}'s current version: "
            f'review version {request.entity_version} and send "version": '
            f"{request.entity_version}."
        )


def _asked_for(request: ApprovalRequest) -> str:
    parts = []
    if request.entity_version is not None:
        parts.append(f"version {request.entity_version}")
    if request.entity_status:
        parts.append(f"({request.entity_status})")
    return " ".join(parts) or "an earlier state"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def close(
    request_id: str,
    reason: str,
    now: datetime | None = None,
    *,
    cancel_execution: bool = True,
    broker: Any = None,
) -> bool:
    """Close a pending approval without a decision (status ``cancelled``, ``reason``
    kept) and, with ``cancel_execution``, cancel the execution waiting for it (its run
    job is told through ``broker`` after commit, see :mod:`workflow_service.ending`).
    Conditional: a request decided or closed meanwhile is left alone."""
    now = now or utcnow()
    ended = None
    with database.atomic():
        request = ApprovalRequest.get_or_none(ApprovalRequest.id == request_id)
        closed = (
            ApprovalRequest.update(
                status=ApprovalStatus.CANCELLED,
                closed_reason=reason[:2000],
                decided_at=now,
                updated_at=now,
                lock_version=ApprovalRequest.lock_version + 1,
            )
            .where(
                (ApprovalRequest.id == request_id)
                & (ApprovalRequest.status == ApprovalStatus.PENDING)
            )
            .execute()
        )
        if not closed or request is None:
            return False
        _cancel_pending_slots(request_id)
        hooks.approval_recorded(request, "closed", None, reason=reason[:500])
        if cancel_execution:
            why = f"approval {request_id} closed: {reason}"
            ended = ending.stop(
                request.execution_id, ExecutionStatus.CANCELLED, why, now, error=why
            )
    ending.report(broker, [ended])
    log.info("approval %s closed: %s", request_id, reason)
    return True


def check_entity_people(request: ApprovalRequest, user_id: str, entity: dict | None) -> None:
    """Refuse ``user_id`` when the entity as the api reports it now (``entity``: its
    ``created_by``, ``owner`` (an assessment's assessor, evidence's collector) and
    ``submitted_by``) names them and the approval decides the entity: the request's own
    record of them may be older, or a manual run's."""
    if not request.approves_entity or not entity:
        return
    people = {entity.get(k) for k in ("created_by", "owner", "submitted_by")}
    people.add(entity_owner(request.entity_type, entity))
    if user_id in people:
        raise SelfApprovalRefused(
            f"You created, own or submitted this {request.entity_type}, and this approval "
            "decides it: someone else must decide."
        )


def record_refusal(
    request: ApprovalRequest,
    user_id: str,
    decision: str,
    error: NotAnApprover,
    now: datetime | None = None,
) -> None:
    """Keep a refused decision (who, when, why), in its own transaction."""
    with database.atomic():
        ApprovalRefusal.create(
            request=request.id,
            tenant_id=request.tenant_id,
            user_id=user_id,
            decision=decision,
            reason=error.reason,
            description=str(error)[:2000],
            created_at=now or utcnow(),
        )
        hooks.approval_recorded(request, "refused", user_id, decision=decision, reason=error.reason)


def refusals_of(request: ApprovalRequest) -> list[dict[str, Any]]:
    rows = (
        ApprovalRefusal.select()
        .where(ApprovalRefusal.request == request.id)
        .order_by(ApprovalRefusal.created_at, ApprovalRefusal.id)
        .limit(MAX_REFUSALS_SHOWN)
    )
    return [
        {
            "user": r.user_id,
            "decision": r.decision,
            "reason": r.reason,
            "description": r.description,
            "at": _iso(r.created_at),
        }
        for r in rows
    ]


#: Refusals shown with an approval (oldest first); the table keeps every one.
MAX_REFUSALS_SHOWN = 100


def decide(
    tenant_id: str,
    request_id: str,
    user_id: str,
    decision: str,
    comment: str | None,
    *,
    entity_version: int | None = None,
    roles: frozenset[str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> DecisionResult:
    """Record ``user_id``'s decision; settle the stage or request when it decides them.

    ``roles`` are the decider's (see :func:`check_approver`)."""
    request = get_request(tenant_id, request_id)
    check_approver(request, user_id, roles)
    cancelled_execution = False
    with database.atomic():
        now = clock()
        locked = (
            ApprovalRequest.update(lock_version=ApprovalRequest.lock_version + 1, updated_at=now)
            .where(
                (ApprovalRequest.id == request.id)
                & (ApprovalRequest.status == ApprovalStatus.PENDING)
            )
            .execute()
        )
        request = ApprovalRequest.get_by_id(request.id)
        if not locked:
            why = f" ({request.closed_reason})" if request.closed_reason else ""
            raise AlreadyDecided(f"This approval is already {request.status}{why}.")
        execution = Execution.get_by_id(request.execution_id)
        if execution.status in ExecutionStatus.FINAL:
            _settle(request, ApprovalStatus.CANCELLED, None, now)
            cancelled_execution = True
        else:
            result = _record(request, user_id, decision, comment, entity_version, now)
            hooks.approval_recorded(
                request, "decided", user_id, slot=result.slot, outcome=result.outcome
            )
    if cancelled_execution:
        raise ExecutionNotWaiting(
            f"The execution of this approval is {execution.status}; no decision is possible."
        )
    return result


def _record(
    request: ApprovalRequest,
    user_id: str,
    decision: str,
    comment: str | None,
    entity_version: int | None,
    now: datetime,
) -> DecisionResult:
    stage_index = request.current_stage
    slot = ApprovalSlot.get_or_none(
        (ApprovalSlot.request == request.id)
        & (ApprovalSlot.stage == stage_index)
        & (ApprovalSlot.approver == user_id)
    )
    if slot is None:
        # Slots exist only for stages opened so far, so this user's are all earlier ones.
        # Only an approval there is a decision; a slot cancelled when others settled
        # that stage is not.
        approved_earlier = (
            ApprovalSlot.select()
            .where(
                (ApprovalSlot.request == request.id)
                & (ApprovalSlot.approver == user_id)
                & (ApprovalSlot.stage < stage_index)
                & (ApprovalSlot.status == ApprovalStatus.APPROVED)
            )
            .exists()
        )
        if approved_earlier:
            raise AlreadyDecided(
                "You approved an earlier stage of this approval; a later stage needs someone else."
            )
        raise NotAnApprover(
            f"You are not an approver of stage {stage_index + 1}, the stage now awaiting decisions."
        )
    if slot.status != ApprovalStatus.PENDING:
        raise AlreadyDecided(f"Your decision is already recorded ({slot.status}).")
    status = ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.REJECTED
    ApprovalSlot.update(
        status=status, comment=comment, decided_at=now, entity_version=entity_version
    ).where(ApprovalSlot.id == slot.id).execute()
    slot = ApprovalSlot.get_by_id(slot.id)

    if status == ApprovalStatus.REJECTED:
        _settle(request, ApprovalStatus.REJECTED, user_id, now)
        return DecisionResult(ApprovalRequest.get_by_id(request.id), slot, ApprovalStatus.REJECTED)
    return advance(request, slot, user_id, now)


def stage_counts(request: ApprovalRequest, stage_index: int) -> dict[str, int]:
    query = (
        ApprovalSlot.select(ApprovalSlot.status, peewee.fn.COUNT(ApprovalSlot.id))
        .where((ApprovalSlot.request == request.id) & (ApprovalSlot.stage == stage_index))
        .group_by(ApprovalSlot.status)
    )
    # peewee's stubs type the rows of .tuples() as models.
    return dict(cast(Iterable[tuple[str, int]], query.tuples()))


def advance(
    request: ApprovalRequest, slot: ApprovalSlot, user_id: str, now: datetime
) -> DecisionResult:
    """Settle the current stage if its approvals suffice (under the decision lock):
    open the next stage, or approve the request (``user_id`` settled it)."""
    stage_index = request.current_stage
    counts = stage_counts(request, stage_index)
    # A slot cancelled before the stage settled is an approver who left: not counted.
    live = sum(n for status, n in counts.items() if status != ApprovalStatus.CANCELLED)
    stage = stages_of(request)[stage_index]
    if not live or counts.get(ApprovalStatus.APPROVED, 0) < stage.needed(live):
        return DecisionResult(request, slot, None)
    _cancel_pending_slots(request.id, stage_index)
    if stage_index + 1 < len(request.stages):
        following = stage_index + 1
        ApprovalRequest.update(
            current_stage=following,
            due_at=now + timedelta(seconds=request.due_in_s) if request.due_in_s else None,
            overdue_at=None,
            updated_at=now,
        ).where(ApprovalRequest.id == request.id).execute()
        request = ApprovalRequest.get_by_id(request.id)
        try:
            opened = open_stage(request, following, now)
        except NoEligibleApprovers as exc:
            # The directory changed since the request opened: nobody can decide the
            # next stage, so the approval ends here and the execution fails, saying why.
            _settle(request, ApprovalStatus.CANCELLED, None, now)
            why = f"approval {request.id}: {exc}"
            ended = ending.stop(request.execution_id, ExecutionStatus.FAILED, why, now, error=why)
            return DecisionResult(
                ApprovalRequest.get_by_id(request.id), slot, ApprovalStatus.CANCELLED, ended=ended
            )
        return DecisionResult(
            request, slot, None, advanced_to=following, deliveries=tuple(opened.deliveries)
        )
    _settle(request, ApprovalStatus.APPROVED, user_id, now)
    return DecisionResult(ApprovalRequest.get_by_id(request.id), slot, ApprovalStatus.APPROVED)


def report_approvers(broker: Any, request_id: str) -> None:
    """Name on the parked run job who decides the pending approval now: the current
    stage's undecided approvers (after a decision, the next stage's opening or a
    reassignment). Call after commit; nothing when it is settled or its execution
    is not parked (or about to be)."""
    request = ApprovalRequest.get_or_none(ApprovalRequest.id == request_id)
    if request is None or request.status != ApprovalStatus.PENDING:
        return
    row = (
        Execution.select(Execution.job_id, Execution.entity_type)
        .where(
            (Execution.id == request.execution_id)
            & Execution.status.in_((ExecutionStatus.WAITING_APPROVAL, ExecutionStatus.RUNNING))
        )
        .tuples()
        .first()
    )
    if row is None or not row[0] or row[1] not in ENTITY_QUEUES:
        return
    approvers = [
        s.approver
        for s in ApprovalSlot.select(ApprovalSlot.approver)
        .where(
            (ApprovalSlot.request == request.id)
            & (ApprovalSlot.stage == request.current_stage)
            & (ApprovalSlot.status == ApprovalStatus.PENDING)
        )
        .order_by(ApprovalSlot.id)
    ]
    try:
        rewrite_waiting(
            broker,
            row[0],
            ENTITY_QUEUES[row[1]],
            execution_id=request.execution_id,
            approval_id=request.id,
            approvers=approvers,
        )
    except Exception as exc:  # noqa: BLE001 - the decision stands; the marker is a view
        log.warning("job %s not told who decides approval %s: %s", row[0], request.id, exc)


def _cancel_pending_slots(request_id: str, stage: int | None = None) -> None:
    where = (ApprovalSlot.request == request_id) & (ApprovalSlot.status == ApprovalStatus.PENDING)
    if stage is not None:
        where &= ApprovalSlot.stage == stage
    ApprovalSlot.update(status=ApprovalStatus.CANCELLED).where(where).execute()


def _settle(request: ApprovalRequest, status: str, by: str | None, now: datetime) -> None:
    """Mark the request decided (under the decision lock) and cancel what is pending."""
    ApprovalRequest.update(status=status, decided_at=now, decided_by=by, updated_at=now).where(
        ApprovalRequest.id == request.id
    ).execute()
    _cancel_pending_slots(request.id)


def cancel_for_execution(execution_id: str, now: datetime | None = None) -> int:
    """Cancel the open approvals of a cancelled execution; returns how many."""
    now = now or utcnow()
    with database.atomic():
        ids = [
            r.id
            for r in ApprovalRequest.select(ApprovalRequest.id).where(
                (ApprovalRequest.execution == execution_id)
                & (ApprovalRequest.status == ApprovalStatus.PENDING)
            )
        ]
        for request_id in ids:
            closed = (
                ApprovalRequest.update(
                    status=ApprovalStatus.CANCELLED,
                    closed_reason="its execution ended",
                    decided_at=now,
                    updated_at=now,
                )
                .where(
                    (ApprovalRequest.id == request_id)
                    & (ApprovalRequest.status == ApprovalStatus.PENDING)
                )
                .execute()
            )
            _cancel_pending_slots(request_id)
            if closed:
                request = ApprovalRequest.get_by_id(request_id)
                hooks.approval_recorded(request, "closed", None, reason="its execution ended")
    return len(ids)


# ------------------------------------------------------------------------------ views


def decisions_of(request: ApprovalRequest) -> list[dict[str, Any]]:
    slots = (
        ApprovalSlot.select()
        .where(ApprovalSlot.request == request.id)
        .order_by(ApprovalSlot.stage, ApprovalSlot.id)
    )
    return [
        {
            "stage": s.stage + 1,
            "approver": s.approver,
            "status": s.status,
            "comment": s.comment,
            "decided_at": _iso(s.decided_at),
            "entity_version": s.entity_version,
        }
        for s in slots
    ]


def comments_of(request: ApprovalRequest) -> list[dict[str, Any]]:
    """Decided slots with a comment: what the owner reads after a rejection."""
    return [d for d in decisions_of(request) if d["comment"] and d["decided_at"]]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def request_dict(
    request: ApprovalRequest, viewer: str | None = None, *, with_refusals: bool = False
) -> dict[str, Any]:
    decisions = decisions_of(request)
    mine = [d for d in decisions if d["approver"] == viewer]
    current = [d for d in mine if d["stage"] == request.current_stage + 1]
    return {
        "id": request.id,
        "title": request.title,
        "status": request.status,
        "entity_type": request.entity_type,
        "entity_id": request.entity_id,
        "entity_version": request.entity_version,
        "entity_status": request.entity_status,
        "execution_id": request.execution_id,
        "step_key": request.step_key,
        "owner": request.owner,
        "initiator": request.initiator,
        "creator": request.creator,
        "approves_entity": request.approves_entity,
        "allow_self_approval": request.allow_self_approval,
        "stage": request.current_stage + 1,
        "stages": request.stages,
        "due_at": _iso(request.due_at),
        "overdue": request.overdue_at is not None,
        "created_at": _iso(request.created_at),
        "decided_at": _iso(request.decided_at),
        "decided_by": request.decided_by,
        "closed_reason": request.closed_reason,
        "my_decision": mine[-1]["status"] if mine else None,
        "can_decide": request.status == ApprovalStatus.PENDING
        and bool(current)
        and current[0]["status"] == ApprovalStatus.PENDING,
        "decisions": decisions,
        **({"refusals": refusals_of(request)} if with_refusals else {}),
    }
