"""Trigger events are never lost and never duplicated: the outbox and its relay."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from datetime import timedelta

import pytest

from api_service.migrations import MIGRATIONS
from api_service.models import Outbox, database
from api_service.outbox import OutboxPublisher, OutboxRelay
from shared.db import migrate, open_database, utcnow
from shared.events import Event
from tests.api.helpers import (
    ApiClient,
    FakeClock,
    RedisServer,
    policy_messages,
    queue_counts,
    unique_tenant,
)
from tests.support import ServiceProcess, free_port, poll, python_module

WRITES = 200


@pytest.fixture
def own_db(make_database_url):
    """A database of this test's own, so outbox counts are exactly its rows."""
    url = make_database_url("outbox")
    db = open_database(url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    database.initialize(db)
    db.connect()
    yield url, db
    db.close()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_writes_succeed_without_redis_and_the_relay_delivers_each_event_once(
    own_db, redis_server, api_settings, make_app, namespace, common_env, tmp_path
):
    url, db = own_db
    settings = dataclasses.replace(api_settings, database_url=url, redis_url=redis_server.url)
    app, _ = make_app(settings)
    api = ApiClient(app, unique_tenant())

    # Given Redis is down
    redis_server.stop()
    # When 200 policies are written, every write succeeds
    for i in range(WRITES):
        resp = api.client.simulate_post(
            "/policies", json={"title": f"p{i}", "policy_type": "t"}, headers=api.headers()
        )
        assert resp.status_code == 201, resp.text
        assert len(resp.json["jobs"]) == 1
    assert Outbox.select().where(Outbox.sent_at.is_null()).count() == WRITES
    ready = api.client.simulate_get("/readyz")
    assert ready.status_code == 503 and "redis" in ready.json["description"]
    metrics = api.client.simulate_get("/metrics", headers=api.headers("operator")).text
    assert f"api_outbox_backlog {float(WRITES)}" in metrics

    # Then relays deliver them once Redis is back; one is restarted half-way and a
    # second one runs beside it the whole time. The rows come free over 4 s (as if
    # their writers still held them), so the restart falls in the middle of the work.
    free_from = utcnow() + timedelta(seconds=2)
    for index, row_id in enumerate(r.id for r in Outbox.select(Outbox.id).order_by(Outbox.id)):
        free_at = free_from + timedelta(milliseconds=20 * index)
        Outbox.update(claimed_until=free_at).where(Outbox.id == row_id).execute()
    env = {
        **common_env,
        "REDIS_URL": redis_server.url,
        "API_DATABASE_URL": url,
        "RELAY_INTERVAL_SECONDS": "0.05",
        "RELAY_BATCH_SIZE": "5",
    }

    def relay(name):
        return ServiceProcess(name, python_module("api_service", "relay"), env, tmp_path).start()

    first, second = relay("relay-1"), relay("relay-2")
    restarted = None
    try:
        first.wait_log("relay started")
        second.wait_log("relay started")
        assert Outbox.select().where(Outbox.sent_at.is_null()).count() == WRITES
        redis_server.start()
        client = redis_server.client()
        poll(
            lambda: client.hlen(f"{namespace}:governance.policy.msgs") > 0,
            timeout=30,
            message="first deliveries",
        )
        assert first.stop() == 0, first.log()
        delivered_at_restart = client.hlen(f"{namespace}:governance.policy.msgs")
        restarted = relay("relay-1-restarted")
        poll(
            lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0,
            timeout=60,
            message="the outbox to drain",
        )
        restarted.wait_log("relay started")
    finally:
        for proc in (first, second, restarted):
            if proc is not None:
                proc.stop()

    messages = policy_messages(client, namespace)
    event_ids = {row.event_id for row in Outbox.select(Outbox.event_id)}
    assert len(event_ids) == WRITES
    assert queue_counts(client, namespace) == (WRITES, WRITES), "a message was duplicated"
    assert {m["message_id"] for m in messages} == event_ids
    assert all(m["message_id"] == m["args"][0]["event_id"] for m in messages)
    assert 0 < delivered_at_restart < WRITES, "the restart was not in the middle of the work"
    client.close()


def _write_unpublished(db, broker, clock, n: int) -> list[str]:
    """n outbox rows as a request leaves them when its own publish never happened."""
    publisher = OutboxPublisher(db, broker, clock, claim_seconds=30)
    ids = []
    with db.atomic():
        for _ in range(n):
            event = Event(
                event_type="policy.created",
                entity_type="policy",
                entity_id=str(uuid.uuid4()),
                tenant_id="acme",
            )
            ids.append(publisher.add(event).event.event_id)
    return ids


def test_the_relay_leaves_rows_alone_while_their_writer_holds_them(own_db, broker):
    _, db = own_db
    clock = FakeClock()
    _write_unpublished(db, broker, clock, 3)
    relay = OutboxRelay(db, broker, clock, claim_seconds=30)

    assert relay.publish_batch() == 0  # the writing request still holds the rows
    clock.advance(seconds=31)
    assert relay.publish_batch() == 3


def test_an_invalid_row_is_parked_instead_of_blocking_the_rows_behind_it(
    own_db, broker, redis_client, namespace
):
    # Given an unpublishable row (say, written by a newer schema) ahead of a valid one
    _, db = own_db
    clock = FakeClock()
    bad, good = _write_unpublished(db, broker, clock, 2)
    Outbox.update(payload={"schema_version": 2}).where(Outbox.event_id == bad).execute()
    clock.advance(seconds=31)
    relay = OutboxRelay(db, broker, clock, claim_seconds=30)

    # When the relay runs, the valid event is delivered and the bad row set aside
    assert relay.publish_batch() == 1
    assert [m["message_id"] for m in policy_messages(redis_client, namespace)] == [good]
    parked = Outbox.get(Outbox.event_id == bad)
    assert parked.sent_at is None and "InvalidEvent" in parked.last_error

    # Then it is never claimed again, and stays in the backlog for an operator
    clock.advance(days=30)
    assert relay.publish_batch() == 0
    assert relay.backlog() == 1


def test_a_relay_that_dies_holding_rows_loses_nothing_and_repeats_nothing(
    own_db, broker, redis_client, namespace
):
    _, db = own_db
    clock = FakeClock()
    ids = _write_unpublished(db, broker, clock, 45)
    clock.advance(seconds=31)
    first = OutboxRelay(db, broker, clock, batch_size=10, claim_seconds=30)
    second = OutboxRelay(db, broker, clock, batch_size=10, claim_seconds=30)

    # Given a relay that delivered two batches, then claimed a third and died
    assert first.publish_batch() == 10
    assert first.publish_batch() == 10
    held = first.claim_batch()
    assert len(held) == 10
    # When another relay works, it skips the dead relay's rows until the lease ends
    while second.publish_batch():
        pass
    assert Outbox.select().where(Outbox.sent_at.is_null()).count() == 10
    clock.advance(seconds=31)
    while second.publish_batch():
        pass

    # Then every event was published exactly once, in order of writing
    assert Outbox.select().where(Outbox.sent_at.is_null()).count() == 0
    assert queue_counts(redis_client, namespace) == (45, 45)
    queued = [i.decode() for i in redis_client.lrange(f"{namespace}:governance.policy", 0, -1)]
    raw = redis_client.hgetall(f"{namespace}:governance.policy.msgs")
    order = [json.loads(raw[i.encode()])["message_id"] for i in queued]
    assert sorted(order) == sorted(ids)
    assert order[:20] == ids[:20]


class _SlowBroker:
    """Publishes through ``broker`` and lets ``seconds`` pass on ``clock`` each time."""

    def __init__(self, broker, clock, seconds):
        self.broker, self.clock, self.seconds = broker, clock, seconds

    def enqueue(self, message):
        self.clock.advance(seconds=self.seconds)
        return self.broker.enqueue(message)


def test_a_slow_relay_hands_rows_back_before_its_lease_can_end(
    own_db, broker, redis_client, namespace
):
    _, db = own_db
    clock = FakeClock()
    _write_unpublished(db, broker, clock, 5)
    clock.advance(seconds=31)
    slow = OutboxRelay(db, _SlowBroker(broker, clock, 10), clock, claim_seconds=30)

    # Each publish takes 10 s of a 30 s lease: after two, half of it is gone
    assert slow.publish_batch() == 2
    assert Outbox.select().where(Outbox.claimed_until.is_null()).count() == 3

    # The rows it handed back are free at once, for any relay
    assert OutboxRelay(db, broker, clock, claim_seconds=30).publish_batch() == 3
    assert queue_counts(redis_client, namespace) == (5, 5)


def test_concurrent_relays_claim_disjoint_rows(own_db, broker, make_database_url):
    url, db = own_db
    clock = FakeClock()
    _write_unpublished(db, broker, clock, 60)
    clock.advance(seconds=31)
    claimed: list[list[int]] = []
    barrier = threading.Barrier(3)

    def claim():
        # Each thread has its own connection (peewee connections are per thread).
        relay = OutboxRelay(db, broker, clock, batch_size=15, claim_seconds=30)
        barrier.wait()
        rows = relay.claim_batch()
        claimed.append([r.id for r in rows])
        db.close()

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    all_ids = [i for batch in claimed for i in batch]
    assert len(claimed) == 3 and all(claimed)
    assert len(all_ids) == len(set(all_ids)), "two relays claimed the same row"


def test_a_stop_request_releases_the_rest_of_the_batch(own_db, broker):
    _, db = own_db
    clock = FakeClock()
    _write_unpublished(db, broker, clock, 5)
    clock.advance(seconds=31)
    stop = threading.Event()
    stop.set()

    assert OutboxRelay(db, broker, clock).publish_batch(stop) == 0
    assert Outbox.select().where(Outbox.claimed_until.is_null()).count() == 5


def test_the_relay_prunes_sent_rows_after_the_retention(own_db, broker):
    _, db = own_db
    clock = FakeClock()
    _write_unpublished(db, broker, clock, 4)
    clock.advance(seconds=31)
    relay = OutboxRelay(db, broker, clock, batch_size=2, retention_seconds=3600)
    relay.publish_batch()  # two sent now, two left unsent

    clock.advance(minutes=59)
    assert relay.prune() == 0
    clock.advance(minutes=2)
    assert relay.prune() == 2
    # Unsent rows are never pruned, however old.
    assert Outbox.select().count() == 2
    assert Outbox.select().where(Outbox.sent_at.is_null()).count() == 2


def test_a_dead_broker_does_not_hold_requests(own_db, api_settings, make_app, redis_client):
    url, _ = own_db
    # Nothing listens on this port: the publish fails at once and the relay takes over.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app, _ = make_app(dataclasses.replace(api_settings, database_url=url, redis_url=dead))
    api = ApiClient(app, unique_tenant())

    policy = api.create()
    assert api.patch(policy["id"], {"title": "x"}, version=1).status_code == 200
    # Released to the relay straight away, not held for the claim period (30 s): the
    # publisher wakes the request first and then releases its rows, so poll briefly.

    def released():
        rows = list(Outbox.select().order_by(Outbox.id))
        return rows if [r.claimed_until for r in rows] == [None, None] else None

    rows = poll(released, timeout=5, message="outbox rows released to the relay")
    assert [r.sent_at for r in rows] == [None, None]
    assert rows[0].last_error


def test_concurrent_writes_are_published_at_once_and_marked_sent_soon_after(
    own_db, api_settings, make_app, redis_client, namespace
):
    url, _ = own_db
    app, _ = make_app(dataclasses.replace(api_settings, database_url=url))
    api = ApiClient(app, unique_tenant())

    def write(i: int) -> str:
        resp = api.client.simulate_post(
            "/policies", json={"title": f"p{i}", "policy_type": "t"}, headers=api.headers()
        )
        assert resp.status_code == 201, resp.text
        job_id = resp.json["jobs"][0]["id"]
        # Its message and its job record are in Redis when the response is sent.
        assert job_id in {m["message_id"] for m in policy_messages(redis_client, namespace)}
        assert redis_client.exists(f"{namespace}:job:{job_id}")
        return job_id

    threads_out: list[str] = []
    workers = [
        threading.Thread(
            target=lambda i=i: threads_out.extend(write(i * 10 + j) for j in range(10))
        )
        for i in range(8)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()

    assert len(threads_out) == 80
    assert queue_counts(redis_client, namespace) == (80, 80)
    poll(
        lambda: Outbox.select().where(Outbox.sent_at.is_null()).count() == 0,
        timeout=5,
        message="every row marked sent by the publisher, not left to the relay",
    )
