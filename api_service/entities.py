"""The machinery every entity type of the api shares, driven by a small description of
the type (:class:`EntityKind`): its model and version model, lifecycle, who may make
which move, which moves are decisions, which statuses freeze its content, its JSON body
and the fields of its event snapshot.

Every write changes the row with a conditional UPDATE (the version it was read at),
records a version snapshot and adds an event to the outbox in one transaction, then
publishes the event after commit, exactly as policies do. Writes sent with an
``Idempotency-Key`` store their first answer in the same transaction
(:mod:`api_service.idempotency`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee

from api_service import idempotency
from api_service.duties import check_separation_of_duties, former_holders, is_service
from api_service.errors import (
    ConcurrentChange,
    ContentFrozen,
    DomainError,
    EntityNotFound,
    SystemTransition,
    TransitionForbidden,
    TransitionNotAllowed,
    VersionMismatch,
    VersionRequired,
)
from api_service.models import EntityRefusal
from api_service.outbox import Clock, OutboxPublisher, PendingEvent
from api_service.policies import json_value
from shared.auth import Principal
from shared.events import Event
from shared.lifecycles import Lifecycle
from shared.sql import CompiledInsert

#: Roles (besides admin) that may make a move no rule of the kind names.
EDITOR_MOVE_ROLES = ("editor", "service")
#: Refusals listed per entity, newest first.
MAX_REFUSALS = 200


def expected_version(
    body_version: int | None, if_match: int | None, *, required: bool, noun: str
) -> int | None:
    if body_version is not None and if_match is not None and body_version != if_match:
        raise VersionMismatch(
            f"If-Match names version {if_match} but the body names version {body_version}."
        )
    expected = body_version if body_version is not None else if_match
    if expected is None and required:
        raise VersionRequired(
            "Send the version this change is based on, as an If-Match header (the "
            f"{noun}'s ETag) or as 'version' in the body, so a concurrent change is "
            "never overwritten."
        )
    return expected


def job_links(events: Sequence[PendingEvent]) -> list[dict[str, str]]:
    return [{"id": p.event.event_id, "href": f"/jobs/{p.event.event_id}"} for p in events]


def _no_check(tenant: str, values: dict[str, Any], changed: set[str]) -> None:
    return None


@dataclass(frozen=True)
class EntityKind:
    """What the shared machinery needs to know about one entity type."""

    #: The event ``entity_type`` (``assessment``) and the word used in messages.
    name: str
    #: Policy, Assessment or Evidence and its version model. ``type[Any]``: the code
    #: uses the fields they share (id, tenant, status, ...), which ``type[Model]`` lacks.
    model: type[Any]
    version_model: type[Any]
    #: The version model's field naming the entity (``assessment``).
    version_fk: str
    lifecycle: Lifecycle
    initial_status: str
    #: The JSON body of a row.
    body: Callable[[Any], dict[str, Any]]
    #: Fields of the event snapshot workflows match on.
    snapshot_fields: tuple[str, ...]
    #: Fields a PATCH may change.
    editable_fields: tuple[str, ...]
    #: The field the assignment endpoint sets (``assessor``).
    assignee_field: str
    #: (from, to) -> roles besides admin; other moves: editors and the service.
    move_roles: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    #: Target statuses that are decisions (separation of duties applies).
    decisions: frozenset[str] = frozenset()
    #: Who may not decide: ``[("created", row.created_by), ...]``.
    duties: Callable[[Any], list[tuple[str, str | None]]] = lambda row: []
    #: What deciding is called in messages ("complete", "decide on").
    decision_verb: str = "decide on"
    #: Target statuses only the system moves to (never a person or a workflow).
    system_only: frozenset[str] = frozenset()
    #: Status -> why its content is frozen and how to get it editable again.
    frozen: Mapping[str, str] = field(default_factory=dict)
    #: Title of the 409 of an edit of frozen content.
    frozen_title: str = "Content frozen"
    #: The status whose move records ``submitted_by`` (None: the kind keeps no submitter).
    submitted: str | None = None
    #: Checks a move the lifecycle allows against the row (raise RequirementsNotMet).
    check_move: Callable[[Any, str], None] = lambda row, to: None
    #: Checks the values a create or edit leaves (raise a DomainError): gets the tenant,
    #: every value and the names of those the write sets (links are checked only when
    #: set, so a linked row deleted since does not block an unrelated edit).
    check_values: Callable[[str, dict[str, Any], set[str]], None] = _no_check
    #: Event data beyond the snapshot fields, computed from the row when the event is
    #: built (evidence: ``policy_owners``, so a workflow need not read the policies).
    event_extra: Callable[[Any], dict[str, Any]] = lambda row: {}

    @property
    def collection(self) -> str:
        return self.lifecycle.collection

    @property
    def title(self) -> str:
        return self.name.capitalize()

    def allowed_targets(self, status: str) -> tuple[str, ...]:
        return tuple(self.lifecycle.transitions.get(status, ()))

    def roles_for(self, old: str, new: str) -> tuple[str, ...]:
        return tuple(self.move_roles.get((old, new), EDITOR_MOVE_ROLES))


@dataclass(frozen=True)
class Written:
    """A write's answer: the row, the events it published and its HTTP status."""

    row: Any
    status: int
    body: dict[str, Any]


