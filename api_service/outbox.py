"""The transactional outbox: events are written with the change that caused them and
published to the broker after commit, by the request (fast path) or by the relay.

A row's ``claimed_until`` is a lease. The request that wrote a row holds it from the
start, so the relay never races the fast path; a relay holds the rows it claimed, so two
relays never publish the same row. Whoever holds a row publishes it with the event id as
the message id and then marks it sent (the request path within 50 ms, many rows per
statement). Two rare cases publish a row twice, both with the same message id: its
holder dies between the enqueue and the mark (a hard crash, not a restart), or a
request's publish times out after Redis took it (the row goes back to the relay). The
workflow service's dispatch is keyed on the event id, so such a repeat starts nothing.
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

from api_service.models import IdempotencyRecord, Outbox
from shared.broker import WakingRedisBroker
from shared.db import is_postgres
from shared.events import Event, InvalidEvent, event_message, parse_event
from shared.sql import CompiledInsert, Statement
from shared.threads import ProcessThread

log = logging.getLogger(__name__)

#: The lease of a row no relay may publish (its event is invalid); an operator fixes
#: or deletes it.
PARKED_UNTIL = datetime(9999, 1, 1)

Clock = Callable[[], datetime]
_INSERT_OUTBOX = CompiledInsert(Outbox)


def outbox_params(event: Event, now: datetime, *, claimed_until: datetime | None) -> list[Any]:
    """The INSERT parameters of ``event``'s outbox row (``claimed_until`` None: the
    relay may publish it at once)."""
    return _INSERT_OUTBOX.params(
        {
            "event_id": event.event_id,
            "tenant": event.tenant_id,
            "queue_name": event.queue_name,
            "payload": event.to_payload(),
            "created_at": now,
            "claimed_until": claimed_until,
        }
    )


def insert_outbox_row(
    db: peewee.Database, event: Event, now: datetime, *, claimed_until: datetime | None
) -> None:
    """Insert ``event``'s outbox row; call inside the transaction that caused it."""
    _INSERT_OUTBOX.run(db, outbox_params(event, now, claimed_until=claimed_until))


