"""The group commit: many threads' writes in one transaction, each failing alone."""

from __future__ import annotations

import threading
import time
import uuid

import peewee

from api_service.models import Outbox
from api_service.transactions import GroupCommit
from tests.api.test_outbox import own_db  # noqa: F401 - a fixture


def _insert(event_id: str):
    def work() -> int:
        return Outbox.insert(
            event_id=event_id, tenant="acme", queue_name="governance.policy", payload={}
        ).execute()

    return work


def test_concurrent_writes_are_all_committed_and_each_caller_gets_its_result(own_db):  # noqa: F811
    _, db = own_db
    group = GroupCommit(db)
    ids = [str(uuid.uuid4()) for _ in range(200)]
    results: dict[str, int] = {}

    def write(chunk: list[str]) -> None:
        for event_id in chunk:
            results[event_id] = group.run(_insert(event_id))

    threads = [threading.Thread(target=write, args=(ids[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    rows = {row.event_id: row.id for row in Outbox.select()}
    assert rows == results  # every write committed, and its caller got its own row id


def test_a_failing_write_fails_alone_and_the_rest_of_its_group_commits(own_db):  # noqa: F811
    _, db = own_db
    group = GroupCommit(db)
    taken = str(uuid.uuid4())
    group.run(_insert(taken))
    # Hold the committing thread so the next writes queue up and form one group.
    gate = threading.Event()
    blocker = threading.Thread(target=group.run, args=(gate.wait,))
    blocker.start()
    outcomes: dict[str, object] = {}

    def write(event_id: str) -> None:
        try:
            outcomes[event_id] = group.run(_insert(event_id))
        except peewee.IntegrityError as exc:
            outcomes[event_id] = exc

    fresh = [str(uuid.uuid4()) for _ in range(5)]
    writers = [threading.Thread(target=write, args=(e,)) for e in [*fresh[:2], taken, *fresh[2:]]]
    for t in writers:
        t.start()
    time.sleep(0.2)  # all five are queued behind the blocker
    gate.set()
    for t in [blocker, *writers]:
        t.join()

    assert isinstance(outcomes[taken], peewee.IntegrityError)  # a duplicate event id
    assert {e: isinstance(outcomes[e], int) for e in fresh} == dict.fromkeys(fresh, True)
    assert Outbox.select().count() == 1 + len(fresh)
