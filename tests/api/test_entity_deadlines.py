"""Deadline events of assessments and evidence (and the notice table they share with
policies): one per entity, kind and date, however many relays scan; accepted evidence
whose validity ended is moved to expired by the scan, once."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta

import peewee
import pytest

from api_service.deadlines import EVENT_NAMESPACE, DeadlineScanner
from api_service.migrations import MIGRATIONS
from api_service.models import (
    Assessment,
    DeadlineNotice,
    Evidence,
    EvidenceVersion,
    Outbox,
    Policy,
    database,
)
from api_service.outbox import OutboxRelay
from api_service.settings import ApiSettings
from shared.db import migrate, open_database
from shared.settings import ConfigError
from tests.api.helpers import FakeClock, published

TODAY = date(2030, 1, 1)  # FakeClock's day


@pytest.fixture
def db(make_database_url):
    db = open_database(make_database_url("entity_deadlines"))
    with db.connection_context():
        migrate(db, MIGRATIONS)
    database.initialize(db)
    db.connect()
    yield db
    db.close()


def day(days: int | None) -> date | None:
    return None if days is None else TODAY + timedelta(days=days)


def assessment(days: int | None, **fields) -> Assessment:
    values = {
        "id": uuid.uuid4(),
        "tenant": "acme",
        "title": f"assessment due in {days} days",
        "assessor": "ada",
        "status": "in_progress",
        "created_by": "olivia",
        "updated_by": "olivia",
        "due_date": day(days),
        **fields,
    }
    return Assessment.create(**values)


def evidence(days: int | None, **fields) -> Evidence:
    values = {
        "id": uuid.uuid4(),
        "tenant": "acme",
        "title": f"evidence valid for {days} days",
        "kind": "document",
        "collector": "carl",
        "status": "accepted",
        "version": 3,
        "created_by": "carl",
        "updated_by": "carl",
        "valid_until": day(days),
        **fields,
    }
    return Evidence.create(**values)


def policy(days: int, **fields) -> Policy:
    values = {
        "id": uuid.uuid4(),
        "tenant": "acme",
        "title": f"policy reviewed in {days} days",
        "policy_type": "security",
        "owner": "olivia",
        "created_by": "olivia",
        "updated_by": "olivia",
        "next_review_date": day(days),
        **fields,
    }
    return Policy.create(**values)


def events() -> list[dict]:
    return [row.payload for row in Outbox.select().order_by(Outbox.id)]


def kinds(entity) -> list[str]:
    return [e["event_type"] for e in events() if e["entity_id"] == str(entity.id)]


def test_assessments_get_one_due_approaching_and_one_overdue_per_due_date(db):
    clock = FakeClock()
    scanner = DeadlineScanner(db, clock, approaching_days=14)
    soon, later, late = assessment(10), assessment(20), assessment(-2)
    assessment(None)
    ended = [
        assessment(-1, status="completed"),
        assessment(3, status="cancelled"),
        assessment(-1, deleted_at=datetime(2029, 12, 1)),
    ]

    # The first scan finds the due date coming up and the one passed
    assert scanner.scan() == 2
    assert kinds(soon) == ["assessment.due_approaching"]
    assert kinds(late) == ["assessment.overdue"]
    assert all(kinds(a) == [] for a in ended)
    approaching = next(e for e in events() if e["entity_id"] == str(soon.id))
    assert approaching["entity_type"] == "assessment" and approaching["tenant_id"] == "acme"
    assert approaching["data"]["deadline"] == "2030-01-11"
    assert approaching["data"]["days_left"] == 10
    assert approaching["data"]["assessor"] == "ada"
    assert approaching["data"]["status"] == "in_progress"
    assert scanner.scan() == 0

    # Eleven days on, the first is overdue and the later one coming up
    clock.advance(days=11)
    assert scanner.scan() == 2
    assert kinds(soon) == ["assessment.due_approaching", "assessment.overdue"]
    assert kinds(later) == ["assessment.due_approaching"]
    overdue = [e for e in events() if e["event_type"] == "assessment.overdue"][-1]
    assert overdue["data"]["days_left"] == -1

    # A new due date starts over; completing it stops the events
    Assessment.update(due_date=day(25)).where(Assessment.id == soon.id).execute()
    assert scanner.scan() == 1
    assert kinds(soon)[-1] == "assessment.due_approaching"
    Assessment.update(status="completed").where(Assessment.id == later.id).execute()
    clock.advance(days=30)
    assert scanner.scan() == 1  # soon's new date passed; later is completed
    assert kinds(later) == ["assessment.due_approaching"]


def test_accepted_evidence_is_reminded_at_each_threshold_then_expired(db, redis_client):
    clock = FakeClock()
    scanner = DeadlineScanner(db, clock, expiring_days=(30, 7))
    item = evidence(20)
    found_late = evidence(5)
    others = [
        evidence(3, status=status) for status in ("draft", "submitted", "rejected", "expired")
    ]
    evidence(-1, deleted_at=datetime(2029, 12, 1))
    evidence(None)

    # 20 days left: the 30-day notice; 5 days left: only the 7-day one
    assert scanner.scan() == 2
    [first] = [e for e in events() if e["entity_id"] == str(item.id)]
    assert first["event_type"] == "evidence.expiring"
    assert first["data"]["threshold"] == 30 and first["data"]["days_left"] == 20
    assert first["data"]["valid_until"] == "2030-01-21" and first["data"]["collector"] == "carl"
    [late] = [e for e in events() if e["entity_id"] == str(found_late.id)]
    assert (late["data"]["threshold"], late["data"]["days_left"]) == (7, 5)
    assert all(kinds(e) == [] for e in others)
    assert scanner.scan() == 0

    # 7 days left: the 7-day notice, once (and the other one expired meanwhile)
    clock.advance(days=13)
    assert scanner.scan() == 2
    assert kinds(found_late) == ["evidence.expiring", "evidence.expired"]
    second = [e for e in events() if e["entity_id"] == str(item.id)][-1]
    assert second["entity_id"] == str(item.id)
    assert (second["data"]["threshold"], second["data"]["days_left"]) == (7, 7)
    assert second["event_id"] != first["event_id"]
    assert scanner.scan() == 0

    # The last valid day passes nothing; the day after, the evidence expires
    clock.advance(days=7)
    assert scanner.scan() == 0
    clock.advance(days=1)
    assert scanner.scan() == 1
    expired = Evidence.get_by_id(item.id)
    assert expired.status == "expired" and expired.version == 4
    assert expired.updated_by == "system"
    [version] = EvidenceVersion.select().where(EvidenceVersion.evidence == item.id)
    assert (version.version, version.change, version.changed_by) == (
        4,
        "evidence.expired",
        "system",
    )
    assert version.snapshot["status"] == "expired" and "file_path" not in version.snapshot
    event = [e for e in events() if e["entity_id"] == str(item.id)][-1]
    assert event["event_type"] == "evidence.expired" and event["actor"] == "system"
    assert event["data"]["status"] == "expired" and event["data"]["old_status"] == "accepted"
    assert event["data"]["version"] == 4 and event["data"]["days_left"] == -1
    assert kinds(item) == ["evidence.expiring", "evidence.expiring", "evidence.expired"]
    # and never again
    clock.advance(days=30)
    assert scanner.scan() == 0
    assert Evidence.get_by_id(item.id).version == 4


def test_thresholds_come_from_the_setting():
    assert ApiSettings.from_env({}, check=False).evidence_expiring_days == (30, 7)
    env = {"EVIDENCE_EXPIRING_DAYS": " 7, 60,14,7 "}
    assert ApiSettings.from_env(env, check=False).evidence_expiring_days == (60, 14, 7)
    for bad in (" , ", "soon", "30,-1", "7;30", "99999"):
        with pytest.raises(ConfigError, match="EVIDENCE_EXPIRING_DAYS"):
            ApiSettings.from_env({"EVIDENCE_EXPIRING_DAYS": bad}, check=False)


def test_policy_deadline_events_keep_their_ids(db):
    clock = FakeClock()
    due = policy(-3)
    DeadlineScanner(db, clock).scan()
    [event] = events()
    assert event["event_id"] == str(
        uuid.uuid5(EVENT_NAMESPACE, f"{due.id}:deadline_passed:2029-12-29")
    )
    [notice] = DeadlineNotice.select()
    assert (notice.entity_type, notice.entity_id, notice.kind) == (
        "policy",
        due.id,
        "deadline_passed",
    )


def test_relays_scanning_at_once_write_each_event_once(db):
    # Given policies, assessments and accepted evidence with dates all around today
    clock = FakeClock()
    items = []
    for days in range(-6, 9, 2):
        items += [policy(days), assessment(days), evidence(days)]
    expiring = [e for e in items if isinstance(e, Evidence)]
    barrier = threading.Barrier(4)
    written: list[int] = []
    errors: list[BaseException] = []

    def scan():
        # Each thread has its own connection (peewee connections are per thread).
        scanner = DeadlineScanner(db, clock, approaching_days=14, batch_size=3)
        barrier.wait()
        total = 0
        try:
            while count := scanner.scan():
                total += count
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        written.append(total)
        db.close()

    # When four relays scan at once
    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each entity got its one event, and each evidence past its date expired once
    assert errors == []
    assert sum(written) == len(items) == len(events())
    assert len({e["event_id"] for e in events()}) == len(items)
    past = [e for e in expiring if e.valid_until < TODAY]
    for item in past:
        row = Evidence.get_by_id(item.id)
        assert (row.status, row.version) == ("expired", 4)
        assert EvidenceVersion.select().where(EvidenceVersion.evidence == item.id).count() == 1
    assert [e["event_type"] for e in events()].count("evidence.expired") == len(past)


class OldNotice(peewee.Model):
    """``deadline_notice`` as migration 2 made it."""

    policy = peewee.UUIDField()
    kind = peewee.CharField()
    deadline = peewee.DateField()
    event_id = peewee.CharField()
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "deadline_notice"
        primary_key = peewee.CompositeKey("policy", "kind", "deadline")


def test_migration_7_keeps_the_policy_notices(make_database_url):
    # Given a database at version 6 whose policy already had its deadline event
    db = open_database(make_database_url("notices"))
    database.initialize(db)
    with db.connection_context():
        migrate(db, [m for m in MIGRATIONS if m.version <= 6])
        due = policy(-1)
        with db.bind_ctx([OldNotice]):
            OldNotice.create(
                policy=due.id,
                kind="deadline_passed",
                deadline=date(2029, 12, 31),
                event_id="e-1",
                created_at=datetime(2029, 12, 31),
            )
        # When it is migrated
        migrate(db, MIGRATIONS)
        # Then the notice is a policy notice of the new table, and the event stays sent
        [notice] = DeadlineNotice.select()
        assert (notice.entity_type, notice.entity_id, notice.kind, notice.event_id) == (
            "policy",
            due.id,
            "deadline_passed",
            "e-1",
        )
        assert DeadlineScanner(db, FakeClock()).scan() == 0
        assert "deadline_notice" not in db.get_tables()
    db.close()


def test_the_relay_publishes_evidence_events_on_their_queue(db, broker, redis_client, namespace):
    clock = FakeClock()
    item = evidence(-1)
    assert DeadlineScanner(db, clock).scan() == 1
    assert OutboxRelay(db, broker, clock).publish_batch() == 1
    [message] = published(redis_client, namespace, "governance.evidence")
    event = message["args"][0]
    assert event["event_type"] == "evidence.expired" and event["entity_id"] == str(item.id)
    assert message["actor_name"] == "dispatch_event_evidence"
    assert message["message_id"] == event["event_id"]


def test_deadline_events_name_the_owners_of_the_live_linked_policies(db):
    # Given: evidence and an assessment linked to olivia's and pete's policies, a deleted
    # one of zed's, and (by a stale id) one of another tenant
    linked = [
        policy(90, owner="pete"),
        policy(90, owner="olivia"),
        policy(90, owner="olivia"),
        policy(90, owner="zed", deleted_at=datetime(2029, 12, 1)),
        policy(90, owner="yves", tenant="other"),
    ]
    ids = [str(p.id) for p in linked]
    clock = FakeClock()
    scanner = DeadlineScanner(db, clock, approaching_days=14, expiring_days=(7,))
    item = evidence(5, policies=ids)
    late = assessment(-1, policies=ids)
    unlinked = evidence(5)
    # When: the scan finds them expiring and the assessment overdue, then expired
    assert scanner.scan() == 3
    clock.advance(days=6)
    assert scanner.scan() == 2
    # Then: each event names the distinct owners of those policies of the tenant still live
    owners = {
        (e["entity_id"], e["event_type"]): e["data"]["policy_owners"]
        for e in events()
        if e["entity_type"] != "policy"
    }
    assert owners == {
        (str(item.id), "evidence.expiring"): ["olivia", "pete"],
        (str(late.id), "assessment.overdue"): ["olivia", "pete"],
        (str(unlinked.id), "evidence.expiring"): [],
        (str(item.id), "evidence.expired"): ["olivia", "pete"],
        (str(unlinked.id), "evidence.expired"): [],
    }
