"""The transactional outbox: events are written with the change that caused them and
published to the broker after commit, by the request (fast path) or by the relay.

A row's ``claimed_until`` is a lease. The request that wrote a row holds it from the
start, so the relay never races the fast path; a relay holds the rows it claimed, so two
relays never publish the same row. Whoever holds a row publishes it with the event id as
the message id and marks it sent at once, row by row. If the holder dies between the
enqueue and the mark (a hard crash, not a restart) the row is republished with the same
message id after its lease ends; the workflow service's dispatch is keyed on the event
id, so that rare repeat is absorbed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee
from dramatiq.broker import Broker
from peewee import SQL

from api_service.inserts import CompiledInsert, CompiledStatement
from api_service.models import IdempotencyRecord, Outbox
from api_service.transactions import write_transaction
from shared.db import is_postgres
from shared.events import Event, InvalidEvent, event_message, parse_event

log = logging.getLogger(__name__)

#: The lease of a row no relay may publish (its event is invalid); an operator fixes
#: or deletes it.
PARKED_UNTIL = datetime(9999, 1, 1)

Clock = Callable[[], datetime]
_INSERT_OUTBOX = CompiledInsert(Outbox)
_MARK_SENT = CompiledStatement(
    lambda: Outbox.update(sent_at="<sent_at>", attempts=Outbox.attempts + SQL("1")).where(
        (Outbox.id == "<id>") & Outbox.sent_at.is_null()
    ),
    stand_ins=["<sent_at>", "<id>"],
)


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row written in the current transaction, to publish after commit."""

    row_id: int
    event: Event