class EntityService:
    """The entities of one kind in one database; every method is scoped to the
    caller's tenant."""

    def __init__(
        self, kind: EntityKind, db: peewee.Database, outbox: OutboxPublisher, clock: Clock
    ):
        self.kind = kind
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self._insert_row = CompiledInsert(kind.model)
        self._insert_version = CompiledInsert(kind.version_model)

    # ----------------------------------------------------------------------- reads

    def not_found(self, principal: Principal, entity_id: uuid.UUID) -> EntityNotFound:
        return EntityNotFound(
            f"No {self.kind.name} {entity_id} in tenant {principal.tenant}.",
            title=f"{self.kind.title} not found",
        )

    def get(self, principal: Principal, entity_id: uuid.UUID) -> Any:
        model = self.kind.model
        row = (
            model.select()
            .where(
                (model.id == entity_id)
                & (model.tenant == principal.tenant)
                & model.deleted_at.is_null()
            )
            .first()
        )
        if row is None:
            raise self.not_found(principal, entity_id)
        return row

    def search(
        self,
        principal: Principal,
        conditions: Sequence[Any],
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> tuple[list[Any], tuple[datetime, uuid.UUID] | None]:
        """Newest first; ``after`` is the (created_at, id) of the last row already seen."""
        model = self.kind.model
        query = model.select().where(
            (model.tenant == principal.tenant) & model.deleted_at.is_null()
        )
        for condition in conditions:
            query = query.where(condition)
        if after is not None:
            created_at, last_id = after
            query = query.where(
                (model.created_at < created_at)
                | ((model.created_at == created_at) & (model.id < last_id))
            )
        rows = list(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, (rows[-1].created_at, rows[-1].id)

    def _exists(self, principal: Principal, entity_id: uuid.UUID) -> None:
        # Deleted rows keep their history readable (the delete is a version too).
        model = self.kind.model
        query = model.select(model.id).where(
            (model.id == entity_id) & (model.tenant == principal.tenant)
        )
        if not query.exists():
            raise self.not_found(principal, entity_id)

    def versions(
        self, principal: Principal, entity_id: uuid.UUID, *, after: int | None, limit: int
    ) -> list[Any]:
        """Oldest first; ``after`` a version number."""
        self._exists(principal, entity_id)
        vm = self.kind.version_model
        query = vm.select().where(getattr(vm, self.kind.version_fk) == entity_id)
        if after is not None:
            query = query.where(vm.version > after)
        return list(query.order_by(vm.version).limit(limit))

    def refusals(self, principal: Principal, entity_id: uuid.UUID) -> list[EntityRefusal]:
        self._exists(principal, entity_id)
        return list(
            EntityRefusal.select()
            .where(
                (EntityRefusal.entity_type == self.kind.name)
                & (EntityRefusal.entity_id == entity_id)
                & (EntityRefusal.tenant == principal.tenant)
            )
            .order_by(EntityRefusal.refused_at.desc(), EntityRefusal.id.desc())
            .limit(MAX_REFUSALS)
        )

    # ---------------------------------------------------------------------- writes

    def create(
        self, principal: Principal, values: dict[str, Any], *, idempotency_key: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Create a row of ``values`` (the kind's own fields) in its initial status."""
        request = {"op": f"POST /{self.kind.collection}", "body": values}

        def work() -> tuple[int, dict[str, Any], list[PendingEvent]]:
            now = self.clock()
            row_values = {
                **values,
                "id": uuid.uuid4(),
                "tenant": principal.tenant,
                "status": self.kind.initial_status,
                "version": 1,
                "created_by": principal.sub,
                "created_at": now,
                "updated_by": principal.sub,
                "updated_at": now,
                "deleted_at": None,
            }
            self.kind.check_values(principal.tenant, row_values, set(values))
            row = self.kind.model(**row_values)
            self._insert_row.execute(self.db, row_values)
            pending = self._record(row, principal, f"{self.kind.name}.created", {}, [])
            return 201, self._body(row, [pending]), [pending]

        return self._idempotent(principal, idempotency_key, request, work)

    def update(
        self,
        principal: Principal,
        entity_id: uuid.UUID,
        changes: dict[str, Any],
        *,
        body_version: int | None,
        if_match: int | None,
        idempotency_key: str | None,
    ) -> tuple[int, dict[str, Any]]:
        expected = expected_version(body_version, if_match, required=True, noun=self.kind.name)
        request = {
            "op": f"PATCH /{self.kind.collection}/{entity_id}",
            "body": changes,
            "version": expected,
        }

        def work() -> tuple[int, dict[str, Any], list[PendingEvent]]:
            row = self.get(principal, entity_id)
            self._check_version(row, expected)
            changed = {
                name: value
                for name, value in changes.items()
                if name in self.kind.editable_fields and getattr(row, name) != value
            }
            if not changed:
                return 200, self._body(row, []), []
            why = self.kind.frozen.get(row.status)
            if why:
                raise ContentFrozen(
                    why.format(id=row.id, version=row.version, status=row.status),
                    title=self.kind.frozen_title,
                    status=row.status,
                    version=row.version,
                )
            merged = {name: getattr(row, name) for name in row._meta.fields}
            merged.update(changed)
            self.kind.check_values(principal.tenant, merged, set(changed))
            row = self._conditional_update(row, principal, changed, expected)
            extra = {"changed_fields": sorted(changed)}
            pending = self._record(row, principal, f"{self.kind.name}.updated", extra, [])
            return 200, self._body(row, [pending]), [pending]

        return self._idempotent(principal, idempotency_key, request, work)

    def delete(
        self, principal: Principal, entity_id: uuid.UUID, *, if_match: int | None
    ) -> tuple[int, dict[str, Any]]:
        expected = expected_version(None, if_match, required=False, noun=self.kind.name)

        def work() -> tuple[int, dict[str, Any], list[PendingEvent]]:
            row = self.get(principal, entity_id)
            self._check_version(row, expected)
            row = self._conditional_update(row, principal, {"deleted_at": self.clock()}, expected)
            pending = self._record(row, principal, f"{self.kind.name}.deleted", {}, [])
            body = {"id": str(row.id), "deleted": True, "jobs": job_links([pending])}
            return 200, body, [pending]

        return self._idempotent(principal, None, {}, work)

    def transition(
        self,
        principal: Principal,
        entity_id: uuid.UUID,
        to: str,
        *,
        comment: str | None,
        body_version: int | None,
        if_match: int | None,
        causation: list[str],
        idempotency_key: str | None,
        initiator: str | None = None,
        deciders: Sequence[str] = (),
    ) -> tuple[int, dict[str, Any]]:
        """Move the row to ``to``; answers (status, body). Refusals of roles and of
        separation of duties are recorded (:class:`EntityRefusal`)."""
        kind = self.kind
        expected = expected_version(body_version, if_match, required=False, noun=kind.name)
        request = {
            "op": f"POST /{kind.collection}/{entity_id}/transitions",
            "to": to,
            "comment": comment,
            "version": expected,
            **({"deciders": list(deciders)} if deciders else {}),
        }

        def work() -> tuple[int, dict[str, Any], list[PendingEvent]]:
            row = self.get(principal, entity_id)
            self._check_version(row, expected)
            old = row.status
            allowed = kind.allowed_targets(old)
            if to in kind.system_only:
                raise SystemTransition(
                    f"Only the system moves {kind.name} to '{to}' (the deadline scan, when "
                    f"its date has passed); neither people nor workflows can.",
                )
            if to not in allowed:
                raise TransitionNotAllowed(
                    f"The {kind.name} is in status '{old}' and cannot move to '{to}'; "
                    f"allowed: {', '.join(allowed) or 'none'}.",
                    status=old,
                    allowed=list(allowed),
                )
            roles = kind.roles_for(old, to)
            if not principal.has_role(*roles):
                raise TransitionForbidden(
                    f"Moving the {kind.name} from '{old}' to '{to}' needs one of the roles: "
                    f"{', '.join(sorted({*roles, 'admin'}))}."
                )
            if to in kind.decisions:
                check_separation_of_duties(
                    principal,
                    deciders,
                    [*kind.duties(row), *self._former_assignees(row)],
                    noun=kind.name,
                    target=to,
                    verb=kind.decision_verb,
                )
            kind.check_move(row, to)
            changes: dict[str, Any] = {"status": to}
            if kind.submitted and to == kind.submitted:
                submitter = initiator if is_service(principal) and initiator else None
                changes["submitted_by"] = submitter or principal.sub
            acting_for = deciders[0] if is_service(principal) and deciders else None
            row = self._conditional_update(row, principal, changes, expected, acting_for=acting_for)
            extra: dict[str, Any] = {"old_status": old}
            if comment:
                extra["comment"] = comment
            if acting_for:
                extra.update(via=principal.sub, decided_by=list(deciders))
            pending = self._record(
                row,
                principal,
                f"{kind.name}.status_changed",
                extra,
                causation,
                initiator,
                acting_for=acting_for,
            )
            return 200, self._body(row, [pending]), [pending]

        def refused(error: DomainError) -> None:
            if isinstance(error, TransitionForbidden):
                self._record_refusal(principal, entity_id, to, error, deciders)

        return self._idempotent(principal, idempotency_key, request, work, refused)

    def assign(
        self,
        principal: Principal,
        entity_id: uuid.UUID,
        assignee: str,
        *,
        comment: str | None,
        if_match: int | None,
        causation: list[str],
        idempotency_key: str | None,
        initiator: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Make ``assignee`` the row's owner (its ``assignee_field``). Ownership is not
        content, so any status but one awaiting a decision will do: there, who owns the
        row decides who may not decide it, and a change would let a former owner decide
        on their own work. Publishes ``<kind>.assigned``."""
        kind = self.kind
        expected = expected_version(None, if_match, required=False, noun=kind.name)
        request = {
            "op": f"POST /{kind.collection}/{entity_id}/assignment",
            "assignee": assignee,
            "comment": comment,
            "version": expected,
        }

        def work() -> tuple[int, dict[str, Any], list[PendingEvent]]:
            row = self.get(principal, entity_id)
            self._check_version(row, expected)
            previous = getattr(row, kind.assignee_field)
            if previous == assignee:
                return 200, self._body(row, []), []
            if kind.decisions.intersection(kind.allowed_targets(row.status)):
                raise ContentFrozen(
                    f"The {kind.name} is awaiting a decision ({row.status}); its "
                    f"{kind.assignee_field} cannot change until it is decided or withdrawn, "
                    f"since the {kind.assignee_field} may not decide it.",
                    title="Awaiting a decision",
                    status=row.status,
                    version=row.version,
                )
            row = self._conditional_update(
                row, principal, {kind.assignee_field: assignee}, expected
            )
            extra: dict[str, Any] = {"assignee": assignee, "previous_assignee": previous}
            if comment:
                extra["comment"] = comment
            pending = self._record(
                row, principal, f"{kind.name}.assigned", extra, causation, initiator
            )
            return 200, self._body(row, [pending]), [pending]

        return self._idempotent(principal, idempotency_key, request, work)

    def system_transition(
        self, tenant: str, entity_id: uuid.UUID, to: str, *, actor: str = "system"
    ) -> bool:
        """A move the system makes (the deadline scan expiring evidence): no roles, no
        caller; False when the row is not (or no longer) in a status that may move
        there. Publishes ``<kind>.status_changed`` with ``actor``."""
        principal = Principal(sub=actor, roles=frozenset(), tenant=tenant)
        with self.db.atomic():
            model = self.kind.model
            row = model.get_or_none(
                (model.id == entity_id) & (model.tenant == tenant) & model.deleted_at.is_null()
            )
            if row is None or to not in self.kind.allowed_targets(row.status):
                return False
            old = row.status
            try:
                row = self._conditional_update(row, principal, {"status": to})
            except ConcurrentChange:
                return False
            pending = self._record(
                row, principal, f"{self.kind.name}.status_changed", {"old_status": old}, []
            )
        self.outbox.publish([pending])
        return True

    def change(
        self,
        principal: Principal,
        row: Any,
        changes: dict[str, Any],
        expected: int | None,
        extra: dict[str, Any],
    ) -> tuple[Any, PendingEvent]:
        """Apply ``changes`` to ``row`` as an update (version, snapshot, outbox);
        call inside a transaction (for kinds' own writes, such as evidence files)."""
        row = self._conditional_update(row, principal, changes, expected)
        return row, self._record(row, principal, f"{self.kind.name}.updated", extra, [])

    # --------------------------------------------------------------------- helpers

    def _body(self, row: Any, events: Sequence[PendingEvent]) -> dict[str, Any]:
        return {**self.kind.body(row), "jobs": job_links(events)}

    def _idempotent(
        self,
        principal: Principal,
        key: str | None,
        request: dict[str, Any],
        work: Callable[[], tuple[int, dict[str, Any], list[PendingEvent]]],
        refused: Callable[[DomainError], None] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Run ``work`` in a transaction; with a key, store its answer there and replay
        it for a repeat (a refused write stores nothing, so its key may be sent again)."""
        request_hash = idempotency.fingerprint({**request, "caller": principal.sub})
        try:
            with self.db.atomic():
                if key:
                    stored = idempotency.replay(principal, key, request_hash)
                    if stored is not None:
                        return stored
                status, body, pending = work()
                if key:
                    idempotency.store(
                        self.db, principal, key, request_hash, status, body, self.clock()
                    )
        except (peewee.IntegrityError, DomainError) as exc:
            # A concurrent repeat may have committed first (the unique key, or its
            # write making ours stale): then answer as it did.
            if key:
                stored = idempotency.replay(principal, key, request_hash)
                if stored is not None:
                    return stored
            if refused is not None and isinstance(exc, DomainError):
                refused(exc)
            raise
        self.outbox.publish(pending)
        return status, body

    def _former_assignees(self, row: Any) -> list[tuple[str, str | None]]:
        """Whoever was the row's assignee before and is no longer: they do not decide on
        it either (a hand-over before the decision is no way around the duties)."""
        field = self.kind.assignee_field
        former = former_holders(
            self.kind.version_model, self.kind.version_fk, row.id, field, getattr(row, field)
        )
        return [(f"was the {field} of", who) for who in former]

    def _check_version(self, row: Any, expected: int | None) -> None:
        if expected is not None and row.version != expected:
            raise VersionMismatch(
                f"The {self.kind.name} is at version {row.version}, not {expected}; reload "
                "it and apply your change again.",
                current_version=row.version,
            )

    def _conditional_update(
        self,
        row: Any,
        principal: Principal,
        changes: dict[str, Any],
        expected: int | None = None,
        *,
        acting_for: str | None = None,
    ) -> Any:
        """Apply ``changes`` only if nobody changed the row since it was read."""
        model = self.kind.model
        values = {
            **changes,
            "version": row.version + 1,
            "updated_by": acting_for or principal.sub,
            "updated_at": self.clock(),
        }
        updated = (
            model.update(**values)
            .where(
                (model.id == row.id) & (model.version == row.version) & model.deleted_at.is_null()
            )
            .execute()
        )
        if updated != 1:
            if expected is not None:
                raise VersionMismatch(
                    f"The {self.kind.name} is no longer at version {expected}; reload it "
                    "and apply your change again."
                )
            raise ConcurrentChange(
                f"The {self.kind.name} changed while this request was handled; reload it and retry."
            )
        for name, value in values.items():
            setattr(row, name, value)
        return row

    def _record(
        self,
        row: Any,
        principal: Principal,
        event_type: str,
        extra: dict[str, Any],
        causation: list[str],
        initiator: str | None = None,
        *,
        acting_for: str | None = None,
    ) -> PendingEvent:
        """Write the version snapshot and the outbox row of a change to ``row``."""
        self._insert_version.execute(
            self.db,
            {
                self.kind.version_fk: row.id,
                "version": row.version,
                "change": event_type,
                "snapshot": self.kind.body(row),
                "changed_by": acting_for or principal.sub,
                "changed_at": row.updated_at,
                "via": principal.sub if acting_for else None,
            },
        )
        data = {name: json_value(getattr(row, name)) for name in self.kind.snapshot_fields}
        data.update(self.kind.event_extra(row))
        data.update(extra)
        event = Event(
            event_type=event_type,
            entity_type=self.kind.name,  # type: ignore[arg-type]
            entity_id=str(row.id),
            tenant_id=row.tenant,
            actor=acting_for or principal.sub,
            initiator=initiator,
            data=data,
            causation=causation,
        )
        return self.outbox.add(event)

    def _record_refusal(
        self,
        principal: Principal,
        entity_id: uuid.UUID,
        to: str,
        error: DomainError,
        deciders: Sequence[str],
    ) -> None:
        """Keep a refused move (its transaction rolled back), in a transaction of its own."""
        model = self.kind.model
        row = model.get_or_none((model.id == entity_id) & (model.tenant == principal.tenant))
        if row is None:
            return
        with self.db.atomic():
            EntityRefusal.create(
                tenant=principal.tenant,
                entity_type=self.kind.name,
                entity_id=entity_id,
                from_status=row.status,
                to_status=to,
                refused_by=principal.sub,
                on_behalf_of=",".join(deciders)[:2000] or None,
                reason=error.description,
                refused_at=self.clock(),
            )
