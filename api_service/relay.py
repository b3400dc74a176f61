"""The outbox relay process: ``python -m api_service relay``.

Publishes what requests could not (Redis down, a worker killed after commit), prunes
old sent rows, and writes the deadline events of policy review dates, assessment due
dates and evidence validity coming up or passed, expiring evidence whose validity ended
(:mod:`api_service.deadlines`). Several relays may run; they claim disjoint rows. SIGTERM stops
it after the row in hand, so a restart republishes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

import peewee

from api_service.deadlines import DeadlineScanner
from api_service.migrations import MIGRATIONS
from api_service.models import database
from api_service.outbox import OutboxRelay
from api_service.settings import ApiSettings
from shared.broker import create_broker
from shared.db import check_current, is_database_unavailable, open_database, utcnow
from shared.logs import quiet_expected_errors

log = logging.getLogger("api_service.relay")

#: How often sent rows past the retention are pruned.
PRUNE_EVERY_SECONDS = 60.0

#: A periodic task of the relay: (every how many seconds, what to call).
Chore = tuple[float, Callable[[], object]]


def run(
    relay: OutboxRelay, stop: threading.Event, *, interval: float, chores: Sequence[Chore] = ()
) -> None:
    """Loop until ``stop`` is set: publish a batch, run each chore when it is due, sleep
    when idle."""
    db = relay.db
    next_run = [0.0] * len(chores)
    while not stop.is_set():
        delivered, full = 0, False
        try:
            with db.connection_context():
                delivered = relay.publish_batch(stop)
                full = delivered >= relay.batch_size
                for index, (every, chore) in enumerate(chores):
                    if time.monotonic() >= next_run[index]:
                        chore()
                        next_run[index] = time.monotonic() + every
        except peewee.DatabaseError:
            log.exception("relay round failed; retrying in %.1fs", interval)
        if not full:
            stop.wait(interval)


def main(settings: ApiSettings) -> int:
    # An unreachable database is retried next round: one line, the traceback at DEBUG.
    quiet_expected_errors(is_database_unavailable, log.name)
    db = open_database(settings.database_url)
    database.initialize(db)
    with db.connection_context():
        check_current(db, MIGRATIONS)
    broker = create_broker(dataclasses.replace(settings, redis_url=settings.publish_redis_url))
    relay = OutboxRelay(
        db,
        broker,
        utcnow,
        batch_size=settings.relay_batch_size,
        claim_seconds=settings.outbox_claim_seconds,
        retention_seconds=settings.outbox_retention_seconds,
        idempotency_retention_seconds=settings.idempotency_retention_seconds,
    )
    stop = threading.Event()

    def request_stop(signum, frame):
        log.info("relay stopping (signal %s)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info(
        "relay started (id %s, interval %.2fs)", relay.relay_id, settings.relay_interval_seconds
    )
    deadlines = DeadlineScanner(
        db,
        utcnow,
        approaching_days=settings.deadline_approaching_days,
        expiring_days=settings.evidence_expiring_days,
    )
    chores = [
        (PRUNE_EVERY_SECONDS, relay.prune),
        (settings.deadline_scan_interval_seconds, deadlines.scan),
    ]
    run(relay, stop, interval=settings.relay_interval_seconds, chores=chores)
    log.info("relay stopped")
    return 0
