"""Deadline events: dates the api owns coming up, and passing.

The relay process looks for them every ``DEADLINE_SCAN_INTERVAL_SECONDS``:

- a policy's ``next_review_date``: ``policy.deadline_approaching`` when it is at most
  ``DEADLINE_APPROACHING_DAYS`` away, ``policy.deadline_passed`` once it is behind
  (not for deleted or archived policies);
- an assessment's ``due_date``: ``assessment.due_approaching`` (same window) and
  ``assessment.overdue`` (not for completed, cancelled or deleted assessments);
- an accepted evidence's ``valid_until``: ``evidence.expiring`` at each threshold of
  ``EVIDENCE_EXPIRING_DAYS`` (the smallest threshold the days left fall within, so
  evidence found with 5 days left gets the 7-day notice, not the 30-day one as well),
  and once the date is behind it the scan moves the evidence to ``expired`` (a real
  transition: version bump and snapshot, by ``system``) and sends ``evidence.expired``.

An event's data is its entity's event data, as its other events carry it (the snapshot
fields of the entity kind, and for evidence and assessments ``policy_owners``), with the
deadline, the days left and the threshold.

Each event is written to the outbox (the relay publishes it like any other event) in
the transaction that records its notice, keyed on (entity type, entity, kind, date):
so each comes once per date, however many relays scan and however long sent outbox
rows are kept; a new date starts over. An expiry's transition is in that transaction
too, and is a conditional UPDATE on the version read, so two relays never both expire
the same evidence. Event ids derive from the notice's key, so the same notice always
has the same event id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import peewee

from api_service.assessments import ASSESSMENT_KIND
from api_service.entities import EntityKind
from api_service.evidence import EVIDENCE_KIND
from api_service.models import (
    Assessment,
    DeadlineNotice,
    Evidence,
    EvidenceVersion,
    Policy,
)
from api_service.outbox import Clock, insert_outbox_row
from api_service.policies import SNAPSHOT_FIELDS, json_value
from shared.events import EntityType, Event

log = logging.getLogger(__name__)

APPROACHING = "deadline_approaching"
PASSED = "deadline_passed"
#: Names the deadline events' ids: the same notice always gets the same event id.
EVENT_NAMESPACE = uuid.UUID("4f7b2c1e-9d3a-4e8b-a6f0-2c5d8e1b7a93")
#: Who expires evidence (its version's ``changed_by``, the event's actor).
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Rule:
    """One kind of deadline event: which rows are due for it on a day."""

    entity_type: EntityType
    #: The notice kind, also the event's verb unless ``verb`` says otherwise.
    kind: str
    model: type[Any]  # Policy, Assessment or Evidence: their id, which type[Model] lacks
    #: The row's date field the deadline is.
    deadline: peewee.Field
    #: Rows due on ``today`` (for this kind), given today.
    due: Callable[[date], Any]
    #: Rows watched at all (status, not deleted).
    watched: Any
    snapshot_fields: tuple[str, ...]
    #: Event data beyond the snapshot fields (the entity kind's own).
    event_extra: Callable[[Any], dict[str, Any]] = lambda row: {}
    verb: str | None = None
    #: ``evidence.expiring``'s threshold in days (in the event data).
    threshold: int | None = None
    #: Moves the row to ``expired`` with the event.
    expires: bool = False

    @property
    def event_type(self) -> str:
        return f"{self.entity_type}.{self.verb or self.kind}"


def _of(kind: EntityKind) -> tuple[tuple[str, ...], Callable[[Any], dict[str, Any]]]:
    """A rule's event data: the entity kind's own, as its other events carry it."""
    return kind.snapshot_fields, kind.event_extra


def _rules(approaching: timedelta, expiring_days: Sequence[int]) -> list[Rule]:
    def within(field: peewee.Field, days: timedelta) -> Callable[[date], Any]:
        return lambda today: field.between(today, today + days)

    def before_today(field: peewee.Field) -> Callable[[date], Any]:
        return lambda today: field < today

    review, due_date, valid_until = (
        Policy.next_review_date,
        Assessment.due_date,
        Evidence.valid_until,
    )
    policies = Policy.deleted_at.is_null() & (Policy.status != "archived")
    assessments = Assessment.deleted_at.is_null() & Assessment.status.not_in(
        ("completed", "cancelled")
    )
    accepted = Evidence.deleted_at.is_null() & (Evidence.status == "accepted")
    rules = [
        Rule("policy", PASSED, Policy, review, before_today(review), policies, SNAPSHOT_FIELDS),
        Rule(
            "policy",
            APPROACHING,
            Policy,
            review,
            within(review, approaching),
            policies,
            SNAPSHOT_FIELDS,
        ),
        Rule(
            "assessment",
            "overdue",
            Assessment,
            due_date,
            before_today(due_date),
            assessments,
            *_of(ASSESSMENT_KIND),
        ),
        Rule(
            "assessment",
            "due_approaching",
            Assessment,
            due_date,
            within(due_date, approaching),
            assessments,
            *_of(ASSESSMENT_KIND),
        ),
        Rule(
            "evidence",
            "expired",
            Evidence,
            valid_until,
            before_today(valid_until),
            accepted,
            *_of(EVIDENCE_KIND),
            expires=True,
        ),
    ]
    # Thresholds partition the days left: 30 covers 8..30, 7 covers 0..7 (with "30,7").
    thresholds = sorted(set(expiring_days))
    for index, days in enumerate(thresholds):
        floor = thresholds[index - 1] + 1 if index else 0

        def window(today: date, floor: int = floor, days: int = days) -> Any:
            return valid_until.between(today + timedelta(days=floor), today + timedelta(days=days))

        rules.append(
            Rule(
                "evidence",
                f"expiring_{days}",
                Evidence,
                valid_until,
                window,
                accepted,
                *_of(EVIDENCE_KIND),
                verb="expiring",
                threshold=days,
            )
        )
    return rules


class DeadlineScanner:
    """Writes the deadline events that are due, in batches of ``batch_size`` per kind."""

    def __init__(
        self,
        db: peewee.Database,
        clock: Clock,
        *,
        approaching_days: int = 14,
        expiring_days: Sequence[int] = (30, 7),
        batch_size: int = 200,
        actor: str = SYSTEM_ACTOR,
    ):
        self.db = db
        self.clock = clock
        self.rules = _rules(timedelta(days=approaching_days), expiring_days)
        self.batch_size = batch_size
        self.actor = actor

    def scan(self) -> int:
        """Write the events due now; returns how many."""
        today = self.clock().date()
        written = 0
        for rule in self.rules:
            for row in self._due(rule, today):
                written += self._notify(rule, row, today)
        if written:
            log.info("wrote %d deadline event(s)", written)
        return written

    def _due(self, rule: Rule, today: date) -> list[Any]:
        model = rule.model
        noticed = DeadlineNotice.select(DeadlineNotice.entity_id).where(
            (DeadlineNotice.entity_type == rule.entity_type)
            & (DeadlineNotice.entity_id == model.id)
            & (DeadlineNotice.kind == rule.kind)
            & (DeadlineNotice.deadline == rule.deadline)
        )
        return list(
            model.select()
            .where(rule.due(today) & rule.watched & ~peewee.fn.EXISTS(noticed))
            .order_by(rule.deadline, model.id)
            .limit(self.batch_size)
        )

    def _notify(self, rule: Rule, row: Any, today: date) -> int:
        now = self.clock()
        deadline = getattr(row, rule.deadline.name)
        with self.db.atomic():
            if rule.expires and not self._expire(row, now):
                return 0  # changed since it was read (or another relay expired it)
            event = deadline_event(rule, row, today, now, actor=self.actor)
            recorded = (
                DeadlineNotice.insert(
                    entity_type=rule.entity_type,
                    entity_id=row.id,
                    kind=rule.kind,
                    deadline=deadline,
                    event_id=event.event_id,
                )
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
            if not recorded:
                if rule.expires:
                    # Cannot happen while expired is final; never expire without notice.
                    raise peewee.IntegrityError(f"evidence {row.id} was already expired")
                return 0  # another relay noticed it first
            insert_outbox_row(self.db, event, now, claimed_until=None)
        return 1

    def _expire(self, evidence: Any, now: datetime) -> bool:
        """Move accepted evidence to expired, if it is still as read; record its version."""
        values = {
            "status": "expired",
            "version": evidence.version + 1,
            "updated_by": self.actor,
            "updated_at": now,
        }
        updated = (
            Evidence.update(**values)
            .where(
                (Evidence.id == evidence.id)
                & (Evidence.version == evidence.version)
                & (Evidence.status == "accepted")
                & Evidence.deleted_at.is_null()
            )
            .execute()
        )
        if updated != 1:
            return False
        for name, value in values.items():
            setattr(evidence, name, value)
        EvidenceVersion.create(
            evidence=evidence.id,
            version=evidence.version,
            change="evidence.expired",
            snapshot=EVIDENCE_KIND.body(evidence),
            changed_by=self.actor,
            changed_at=now,
        )
        return True


def event_id(rule: Rule, row: Any, deadline: date) -> str:
    """The event id of a notice. Policies' ids are those of earlier releases."""
    key = f"{row.id}:{rule.kind}:{deadline.isoformat()}"
    if rule.entity_type != "policy":
        key = f"{rule.entity_type}:{key}"
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


def deadline_event(
    rule: Rule, row: Any, today: date, now: datetime, *, actor: str | None = None
) -> Event:
    deadline = getattr(row, rule.deadline.name)
    data = {name: json_value(getattr(row, name)) for name in rule.snapshot_fields}
    data.update(rule.event_extra(row))
    data.update(deadline=deadline.isoformat(), days_left=(deadline - today).days)
    if rule.threshold is not None:
        data["threshold"] = rule.threshold
    if rule.expires:
        data["old_status"] = "accepted"
    return Event(
        event_id=event_id(rule, row, deadline),
        event_type=rule.event_type,
        entity_type=rule.entity_type,
        entity_id=str(row.id),
        tenant_id=row.tenant,
        occurred_at=now.replace(tzinfo=UTC),
        # Only a change has an actor: the notices of a date coming up or passing have
        # none, as before; the expiry is the system's move.
        actor=actor if rule.expires else None,
        data=data,
    )
