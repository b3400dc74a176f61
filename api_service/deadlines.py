"""Deadline events: a policy's review date coming up, and passing.

The api owns ``next_review_date``, so the relay process looks for them (every
``DEADLINE_SCAN_INTERVAL_SECONDS``): a policy whose review date is at most
``DEADLINE_APPROACHING_DAYS`` away gets one ``policy.deadline_approaching`` event, and
one ``policy.deadline_passed`` once the date is behind it. Each is written to the
outbox (the relay publishes it like any other event) in the transaction that records
its notice, whose key is (policy, kind, date): so each comes once per review date,
however many relays scan and however long sent outbox rows are kept. A new review date
starts over. Deleted and archived policies are not reviewed, so they get none.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import peewee

from api_service.models import DeadlineNotice, Policy
from api_service.outbox import Clock, insert_outbox_row
from api_service.policies import SNAPSHOT_FIELDS, json_value
from shared.events import Event

log = logging.getLogger(__name__)

APPROACHING = "deadline_approaching"
PASSED = "deadline_passed"
#: Names the deadline events' ids: the same notice always gets the same event id.
EVENT_NAMESPACE = uuid.UUID("4f7b2c1e-9d3a-4e8b-a6f0-2c5d8e1b7a93")


class DeadlineScanner:
    """Writes the deadline events that are due, in batches of ``batch_size``."""

    def __init__(
        self,
        db: peewee.Database,
        clock: Clock,
        *,
        approaching_days: int = 14,
        batch_size: int = 200,
    ):
        self.db = db
        self.clock = clock
        self.approaching = timedelta(days=approaching_days)
        self.batch_size = batch_size

    def scan(self) -> int:
        """Write the events due now; returns how many."""
        today = self.clock().date()
        written = 0
        for kind, due in (
            (PASSED, Policy.next_review_date < today),
            (APPROACHING, Policy.next_review_date.between(today, today + self.approaching)),
        ):
            for policy in self._due(kind, due):
                written += self._notify(policy, kind, today)
        if written:
            log.info("wrote %d deadline event(s)", written)
        return written

    def _due(self, kind: str, due) -> list[Policy]:
        noticed = DeadlineNotice.select(DeadlineNotice.policy).where(
            (DeadlineNotice.policy == Policy.id)
            & (DeadlineNotice.kind == kind)
            & (DeadlineNotice.deadline == Policy.next_review_date)
        )
        return list(
            Policy.select()
            .where(
                due
                & Policy.deleted_at.is_null()
                & (Policy.status != "archived")
                & ~peewee.fn.EXISTS(noticed)
            )
            .order_by(Policy.next_review_date, Policy.id)
            .limit(self.batch_size)
        )

    def _notify(self, policy: Policy, kind: str, today: date) -> int:
        deadline = policy.next_review_date
        now = self.clock()
        event = deadline_event(policy, kind, today, now)
        with self.db.atomic():
            recorded = (
                DeadlineNotice.insert(
                    policy=policy.id, kind=kind, deadline=deadline, event_id=event.event_id
                )
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
            if not recorded:
                return 0  # another relay noticed it first
            insert_outbox_row(self.db, event, now, claimed_until=None)
        return 1


def deadline_event(policy: Policy, kind: str, today: date, now: datetime) -> Event:
    deadline = policy.next_review_date
    data = {name: json_value(getattr(policy, name)) for name in SNAPSHOT_FIELDS}
    data.update(deadline=deadline.isoformat(), days_left=(deadline - today).days)
    return Event(
        event_id=str(uuid.uuid5(EVENT_NAMESPACE, f"{policy.id}:{kind}:{deadline.isoformat()}")),
        event_type=f"policy.{kind}",
        entity_type="policy",
        entity_id=str(policy.id),
        tenant_id=policy.tenant,
        occurred_at=now.replace(tzinfo=UTC),
        data=data,
    )