@dataclass(frozen=True)
class OutboxRow:
    """An event and its outbox row's database values, not yet inserted."""

    event: Event
    params: list[Any]


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row written in the current transaction, to publish after commit.

    Rows are found by their event id (unique), so a row can be written without asking
    the database for its key.
    """

    event: Event

    @property
    def event_id(self) -> str:
        return self.event.event_id


class OutboxPublisher:
    """Adds events to the outbox inside a transaction and publishes them after commit.

    Publishing is shared by the request threads of a process: one sender thread takes
    every event waiting at that moment and sends them to Redis in one round trip, then
    marks their rows sent in one statement. A request waits for its events to reach
    Redis (so the job ids it returns can be read at once), not for the marking. Under
    load the batches grow by themselves, so a busy process makes fewer round trips
    and database writes per request rather than more.
    """

    MAX_BATCH = 200
    MARK_EVERY_SECONDS = 0.05

    def __init__(
        self,
        db: peewee.Database,
        broker: WakingRedisBroker,  # its enqueue_many publishes a batch in one round trip
        clock: Clock,
        *,
        claim_seconds: float = 30.0,
        pause_seconds: float = 2.0,
        wait_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.broker = broker
        self.clock = clock
        self.claim = timedelta(seconds=claim_seconds)
        self.pause_seconds = pause_seconds
        self.wait_seconds = wait_seconds
        self.monotonic = monotonic
        self._paused_until = 0.0
        self._waiting: list[tuple[PendingEvent, threading.Event]] = []
        self._unmarked: list[str] = []  # event ids in Redis, not yet marked sent
        self._cond = threading.Condition()
        self._sender = ProcessThread(self._send_forever, "outbox-publisher", self.mark_published)
        self._closing = False

    def add(self, event: Event) -> PendingEvent:
        """Write ``event`` to the outbox; call inside the transaction of the change."""
        return self.insert(self.row(event))

    def row(self, event: Event) -> OutboxRow:
        """The outbox row of ``event``, built ahead of the transaction that inserts it."""
        now = self.clock()
        return OutboxRow(event, outbox_params(event, now, claimed_until=now + self.claim))

    def insert(self, row: OutboxRow) -> PendingEvent:
        """Insert a row of :meth:`row`; call inside the transaction of the change."""
        _INSERT_OUTBOX.run(self.db, row.params)
        return PendingEvent(row.event)

    def insert_statement(self, row: OutboxRow) -> Statement:
        """The INSERT of a row of :meth:`row`, for a :class:`GroupCommit`."""
        return _INSERT_OUTBOX.statement(self.db, row.params)

    def publish(self, pending: Iterable[PendingEvent]) -> None:
        """Publish rows written by a committed transaction; never raises.

        Returns once they are in Redis, or were left to the relay: when Redis fails,
        and for ``pause_seconds`` after, so that requests do not each wait on a dead
        broker; or after ``wait_seconds`` of a Redis that does not answer.
        """
        pending = list(pending)
        if not pending:
            return
        if self.monotonic() < self._paused_until or self._closing:
            self._release([p.event_id for p in pending])
            return
        done = threading.Event()
        with self._cond:
            self._sender.ensure()
            self._waiting.extend((item, done) for item in pending)
            self._cond.notify()
        done.wait(self.wait_seconds)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sender once it has sent what waits, and mark what it sent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._sender.join(timeout)
        self.mark_published()

    def _send_forever(self) -> None:
        last_mark = self.monotonic()
        while True:
            with self._cond:
                # Rows in Redis are marked sent once no event came for a moment, or
                # every MARK_EVERY_SECONDS under load: one statement marks many batches.
                self._cond.wait_for(
                    lambda: self._waiting or self._closing,
                    self.MARK_EVERY_SECONDS if self._unmarked else None,
                )
                if self._closing and not self._waiting:
                    return
                batch = self._waiting[: self.MAX_BATCH]
                del self._waiting[: self.MAX_BATCH]
            try:
                if batch:
                    self._unmarked += self._send(batch)
                if not batch or self.monotonic() - last_mark >= self.MARK_EVERY_SECONDS:
                    last_mark = self.monotonic()
                    self.mark_published()
            except Exception:  # noqa: BLE001 - the sender must outlive any one failure
                log.exception("outbox publisher failed; the relay delivers what it left")

    def mark_published(self) -> None:
        """Mark the rows already in Redis sent (also at exit, so none is sent twice)."""
        rows, self._unmarked = self._unmarked, []
        if rows:
            with self.db.connection_context():
                self._mark_sent(rows)

    def _send(self, batch: list[tuple[PendingEvent, threading.Event]]) -> list[str]:
        """Publish a batch and wake its requests; returns the event ids now in Redis."""
        event_ids = [item.event_id for item, _ in batch]
        error = None  # paused: left to the relay without trying
        try:
            if self.monotonic() >= self._paused_until:
                self.broker.enqueue_many(event_message(item.event) for item, _ in batch)
                return event_ids
        except Exception as exc:  # noqa: BLE001 - the writes succeeded; the relay retries
            log.warning(
                "could not publish %d event(s) (%s: %s); the relay will deliver them",
                len(batch),
                type(exc).__name__,
                exc,
            )
            self._paused_until = self.monotonic() + self.pause_seconds
            error = f"{type(exc).__name__}: {exc}"
        finally:
            for _, done in batch:
                done.set()
        with self.db.connection_context():
            self._release(event_ids, error=error)
        return []

    def _mark_sent(self, event_ids: list[str]) -> None:
        try:
            with self.db.atomic():
                if is_postgres(self.db):
                    # Bookkeeping, not the client's data: no need to wait for the WAL
                    # flush. A mark lost in a database crash means one republish with
                    # the same message id, which the dispatcher absorbs.
                    self.db.execute_sql("SET LOCAL synchronous_commit TO OFF")
                Outbox.update(sent_at=self.clock(), attempts=Outbox.attempts + 1).where(
                    Outbox.event_id.in_(event_ids) & Outbox.sent_at.is_null()
                ).execute(self.db)
        except peewee.DatabaseError:
            # Published but not marked: the relay republishes them (same message ids)
            # once the lease ends. Logged so an operator can see why.
            log.exception("published events %s but could not mark them sent", event_ids)

    def _release(self, event_ids: list[str], error: str | None = None) -> None:
        try:
            with self.db.atomic():
                Outbox.update(
                    claimed_until=None, attempts=Outbox.attempts + 1, last_error=error
                ).where(Outbox.event_id.in_(event_ids) & Outbox.sent_at.is_null()).execute(self.db)
        except peewee.DatabaseError:
            log.exception("could not release events %s; the relay takes them later", event_ids)


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
        with self.db.atomic():
            Outbox.update(claimed_until=now + self.claim, claimed_by=token).where(
                Outbox.id.in_(free)
            ).execute()
        return list(Outbox.select().where(Outbox.claimed_by == token).order_by(Outbox.id))

    def publish_batch(self, stop: threading.Event | None = None) -> int:
        """Publish one claimed batch; returns how many rows were delivered."""
        rows = self.claim_batch()
        # Publish only while the lease surely holds: past half of it, another relay may
        # soon take the rest, so they are handed back instead (a slow Redis, say).
        hand_back_at = self.clock() + self.claim / 2
        delivered = 0
        for index, row in enumerate(rows):
            if (stop is not None and stop.is_set()) or self.clock() >= hand_back_at:
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
            with self.db.atomic():
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
        with self.db.atomic():
            Outbox.update(**values).where(
                Outbox.id.in_(ids)
                & Outbox.sent_at.is_null()
                & (Outbox.claimed_by == rows[0].claimed_by)  # only rows still ours
            ).execute()

    def _park(self, row: Outbox, error: str) -> None:
        """Take a row out of the relay's line for good (it stays unsent, with the error)."""
        with self.db.atomic():
            Outbox.update(
                claimed_until=PARKED_UNTIL, claimed_by=None, last_error=error[:1000]
            ).where((Outbox.id == row.id) & Outbox.sent_at.is_null()).execute()

    def prune(self) -> int:
        """Delete sent rows past the retention, and expired idempotency records."""
        now = self.clock()
        with self.db.atomic():
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
