"""The group commit: many threads' writes in one transaction, each failing alone."""

from __future__ import annotations

import threading
import time
import uuid

import peewee

from api_service.models import Outbox
from api_service.transactions import GroupCommit
from shared.db import is_database_unavailable, open_database, pooled_url
from shared.sql import CompiledInsert
from tests.api.test_outbox import own_db  # noqa: F401 - a fixture
from tests.conftest import database_outage
from tests.support import poll

INSERT = CompiledInsert(Outbox)


def _row(db, event_id: str):
    params = INSERT.params(
        {"event_id": event_id, "tenant": "acme", "queue_name": "q", "payload": {}}
    )
    return [INSERT.statement(db, params)]


def test_concurrent_writes_are_all_committed(own_db):  # noqa: F811
    _, db = own_db
    group = GroupCommit(db)
    ids = [str(uuid.uuid4()) for _ in range(200)]

    def write(chunk: list[str]) -> None:
        for event_id in chunk:
            group.run(_row(db, event_id))

    threads = [threading.Thread(target=write, args=(ids[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(row.event_id for row in Outbox.select()) == sorted(ids)


def test_a_failing_write_fails_alone_and_the_rest_of_its_group_commits(own_db):  # noqa: F811
    _, db = own_db
    group = GroupCommit(db)
    taken = str(uuid.uuid4())
    group.run(_row(db, taken))
    # Hold the committing thread (a slow write) so the next writes queue up as one group.
    slow = ("SELECT 1", [])
    original = group._commit

    sizes: list[int] = []

    def held_commit(batch):
        sizes.append(len(batch))
        if batch[0].statements == [slow]:
            time.sleep(0.3)
        return original(batch)

    group._commit = held_commit
    blocker = threading.Thread(target=group.run, args=([slow],))
    blocker.start()
    time.sleep(0.05)
    outcomes: dict[str, object] = {}

    def write(event_id: str) -> None:
        try:
            group.run(_row(db, event_id))
            outcomes[event_id] = "committed"
        except peewee.IntegrityError as exc:
            outcomes[event_id] = exc

    fresh = [str(uuid.uuid4()) for _ in range(5)]
    writers = [threading.Thread(target=write, args=(e,)) for e in [*fresh[:2], taken, *fresh[2:]]]
    for t in writers:
        t.start()
    for t in [blocker, *writers]:
        t.join()

    assert max(sizes) == 6  # the writes queued behind the slow one formed one group
    assert isinstance(outcomes[taken], peewee.IntegrityError)  # a duplicate event id
    assert {e: outcomes[e] for e in fresh} == dict.fromkeys(fresh, "committed")
    assert Outbox.select().count() == 1 + len(fresh)


def test_writes_commit_again_once_a_database_outage_ends(own_db):  # noqa: F811
    url, _ = own_db
    db = open_database(pooled_url(url, 8))
    group = GroupCommit(db)
    stop = threading.Event()
    failures: list[BaseException] = []
    committed: list[float] = []

    def write() -> None:
        while not stop.is_set():
            try:
                group.run(_row(db, str(uuid.uuid4())))
                committed.append(time.monotonic())
            except (peewee.DatabaseError, peewee.InterfaceError) as exc:
                failures.append(exc)  # and write again at once, as callers under load do

    # Given writers keeping the group commit busy
    writers = [threading.Thread(target=write) for _ in range(16)]
    for t in writers:
        t.start()
    try:
        poll(lambda: len(committed) > 20, timeout=10, message="writes committing")
        # When the database goes away for a moment (PostgreSQL drops the connections)
        with database_outage(url):
            time.sleep(0.3)
        ended = time.monotonic()
        # Then writes commit again, on a new connection
        poll(
            lambda: sum(t > ended for t in committed) > 20,
            timeout=10,
            message="writes committing after the outage",
        )
    finally:
        stop.set()
        for t in writers:
            t.join()
        db.close_all()
    assert all(is_database_unavailable(exc) for exc in failures), failures[:3]