class OutboxPublisher:
    """Adds events to the outbox inside a transaction and publishes them after commit."""

    def __init__(
        self,
        db: peewee.Database,
        broker: Broker,
        clock: Clock,
        *,
        claim_seconds: float = 30.0,
        pause_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.broker = broker
        self.clock = clock
        self.claim = timedelta(seconds=claim_seconds)
        self.pause_seconds = pause_seconds
        self.monotonic = monotonic
        self._paused_until = 0.0

    def add(self, event: Event) -> PendingEvent:
        """Write ``event`` to the outbox; call inside the transaction of the change."""
        now = self.clock()
        row_id = _INSERT_OUTBOX.execute(
            self.db,
            {
                "event_id": event.event_id,
                "tenant": event.tenant_id,
                "queue_name": event.queue_name,
                "payload": event.to_payload(),
                "created_at": now,
                "claimed_until": now + self.claim,
            },
        )
        return PendingEvent(row_id, event)

    def publish(self, pending: Iterable[PendingEvent]) -> None:
        """Publish rows written by a committed transaction; never raises.

        On failure the rest are released to the relay, and for ``pause_seconds`` later
        requests leave their rows to the relay too instead of each waiting on a dead
        broker.
        """
        pending = list(pending)
        if not pending:
            return
        if self.monotonic() < self._paused_until:
            self._release([p.row_id for p in pending])
            return
        for index, item in enumerate(pending):
            try:
                self.broker.enqueue(event_message(item.event))
            except Exception as exc:  # noqa: BLE001 - the write succeeded; the relay retries
                log.warning(
                    "could not publish event %s (%s: %s); the relay will deliver it",
                    item.event.event_id,
                    type(exc).__name__,
                    exc,
                )
                self._paused_until = self.monotonic() + self.pause_seconds
                self._release([p.row_id for p in pending[index:]], error=str(exc))
                return
            self._mark_sent(item.row_id)

    def _mark_sent(self, row_id: int) -> None:
        try:
            with write_transaction(self.db):
                if is_postgres(self.db):
                    # Bookkeeping, not the client's data: no need to wait for the WAL
                    # flush. A mark lost in a database crash means one republish with
                    # the same message id, which the dispatcher absorbs.
                    self.db.execute_sql("SET LOCAL synchronous_commit TO OFF")
                _MARK_SENT.execute(self.db, Outbox.sent_at.db_value(self.clock()), row_id)
        except peewee.DatabaseError:
            # Published but not marked: the relay republishes it (same message id)
            # once the lease ends. Logged so an operator can see why.
            log.exception("published outbox row %s but could not mark it sent", row_id)

    def _release(self, row_ids: list[int], error: str | None = None) -> None:
        try:
            with write_transaction(self.db):
                Outbox.update(
                    claimed_until=None, attempts=Outbox.attempts + 1, last_error=error
                ).where(Outbox.id.in_(row_ids) & Outbox.sent_at.is_null()).execute(self.db)
        except peewee.DatabaseError:
            log.exception("could not release outbox rows %s; the relay takes them later", row_ids)


class OutboxRelay:
    """Republishes unsent outbox rows, oldest first, and prunes old sent rows."""

    def __init__(
        self,
        db: peewee.Database,
        broker: Broker,
        clock: Clock,
        *,
        batch_size: int = 100,
        claim_seconds: float = 30.0,
        retention_seconds: float = 7 * 24 * 3600,
        idempotency_retention_seconds: float = 24 * 3600,
    ):
        self.db = db
        self.broker = broker
        self.clock = clock
        self.batch_size = batch_size
        self.claim = timedelta(seconds=claim_seconds)
        self.retention = timedelta(seconds=retention_seconds)
        self.idempotency_retention = timedelta(seconds=idempotency_retention_seconds)
        self.relay_id = str(uuid.uuid4())

    def claim_batch(self) -> list[Outbox]:
        """Claim up to ``batch_size`` unsent rows whose lease ended, oldest first."""
        now = self.clock()
        token = str(uuid.uuid4())
        free = (
            Outbox.select(Outbox.id)
            .where(
                Outbox.sent_at.is_null()
                & (Outbox.claimed_until.is_null() | (Outbox.claimed_until < now))
            )
            .order_by(Outbox.id)
            .limit(self.batch_size)
        )
        if is_postgres(self.db):
            # Concurrent relays skip each other's rows instead of waiting on them.
            free = free.for_update(skip_locked=True)
        with write_transaction(self.db):
            Outbox.update(claimed_until=now + self.claim, claimed_by=token).where(
                Outbox.id.in_(free)
            ).execute()
        return list(Outbox.select().where(Outbox.claimed_by == token).order_by(Outbox.id))

    def publish_batch(self, stop: threading.Event | None = None) -> int:
        """Publish one claimed batch; returns how many rows were delivered."""
        rows = self.claim_batch()
        delivered = 0
        for index, row in enumerate(rows):
            if stop is not None and stop.is_set():
                self._release(rows[index:])
                break
            try:
                event = parse_event(row.payload)
            except InvalidEvent as exc:
                # No retry can fix it, and the relay claims oldest first: left in line
                # it would block every event behind it. Park it, visible in the backlog.
                log.error("relay parked invalid outbox row %s: %s", row.event_id, exc)
                self._park(row, f"InvalidEvent: {exc}")
                continue
            try:
                self.broker.enqueue(event_message(event))
            except Exception as exc:  # noqa: BLE001 - keep the row; retry next round
                log.warning(
                    "relay could not publish %s: %s: %s", row.event_id, type(exc).__name__, exc
                )
                self._release(rows[index:], error=f"{type(exc).__name__}: {exc}")
                break
            with write_transaction(self.db):
                Outbox.update(sent_at=self.clock(), attempts=Outbox.attempts + 1).where(
                    (Outbox.id == row.id) & Outbox.sent_at.is_null()
                ).execute()
            delivered += 1
        if delivered:
            log.info("relay delivered %d event(s)", delivered)
        return delivered

    def _release(self, rows: list[Outbox], error: str | None = None) -> None:
        ids = [r.id for r in rows]
        values: dict[str, Any] = {"claimed_until": None, "claimed_by": None}
        if error is not None:
            values.update(attempts=Outbox.attempts + 1, last_error=error)
        with write_transaction(self.db):
            Outbox.update(**values).where(Outbox.id.in_(ids) & Outbox.sent_at.is_null()).execute()

    def _park(self, row: Outbox, error: str) -> None:
        """Take a row out of the relay's line for good (it stays unsent, with the error)."""
        with write_transaction(self.db):
            Outbox.update(
                claimed_until=PARKED_UNTIL, claimed_by=None, last_error=error[:1000]
            ).where((Outbox.id == row.id) & Outbox.sent_at.is_null()).execute()

    def prune(self) -> int:
        """Delete sent rows past the retention, and expired idempotency records."""
        now = self.clock()
        with write_transaction(self.db):
            removed = (
                Outbox.delete()
                .where(Outbox.sent_at.is_null(False) & (Outbox.sent_at < now - self.retention))
                .execute()
            )
            IdempotencyRecord.delete().where(
                IdempotencyRecord.created_at < now - self.idempotency_retention
            ).execute()
        if removed:
            log.info("pruned %d sent outbox row(s)", removed)
        return removed

    def backlog(self) -> int:
        return Outbox.select().where(Outbox.sent_at.is_null()).count()
