"""Policy use cases: each write changes the policy, records a version snapshot and adds
an event to the outbox in one transaction, then publishes the event after commit."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import peewee

from api_service import idempotency, lifecycle, review_cycle, search
from api_service.duties import check_separation_of_duties, former_holders
from api_service.errors import (
    ApprovalWorkflowRequired,
    ConcurrentChange,
    DomainError,
    IdempotencyKeyReused,
    PolicyInReview,
    PolicyNotFound,
    TransitionForbidden,
    TransitionNotAllowed,
    VersionMismatch,
    VersionRequired,
)
from api_service.models import (
    IdempotencyRecord,
    Policy,
    PolicyRefusal,
    PolicyVersion,
    TenantSettings,
)
from api_service.outbox import Clock, OutboxPublisher, OutboxRow, PendingEvent
from api_service.schemas import EDITABLE_FIELDS, PolicyCreate, PolicyUpdate, TransitionRequest
from api_service.transactions import GroupCommit
from shared.auth import Principal
from shared.events import Event
from shared.sql import CompiledInsert

_INSERT_POLICY = CompiledInsert(Policy)
_INSERT_VERSION = CompiledInsert(PolicyVersion)

#: Fields of the event snapshot workflows match on (content is left out: it can be
#: large and conditions do not look into it).
SNAPSHOT_FIELDS = (
    "title",
    "policy_type",
    "owner",
    "status",
    "version",
    "review_frequency",
    "next_review_date",
    "effective_date",
    "tags",
    "created_by",
    "updated_by",
    "submitted_by",
)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"  # stored as naive UTC
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def policy_body(policy: Policy) -> dict[str, Any]:
    """The JSON representation of a policy."""
    return {
        "id": str(policy.id),
        "tenant": policy.tenant,
        "title": policy.title,
        "policy_type": policy.policy_type,
        "content": policy.content,
        "owner": policy.owner,
        "status": policy.status,
        "version": policy.version,
        "review_frequency": policy.review_frequency,
        "next_review_date": json_value(policy.next_review_date),
        "effective_date": json_value(policy.effective_date),
        "tags": list(policy.tags or []),
        "created_by": policy.created_by,
        "created_at": json_value(policy.created_at),
        "updated_by": policy.updated_by,
        "updated_at": json_value(policy.updated_at),
        "submitted_by": policy.submitted_by,
    }


def job_links(events: Sequence[PendingEvent]) -> list[dict[str, str]]:
    return [{"id": p.event.event_id, "href": f"/jobs/{p.event.event_id}"} for p in events]


@dataclass(frozen=True)
class ListFilters:
    status: str | None = None
    policy_type: str | None = None
    owner: str | None = None
    q: str | None = None


@dataclass(frozen=True)
class WriteResult:
    policy: Policy
    events: list[PendingEvent]

    def body(self) -> dict[str, Any]:
        return {**policy_body(self.policy), "jobs": job_links(self.events)}


class PolicyService:
    """Policies of one database; every method is scoped to the caller's tenant."""

    def __init__(self, db: peewee.Database, outbox: OutboxPublisher, clock: Clock):
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self.group_commit = GroupCommit(db)

    # ----------------------------------------------------------------------- reads

    def get(self, principal: Principal, policy_id: uuid.UUID) -> Policy:
        policy = (
            Policy.select()
            .where(
                (Policy.id == policy_id)
                & (Policy.tenant == principal.tenant)
                & Policy.deleted_at.is_null()
            )
            .first()
        )
        if policy is None:
            raise PolicyNotFound(f"No policy {policy_id} in tenant {principal.tenant}.")
        return policy

    def search(
        self,
        principal: Principal,
        filters: ListFilters,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> tuple[list[Policy], tuple[datetime, uuid.UUID] | None]:
        """Newest first; ``after`` is the (created_at, id) of the last row already seen."""
        query = search.policies(self.db, principal.tenant, filters.q)
        if filters.status:
            query = query.where(Policy.status == filters.status)
        if filters.policy_type:
            query = query.where(Policy.policy_type == filters.policy_type)
        if filters.owner:
            query = query.where(Policy.owner == filters.owner)
        if after is not None:
            created_at, last_id = after
            query = query.where(
                (Policy.created_at < created_at)
                | ((Policy.created_at == created_at) & (Policy.id < last_id))
            )
        rows = list(query.order_by(Policy.created_at.desc(), Policy.id.desc()).limit(limit + 1))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, (rows[-1].created_at, rows[-1].id)

    def versions(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[PolicyVersion]:
        """Oldest first; ``after`` a version number, ``limit`` the most rows."""
        # Deleted policies keep their history readable (the delete is a version too).
        exists = Policy.select(Policy.id).where(
            (Policy.id == policy_id) & (Policy.tenant == principal.tenant)
        )
        if not exists.exists():
            raise PolicyNotFound(f"No policy {policy_id} in tenant {principal.tenant}.")
        query = PolicyVersion.select().where(PolicyVersion.policy == policy_id)
        if after is not None:
            query = query.where(PolicyVersion.version > after)
        query = query.order_by(PolicyVersion.version)
        return list(query.limit(limit) if limit is not None else query)

    # ---------------------------------------------------------------------- writes

    def create(
        self, principal: Principal, data: PolicyCreate, *, acting_for: str | None = None
    ) -> WriteResult:
        """``acting_for``: the person the workflow service (``principal``) creates it for
        (a bulk import's); they are its creator, the service the version's ``via``."""
        policy, statements, pending = self._create_rows(principal, data, acting_for)
        self.group_commit.run(statements)
        self.outbox.publish([pending])
        return WriteResult(policy, [pending])

    def create_idempotent(
        self,
        principal: Principal,
        data: PolicyCreate,
        idempotency_key: str,
        *,
        acting_for: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Create the policy once per key: its answer is stored in the transaction that
        inserts it (the same group commit), and a repeat answers it again; concurrent
        repeats lose on the unique key, roll back their policy and answer the winner's.
        """
        request_hash = idempotency.fingerprint(
            {
                "op": "POST /policies",
                "body": data.model_dump(mode="json"),
                "caller": principal.sub,
                **({"acting_for": acting_for} if acting_for else {}),
            }
        )
        stored = idempotency.replay(principal, idempotency_key, request_hash)
        if stored is not None:
            return stored
        policy, statements, pending = self._create_rows(principal, data, acting_for)
        body = WriteResult(policy, [pending]).body()
        record = idempotency.record_params(
            principal, idempotency_key, request_hash, 201, body, self.clock()
        )
        try:
            self.group_commit.run([*statements, idempotency.store_statement(self.db, record)])
        except peewee.IntegrityError:
            stored = idempotency.replay(principal, idempotency_key, request_hash)
            if stored is not None:
                return stored
            raise
        self.outbox.publish([pending])
        return 201, body

    def _create_rows(
        self, principal: Principal, data: PolicyCreate, acting_for: str | None = None
    ) -> tuple[Policy, list, PendingEvent]:
        """A new policy and the statements that insert it, its version and its event."""
        now = self.clock()
        author = acting_for or principal.sub
        values = {
            "id": uuid.uuid4(),
            "tenant": principal.tenant,
            "title": data.title,
            "policy_type": data.policy_type,
            "content": data.content,
            "owner": data.owner or author,
            "status": "draft",
            "version": 1,
            "review_frequency": data.review_frequency,
            "next_review_date": data.next_review_date,
            "effective_date": data.effective_date,
            "tags": data.tags,
            "created_by": author,
            "created_at": now,
            "updated_by": author,
            "updated_at": now,
            "deleted_at": None,
        }
        policy = Policy(**values)
        # The rows are built here, so the group commit's transaction only runs statements.
        policy_row = _INSERT_POLICY.params(values)
        version_row, outbox_row = self._change_rows(
            policy, principal, "policy.created", {}, [], acting_for=acting_for
        )
        statements = [
            _INSERT_POLICY.statement(self.db, policy_row),
            _INSERT_VERSION.statement(self.db, version_row),
            self.outbox.insert_statement(outbox_row),
        ]
        return policy, statements, PendingEvent(outbox_row.event)

    def update(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: PolicyUpdate,
        *,
        if_match: int | None,
        acting_for: str | None = None,
    ) -> WriteResult:
        expected = self._expected_version(data.version, if_match, required=True)
        with self.db.atomic():
            result = self._update(principal, policy_id, data, expected, acting_for)
        self.outbox.publish(result.events)
        return result

    def update_idempotent(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: PolicyUpdate,
        *,
        if_match: int | None,
        idempotency_key: str,
        acting_for: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """:meth:`update`, its answer stored with it for repeats of the key."""
        expected = self._expected_version(data.version, if_match, required=True)
        request_hash = idempotency.fingerprint(
            {
                "op": f"PATCH /policies/{policy_id}",
                "body": data.model_dump(mode="json", exclude_unset=True, exclude={"version"}),
                "version": expected,
                "caller": principal.sub,
                **({"acting_for": acting_for} if acting_for else {}),
            }
        )
        try:
            with self.db.atomic():
                stored = idempotency.replay(principal, idempotency_key, request_hash)
                if stored is not None:
                    return stored
                result = self._update(principal, policy_id, data, expected, acting_for)
                body = result.body()
                idempotency.store(
                    self.db, principal, idempotency_key, request_hash, 200, body, self.clock()
                )
        except (peewee.IntegrityError, DomainError):
            # A concurrent repeat may have committed first (the key, or its change
            # making this one stale): then answer as it did.
            stored = idempotency.replay(principal, idempotency_key, request_hash)
            if stored is not None:
                return stored
            raise
        self.outbox.publish(result.events)
        return 200, body

    def _update(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: PolicyUpdate,
        expected: int | None,
        acting_for: str | None = None,
    ) -> WriteResult:
        """The change of :meth:`update`, in the caller's transaction (not published)."""
        changes = data.model_dump(exclude_unset=True, exclude={"version"})
        policy = self.get(principal, policy_id)
        self._check_version(policy, expected)
        changed = {
            name: value
            for name, value in changes.items()
            if name in EDITABLE_FIELDS and getattr(policy, name) != value
        }
        if not changed:
            return WriteResult(policy, [])
        if policy.status in lifecycle.FROZEN:
            raise PolicyInReview(
                f"The policy is in review (version {policy.version}); withdraw it to "
                f"draft first (POST /policies/{policy.id}/transitions with "
                '{"to": "draft"}), then edit it and send it to review again: its '
                "reviewers decide on the content they were asked about.",
                status=policy.status,
                version=policy.version,
            )
        policy = self._conditional_update(
            policy, principal, changed, expected, acting_for=acting_for
        )
        extra = {"changed_fields": sorted(changed)}
        pending = self._record(
            self._change_rows(policy, principal, "policy.updated", extra, [], acting_for=acting_for)
        )
        return WriteResult(policy, [pending])

    def delete(
        self, principal: Principal, policy_id: uuid.UUID, *, if_match: int | None
    ) -> WriteResult:
        expected = self._expected_version(None, if_match, required=False)
        with self.db.atomic():
            policy = self.get(principal, policy_id)
            self._check_version(policy, expected)
            policy = self._conditional_update(
                policy, principal, {"deleted_at": self.clock()}, expected
            )
            pending = self._record(self._change_rows(policy, principal, "policy.deleted", {}, []))
        self.outbox.publish([pending])
        return WriteResult(policy, [pending])

    def transition(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        data: TransitionRequest,
        *,
        if_match: int | None,
        causation: list[str],
        idempotency_key: str | None,
        initiator: str | None = None,
        deciders: Sequence[str] = (),
    ) -> tuple[int, dict[str, Any]]:
        """Move the policy to ``data.to``; answers (status, body).

        ``initiator`` and ``deciders`` name the people the workflow service acts for
        (the chain's initiator; who approved, for a move an approval decided). A move
        to ``approved`` is a decision: :meth:`_check_separation_of_duties` refuses it
        to the policy's creator, owner and submitter, and every refusal is recorded.

        With an idempotency key the first successful answer is stored in the same
        transaction as the move, and a repeat of the key replays it without moving
        anything; a repeat with a different request, or by another caller, is refused.
        A refused move changed nothing and stores nothing, so its key may be sent again
        (a workflow step retried once the policy can move, say).
        """
        expected = self._expected_version(data.version, if_match, required=False)
        # The caller is part of the request: a key is never someone else's answer.
        fingerprint = _fingerprint(
            {
                "policy": str(policy_id),
                **data.model_dump(mode="json"),
                "if_match": if_match,
                "caller": principal.sub,
                **({"deciders": list(deciders)} if deciders else {}),
            }
        )
        try:
            with self.db.atomic():
                if idempotency_key:
                    replay = self._replay(principal, idempotency_key, fingerprint)
                    if replay is not None:
                        return replay
                policy = self.get(principal, policy_id)
                self._check_version(policy, expected)
                old = policy.status
                allowed = lifecycle.allowed_targets(old)
                if data.to not in allowed:
                    raise TransitionNotAllowed(
                        f"A policy in status '{old}' cannot move to '{data.to}'; allowed: "
                        f"{', '.join(allowed) or 'none'}.",
                        status=old,
                        allowed=list(allowed),
                    )
                roles = lifecycle.roles_for(old, data.to)
                if not principal.has_role(*roles):
                    raise TransitionForbidden(
                        f"Moving a policy from '{old}' to '{data.to}' needs one of the roles: "
                        f"{', '.join(sorted({*roles, 'admin'}))}."
                    )
                if data.to in lifecycle.DECISIONS:
                    self._check_separation_of_duties(principal, policy, deciders)
                changes: dict[str, Any] = {"status": data.to}
                # Approving or publishing starts the review cycle (api_service.review_cycle).
                changes.update(
                    review_cycle.on_status_change(
                        policy.review_frequency, data.to, self.clock().date()
                    )
                )
                if data.to == lifecycle.SUBMITTED:
                    # The person a workflow acted for sent it, not the service.
                    submitter = initiator if _is_service(principal) and initiator else None
                    changes["submitted_by"] = submitter or principal.sub
                # A move the workflow service makes for the people who decided it is
                # theirs: the first named settled it (the service is kept as ``via``).
                acting_for = deciders[0] if _is_service(principal) and deciders else None
                policy = self._conditional_update(
                    policy, principal, changes, expected, acting_for=acting_for
                )
                extra: dict[str, Any] = {"old_status": old}
                if data.comment:
                    extra["comment"] = data.comment
                if acting_for:
                    extra.update(via=principal.sub, decided_by=list(deciders))
                pending = self._record(
                    self._change_rows(
                        policy,
                        principal,
                        "policy.status_changed",
                        extra,
                        causation,
                        initiator,
                        acting_for=acting_for,
                    )
                )
                body = WriteResult(policy, [pending]).body()
                if idempotency_key:
                    IdempotencyRecord.create(
                        tenant=principal.tenant,
                        caller=principal.sub,
                        key=idempotency_key,
                        request_hash=fingerprint,
                        status=200,
                        body=body,
                        created_at=self.clock(),
                    )
        except (peewee.IntegrityError, DomainError) as exc:
            # A concurrent request with the same key may have committed first (the
            # unique key, or its move making ours stale): then answer as it did.
            if idempotency_key:
                replay = self._replay(principal, idempotency_key, fingerprint)
                if replay is not None:
                    return replay
            if isinstance(exc, TransitionForbidden):
                self._record_refusal(principal, policy_id, data.to, exc, deciders)
            raise
        self.outbox.publish([pending])
        return 200, body

    def refusals(self, principal: Principal, policy_id: uuid.UUID) -> list[PolicyRefusal]:
        exists = Policy.select(Policy.id).where(
            (Policy.id == policy_id) & (Policy.tenant == principal.tenant)
        )
        if not exists.exists():
            raise PolicyNotFound(f"No policy {policy_id} in tenant {principal.tenant}.")
        return list(
            PolicyRefusal.select()
            .where((PolicyRefusal.policy == policy_id) & (PolicyRefusal.tenant == principal.tenant))
            .order_by(PolicyRefusal.refused_at.desc(), PolicyRefusal.id.desc())
            .limit(MAX_REFUSALS)
        )

    # --------------------------------------------------------------------- helpers

    def _check_separation_of_duties(
        self, principal: Principal, policy: Policy, deciders: Sequence[str]
    ) -> None:
        """Refuse a decision (a move to approved) its decider may not make.

        A person decides for themselves; the workflow service decides for the people
        who approved (``deciders``) and must name them. Neither the policy's creator,
        its owner nor whoever sent it to review may be one of them. With the tenant
        setting ``approval_requires_workflow`` only the workflow service decides.
        """
        if not _is_service(principal) and requires_workflow(principal.tenant):
            raise ApprovalWorkflowRequired(
                f"Tenant {principal.tenant} requires the approval workflow: policies "
                "are approved through a workflow's approval, not directly."
            )
        check_separation_of_duties(
            principal,
            deciders,
            [
                ("created", policy.created_by),
                ("owns", policy.owner),
                ("sent to review", policy.submitted_by),
                # A hand-over before the review is no way around the duties.
                *(
                    ("was the owner of", who)
                    for who in former_holders(
                        PolicyVersion, "policy", policy.id, "owner", policy.owner
                    )
                ),
            ],
            noun="policy",
            target="approved",
            verb="approve",
            decided="approved",
        )

    def _record_refusal(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        to: str,
        error: TransitionForbidden,
        deciders: Sequence[str],
    ) -> None:
        """Keep a refused move (its transaction rolled back), in a transaction of its own."""
        policy = Policy.get_or_none((Policy.id == policy_id) & (Policy.tenant == principal.tenant))
        if policy is None:
            return
        with self.db.atomic():
            PolicyRefusal.create(
                tenant=principal.tenant,
                policy=policy_id,
                from_status=policy.status,
                to_status=to,
                refused_by=principal.sub,
                on_behalf_of=",".join(deciders)[:2000] or None,
                reason=error.description,
                refused_at=self.clock(),
            )

    def _replay(
        self, principal: Principal, key: str, fingerprint: str
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
                "another caller; use a new key for a different request.",
            )
        return record.status, record.body

    @staticmethod
    def _expected_version(
        body_version: int | None, if_match: int | None, *, required: bool
    ) -> int | None:
        if body_version is not None and if_match is not None and body_version != if_match:
            raise VersionMismatch(
                f"If-Match names version {if_match} but the body names version {body_version}."
            )
        expected = body_version if body_version is not None else if_match
        if expected is None and required:
            raise VersionRequired(
                "Send the version this change is based on, as an If-Match header (the "
                "policy's ETag) or as 'version' in the body, so a concurrent change is "
                "never overwritten."
            )
        return expected

    @staticmethod
    def _check_version(policy: Policy, expected: int | None) -> None:
        if expected is not None and policy.version != expected:
            raise VersionMismatch(
                f"The policy is at version {policy.version}, not {expected}; reload it and "
                "apply your change again.",
                current_version=policy.version,
            )

    def _conditional_update(
        self,
        policy: Policy,
        principal: Principal,
        changes: dict[str, Any],
        expected: int | None = None,
        *,
        acting_for: str | None = None,
    ) -> Policy:
        """Apply ``changes`` only if nobody changed the policy since it was read
        (``acting_for``: the person a service made the change for, its ``updated_by``).

        Two writers that read the same version both get here on PostgreSQL; the row
        lock makes the second re-check ``version`` after the first commits, so exactly
        one updates a row.
        """
        now = self.clock()
        values = {
            **changes,
            "version": policy.version + 1,
            "updated_by": acting_for or principal.sub,
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
            if expected is not None:
                raise VersionMismatch(
                    f"The policy is no longer at version {expected}; reload it and apply "
                    "your change again."
                )
            raise ConcurrentChange(
                "The policy changed while this request was handled; reload it and retry."
            )
        for name, value in values.items():
            setattr(policy, name, value)
        return policy

    def _record(self, rows: tuple[list[Any], OutboxRow]) -> PendingEvent:
        """Write a change's rows (from :meth:`_change_rows`) in the current transaction."""
        version_row, outbox_row = rows
        _INSERT_VERSION.run(self.db, version_row)
        return self.outbox.insert(outbox_row)

    def _change_rows(
        self,
        policy: Policy,
        principal: Principal,
        event_type: str,
        extra: dict[str, Any],
        causation: list[str],
        initiator: str | None = None,
        *,
        acting_for: str | None = None,
    ) -> tuple[list[Any], OutboxRow]:
        """The version snapshot row and the outbox row of a change to ``policy``.

        ``acting_for``: the person a service (``principal``) made the change for; they
        are its ``changed_by`` and the event's actor, the service its ``via``."""
        version_row = _INSERT_VERSION.params(
            {
                "policy": policy.id,
                "version": policy.version,
                "change": event_type,
                "snapshot": policy_body(policy),
                "changed_by": acting_for or principal.sub,
                "changed_at": policy.updated_at,
                "via": principal.sub if acting_for else None,
            }
        )
        data = {name: json_value(getattr(policy, name)) for name in SNAPSHOT_FIELDS}
        data.update(extra)
        event = Event(
            event_type=event_type,
            entity_type="policy",
            entity_id=str(policy.id),
            tenant_id=policy.tenant,
            actor=acting_for or principal.sub,
            initiator=initiator,
            data=data,
            causation=causation,
        )
        return version_row, self.outbox.row(event)


#: Refusals listed per policy, newest first.
MAX_REFUSALS = 200


def _is_service(principal: Principal) -> bool:
    return "service" in principal.roles


def requires_workflow(tenant: str) -> bool:
    """The tenant's ``approval_requires_workflow`` setting (off without a row)."""
    return bool(
        TenantSettings.select(TenantSettings.approval_requires_workflow)
        .where(TenantSettings.tenant == tenant)
        .scalar()
    )


def _fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
