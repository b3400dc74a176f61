"""Periodic reviews of policies in force: ``/policies/{id}/reviews``.

An approved or published policy is reviewed once per ``review_frequency``. A reviewer
(approver or admin, never the policy's owner) records the outcome; that moves
``next_review_date`` one period on from the day of the review, bumps the policy's
version with a snapshot (change ``policy.reviewed``) and publishes a
``policy.reviewed`` event, all in one transaction. ``changes_required`` keeps the
policy's status: a workflow on the event decides what happens next (send it back to
review, open a task), so the review itself never withdraws a policy in force.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import falcon
import peewee
from pydantic import BaseModel, StringConstraints

from api_service.duties import former_holders
from api_service.errors import (
    ConcurrentChange,
    DomainError,
    IdempotencyKeyReused,
    PolicyNotFound,
    VersionMismatch,
)
from api_service.models import BaseModel as Table
from api_service.models import IdempotencyRecord, Policy, PolicyVersion
from api_service.outbox import Clock, OutboxPublisher
from api_service.policies import SNAPSHOT_FIELDS, job_links, json_value, policy_body
from api_service.resources import idempotency_key, if_match_version
from api_service.review_cycle import next_review
from api_service.schemas import JobLink
from shared.auth import Principal
from shared.events import Event
from shared.http import (
    Keyset,
    Param,
    StrictModel,
    parse_limit,
    parse_uuid,
    route,
)

#: Who records a review (admins too); the owner never reviews their own policy.
RECORD_ROLES = ("approver",)
READ_ROLES = ("viewer", "editor", "approver", "auditor", "service")
#: Statuses of a policy in force, the only ones reviewed.
REVIEWABLE = ("approved", "published")
OUTCOMES = ("no_change", "changes_required")
EVENT_TYPE = "policy.reviewed"


class PolicyReview(Table):
    """A periodic review of a policy: its outcome, who made it and what it scheduled."""

    id = peewee.BigAutoField()
    tenant = peewee.CharField(max_length=64)
    policy = peewee.UUIDField()
    outcome = peewee.CharField(max_length=32)
    comment = peewee.TextField(null=True)
    reviewed_by = peewee.CharField(max_length=128)
    reviewed_at = peewee.DateTimeField()
    #: The policy's version the review made (its snapshot is in /versions).
    policy_version = peewee.IntegerField()
    #: The review date it set (null: the policy has no review frequency).
    next_review_date = peewee.DateField(null=True)

    class Meta:
        table_name = "policy_review"
        # The list reads a policy's reviews newest first.
        indexes = ((("policy", "reviewed_at", "id"), False),)


# ------------------------------------------------------------------------- errors


class ReviewNotAllowed(DomainError):
    status = falcon.HTTP_409
    title = "Review not allowed"


class ReviewForbidden(DomainError):
    status = falcon.HTTP_403
    title = "Forbidden"


class OwnReview(ReviewForbidden):
    title = "Separation of duties"


# ------------------------------------------------------------------------ schemas

Comment = Annotated[str, StringConstraints(max_length=2_000)]


class ReviewRequest(StrictModel):
    outcome: Literal["no_change", "changes_required"]
    comment: Comment | None = None


class ReviewOut(BaseModel):
    id: int
    policy_id: str
    outcome: Literal["no_change", "changes_required"]
    comment: str | None
    reviewed_by: str
    reviewed_at: datetime
    policy_version: int
    next_review_date: date | None


class ReviewWriteOut(ReviewOut):
    #: The job of the ``policy.reviewed`` event.
    jobs: list[JobLink]


class ReviewListOut(BaseModel):
    items: list[ReviewOut]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


def review_body(review: PolicyReview) -> dict[str, Any]:
    return {
        "id": review.id,
        "policy_id": str(review.policy),
        "outcome": review.outcome,
        "comment": review.comment,
        "reviewed_by": review.reviewed_by,
        "reviewed_at": json_value(review.reviewed_at),
        "policy_version": review.policy_version,
        "next_review_date": json_value(review.next_review_date),
    }


# ------------------------------------------------------------------------ service


class ReviewService:
    """Records and lists a tenant's policy reviews."""

    def __init__(self, db: peewee.Database, outbox: OutboxPublisher, clock: Clock):
        self.db = db
        self.outbox = outbox
        self.clock = clock

    def record(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: ReviewRequest,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Record a review; answers (status, body). With an idempotency key the first
        answer is stored with the review and a repeat replays it (keys are per caller,
        shared with transitions: a key used for another request is refused)."""
        if not principal.has_role(*RECORD_ROLES):
            raise ReviewForbidden(
                "Recording a policy review needs one of the roles: "
                f"{', '.join(sorted({*RECORD_ROLES, 'admin'}))}."
            )
        fingerprint = _fingerprint(
            {
                "review_of": str(policy_id),
                **data.model_dump(mode="json"),
                "if_match": if_match,
                "caller": principal.sub,
            }
        )
        try:
            with self.db.atomic():
                if idempotency_key:
                    replay = self._replay(principal, idempotency_key, fingerprint)
                    if replay is not None:
                        return replay
                status, body, pending = self._record(principal, policy_id, data, if_match)
                if idempotency_key:
                    IdempotencyRecord.create(
                        tenant=principal.tenant,
                        caller=principal.sub,
                        key=idempotency_key,
                        request_hash=fingerprint,
                        status=status,
                        body=body,
                        created_at=self.clock(),
                    )
        except (peewee.IntegrityError, DomainError):
            # A concurrent request with the same key may have committed first.
            if idempotency_key:
                replay = self._replay(principal, idempotency_key, fingerprint)
                if replay is not None:
                    return replay
            raise
        self.outbox.publish([pending])
        return status, body

    def _record(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: ReviewRequest,
        if_match: int | None,
    ):
        policy = self._policy(principal, policy_id, deleted=False)
        if if_match is not None and policy.version != if_match:
            raise VersionMismatch(
                f"The policy is at version {policy.version}, not {if_match}; reload it "
                "and record the review again.",
                current_version=policy.version,
            )
        if policy.status not in REVIEWABLE:
            raise ReviewNotAllowed(
                f"Only policies in force ({', '.join(REVIEWABLE)}) are reviewed; this one "
                f"is {policy.status}.",
                status=policy.status,
            )
        if policy.owner == principal.sub:
            raise OwnReview(
                f"{principal.sub} owns this policy, so someone else (an approver who does "
                "not own it) must record its periodic review."
            )
        # A hand-over just before the review is no way around it.
        if principal.sub in former_holders(
            PolicyVersion, "policy", policy.id, "owner", policy.owner
        ):
            raise OwnReview(
                f"{principal.sub} was the owner of this policy (it was handed over since), "
                "so someone else must record its periodic review."
            )
        now = self.clock()
        due = next_review(policy.review_frequency, now.date())
        values = {
            "version": policy.version + 1,
            "next_review_date": due,
            "updated_by": principal.sub,
            "updated_at": now,
        }
        updated = (
            Policy.update(**values)
            .where(
                (Policy.id == policy.id)
                & (Policy.version == policy.version)
                & Policy.deleted_at.is_null()
            )
            .execute()
        )
        if updated != 1:
            raise ConcurrentChange(
                "The policy changed while the review was recorded; reload it and retry."
            )
        for name, value in values.items():
            setattr(policy, name, value)
        review = PolicyReview.create(
            tenant=principal.tenant,
            policy=policy.id,
            outcome=data.outcome,
            comment=data.comment,
            reviewed_by=principal.sub,
            reviewed_at=now,
            policy_version=policy.version,
            next_review_date=due,
        )
        PolicyVersion.create(
            policy=policy.id,
            version=policy.version,
            change=EVENT_TYPE,
            snapshot=policy_body(policy),
            changed_by=principal.sub,
            changed_at=now,
        )
        event_data = {name: json_value(getattr(policy, name)) for name in SNAPSHOT_FIELDS}
        event_data.update(
            review_id=review.id,
            outcome=data.outcome,
            comment=data.comment,
            reviewed_by=principal.sub,
            next_review_date=json_value(due),
        )
        pending = self.outbox.add(
            Event(
                event_type=EVENT_TYPE,
                entity_type="policy",
                entity_id=str(policy.id),
                tenant_id=policy.tenant,
                actor=principal.sub,
                data=event_data,
            )
        )
        body = {**review_body(review), "jobs": job_links([pending])}
        return 201, body, pending

    def list(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> tuple[list[PolicyReview], tuple[datetime, int] | None]:
        """Newest first; ``after`` is the (reviewed_at, id) of the last row seen."""
        # A deleted policy's reviews stay readable, like its versions.
        self._policy(principal, policy_id, deleted=True)
        query = PolicyReview.select().where(
            (PolicyReview.policy == policy_id) & (PolicyReview.tenant == principal.tenant)
        )
        if after is not None:
            at, last_id = after
            query = query.where(
                (PolicyReview.reviewed_at < at)
                | ((PolicyReview.reviewed_at == at) & (PolicyReview.id < last_id))
            )
        rows = list(
            query.order_by(PolicyReview.reviewed_at.desc(), PolicyReview.id.desc()).limit(limit + 1)
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, (rows[-1].reviewed_at, rows[-1].id)

    @staticmethod
    def _policy(principal: Principal, policy_id: uuid.UUID, *, deleted: bool) -> Policy:
        query = Policy.select().where(
            (Policy.id == policy_id) & (Policy.tenant == principal.tenant)
        )
        if not deleted:
            query = query.where(Policy.deleted_at.is_null())
        policy = query.first()
        if policy is None:
            raise PolicyNotFound(f"No policy {policy_id} in tenant {principal.tenant}.")
        return policy

    @staticmethod
    def _replay(
        principal: Principal, key: str, fingerprint: str
    ) -> tuple[int, dict[str, Any]] | None:
        record = IdempotencyRecord.get_or_none(
            (IdempotencyRecord.tenant == principal.tenant)
            & (IdempotencyRecord.caller == principal.sub)
            & (IdempotencyRecord.key == key)
        )
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was already used with a different request or by "
                "another caller; use a new key for a different request."
            )
        return record.status, record.body


def _fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------- resources

ID_PARAM = Param("policy_id", "path", "Policy id", {"type": "string", "format": "uuid"})
#: Reviews page newest first by review time, then their (integer) id.
REVIEW_KEYSET = Keyset(("t", datetime), ("i", int))


class PolicyReviews:
    docs = {
        "POST": route(
            "Record a periodic review of a policy in force (approved or published; "
            "otherwise 409): outcome no_change or changes_required. Approvers and "
            "admins only, never the policy's owner (403). Moves next_review_date one "
            "review_frequency on from today, bumps the version (change policy.reviewed) "
            "and publishes policy.reviewed; the status is kept. Idempotency-Key replays "
            "the first answer (keys are per caller).",
            request=ReviewRequest,
            response=ReviewWriteOut,
            status=201,
            roles=RECORD_ROLES,
            errors=(400, 403, 404, 409, 412, 422),
            params=(
                ID_PARAM,
                Param("If-Match", "header", "The ETag (version) the review is based on."),
                Param("Idempotency-Key", "header", "Replays the first answer for this key"),
            ),
        ),
        "GET": route(
            "The policy's periodic reviews, newest first",
            response=ReviewListOut,
            roles=READ_ROLES,
            errors=(400, 404),
            params=(
                ID_PARAM,
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor", description="next_cursor of the previous page"),
            ),
        ),
    }

    def __init__(self, service: ReviewService, max_body_bytes: int):
        self.service = service
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, policy_id):
        principal = req.context.principal
        pid = parse_uuid(policy_id, "policy_id")
        if_match = if_match_version(req)
        key = idempotency_key(req)
        data = req.context.body
        status, body = self.service.record(
            principal, pid, data, if_match=if_match, idempotency_key=key
        )
        resp.status = status
        resp.location = f"/policies/{pid}/reviews"
        resp.etag = f'"{body["policy_version"]}"'  # the policy's version it made
        return body

    def on_get(self, req, resp, policy_id):
        principal = req.context.principal
        pid = parse_uuid(policy_id, "policy_id")
        limit = parse_limit(req, default=50, maximum=200)
        after = REVIEW_KEYSET.after(req)
        rows, last = self.service.list(principal, pid, after=after, limit=limit)
        next_cursor = REVIEW_KEYSET.encode(*last) if last is not None else None
        return {"items": [review_body(r) for r in rows], "next_cursor": next_cursor}


def add_routes(app: falcon.App, docs, service: ReviewService, max_body_bytes: int) -> None:
    docs.add_route(app, "/policies/{policy_id}/reviews", PolicyReviews(service, max_body_bytes))
