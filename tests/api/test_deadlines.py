"""Deadline events: one per policy, kind and review date, however many relays scan."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta

import pytest

from api_service.deadlines import DeadlineScanner
from api_service.migrations import MIGRATIONS
from api_service.models import Outbox, Policy, database
from api_service.outbox import OutboxRelay
from shared.db import migrate, open_database
from tests.api.helpers import FakeClock, policy_messages

TODAY = date(2030, 1, 1)  # FakeClock's day


@pytest.fixture
def db(make_database_url):
    db = open_database(make_database_url("deadlines"))
    with db.connection_context():
        migrate(db, MIGRATIONS)
    database.initialize(db)
    db.connect()
    yield db
    db.close()


def policy(days: int | None, **fields) -> Policy:
    values = {
        "id": uuid.uuid4(),
        "tenant": "acme",
        "title": f"due in {days} days",
        "policy_type": "security",
        "owner": "olivia",
        "created_by": "olivia",
        "updated_by": "olivia",
        "next_review_date": None if days is None else TODAY + timedelta(days=days),
        **fields,
    }
    return Policy.create(**values)


def events() -> list[dict]:
    return [row.payload for row in Outbox.select().order_by(Outbox.id)]


def by_title() -> dict[str, str]:
    return {e["data"]["title"]: e["event_type"] for e in events()}


def test_each_review_date_gets_one_approaching_and_one_passed_event(db):
    clock = FakeClock()
    scanner = DeadlineScanner(db, clock, approaching_days=14)
    soon, later, overdue = policy(10), policy(20), policy(-1)
    policy(None)
    policy(1, title="deleted", deleted_at=datetime(2029, 12, 1))
    policy(-5, title="archived", status="archived")

    # The first scan finds the date coming up and the date passed
    assert scanner.scan() == 2
    assert by_title() == {
        soon.title: "policy.deadline_approaching",
        overdue.title: "policy.deadline_passed",
    }
    approaching = next(e for e in events() if e["entity_id"] == str(soon.id))
    assert approaching["data"]["deadline"] == "2030-01-11"
    assert approaching["data"]["days_left"] == 10
    assert approaching["data"]["owner"] == "olivia" and approaching["tenant_id"] == "acme"
    # and scanning again writes nothing more
    assert scanner.scan() == 0

    # Eleven days on, the first date has passed, and the later one is coming up
    clock.advance(days=11)
    assert scanner.scan() == 2
    assert [e["event_type"] for e in events()[2:]] == [
        "policy.deadline_passed",
        "policy.deadline_approaching",
    ]
    assert {e["entity_id"] for e in events()[2:]} == {str(soon.id), str(later.id)}

    # A new review date starts over
    Policy.update(next_review_date=TODAY + timedelta(days=20)).where(Policy.id == soon.id).execute()
    assert scanner.scan() == 1
    assert events()[-1]["event_type"] == "policy.deadline_approaching"
    assert scanner.scan() == 0


def test_relays_scanning_at_once_write_each_event_once(db):
    clock = FakeClock()
    for days in range(-10, 10):
        policy(days)
    barrier = threading.Barrier(3)
    written: list[int] = []

    def scan():
        # Each thread has its own connection (peewee connections are per thread).
        scanner = DeadlineScanner(db, clock, approaching_days=14, batch_size=7)
        barrier.wait()
        total = 0
        while count := scanner.scan():
            total += count
        written.append(total)
        db.close()

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(written) == 20
    assert len(events()) == 20 and len({e["event_id"] for e in events()}) == 20


def test_the_relay_publishes_deadline_events(db, broker, redis_client, namespace):
    clock = FakeClock()
    overdue = policy(-3)
    DeadlineScanner(db, clock).scan()

    # The row is free at once: no request holds it
    assert OutboxRelay(db, broker, clock).publish_batch() == 1
    [message] = policy_messages(redis_client, namespace)
    event = message["args"][0]
    assert event["event_type"] == "policy.deadline_passed"
    assert event["entity_id"] == str(overdue.id) and event["data"]["days_left"] == -3
    assert message["message_id"] == event["event_id"]
