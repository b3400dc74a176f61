"""The broker factory against real Redis: wake-ups, catalog retries, dead letters."""

import threading
import time

import dramatiq
import peewee
import pytest
from dramatiq import Worker

from shared.broker import actor_options, create_broker
from shared.db import is_database_unavailable, open_database
from shared.settings import CommonSettings
from tests.conftest import database_outage
from tests.support import poll


@pytest.fixture
def broker(redis_url, namespace):
    broker = create_broker(
        CommonSettings(redis_url=redis_url, namespace=namespace, retry_delay_scale=0.2)
    )
    yield broker
    broker.close()


@pytest.fixture
def start_worker(broker):
    workers = []

    def start(threads: int = 2) -> Worker:
        worker = Worker(broker, worker_threads=threads, worker_timeout=1000)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def test_every_catalog_queue_is_declared(broker):
    assert {"governance.policy", "governance.import"} <= broker.get_declared_queues()


def test_actor_options_come_from_the_catalog():
    assert actor_options("governance.notification") == {
        "queue_name": "governance.notification",
        "max_retries": 9,
        "time_limit": 600_000,
    }


def test_an_idle_worker_is_woken_by_an_enqueue(broker, start_worker):
    # Given a worker that has been idle longer than its poll backoff would allow
    seen: dict[str, float] = {}
    done = threading.Event()

    def ping(key):
        seen[key] = time.monotonic()
        done.set()

    dramatiq.actor(ping, broker=broker, actor_name="ping", queue_name="governance.policy")
    start_worker()
    time.sleep(1.2)

    # When a message is sent, it is picked up long before the 1 s worker timeout
    sent = time.monotonic()
    broker.get_actor("ping").send("a")
    assert done.wait(5)
    assert seen["a"] - sent < 0.5


def test_fixed_backoff_waits_the_catalog_delay(broker, start_worker):
    # governance.notification: fixed 1 s, scaled by 0.2 -> 200 ms between attempts
    attempts: list[float] = []

    def flaky():
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise ConnectionError("receiver down")

    dramatiq.actor(flaky, broker=broker, **actor_options("governance.notification"))
    start_worker()
    broker.get_actor("flaky").send()
    poll(lambda: len(attempts) == 4, timeout=10, message="four attempts")
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(0.18 <= gap <= 0.3 for gap in gaps), gaps


def test_exponential_backoff_doubles_from_the_catalog_delay(broker, start_worker):
    # governance.policy: exponential from 2 s, scaled by 0.2 -> 400, 800 ms
    attempts: list[float] = []

    def flaky():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    dramatiq.actor(flaky, broker=broker, **actor_options("governance.policy"))
    start_worker()
    broker.get_actor("flaky").send()
    poll(lambda: len(attempts) == 3, timeout=10, message="three attempts")
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.38 <= first <= 0.5, first
    assert 0.78 <= second <= 0.92, second


def test_exhausted_and_non_retryable_messages_are_dead_lettered(
    broker, start_worker, redis_client, namespace
):
    runs = {"always": 0, "invalid": 0}

    def always():
        runs["always"] += 1
        raise RuntimeError("broken for good")

    def invalid():
        runs["invalid"] += 1
        raise ValueError("bad input")

    opts = actor_options("governance.reporting")  # 2 attempts, no backoff
    dramatiq.actor(always, broker=broker, **opts)
    dramatiq.actor(invalid, broker=broker, throws=(ValueError,), **opts)
    start_worker()
    broker.get_actor("always").send()
    broker.get_actor("invalid").send()

    dead = f"{namespace}:governance.reporting.XQ"
    poll(lambda: redis_client.zcard(dead) == 2, timeout=10, message="two dead letters")
    assert runs == {"always": 2, "invalid": 1}


def test_a_database_outage_does_not_use_up_a_messages_attempts(
    broker, start_worker, redis_client, namespace, make_database_url
):
    # governance.reporting: 2 attempts, no backoff; while the database is down a message
    # waits 1 s (x 0.2 here) between retries instead of failing after its 2 attempts,
    # and once it is back the message still has its 2 attempts for errors of its own
    url = make_database_url("outage")
    db = open_database(url)
    with db.connection_context():
        db.execute_sql("CREATE TABLE seen (n INTEGER)")
    runs: list[float] = []
    own_errors: list[str] = []

    def record():
        runs.append(time.monotonic())
        with db.connection_context():
            if not own_errors:
                own_errors.append("raised")
                raise RuntimeError("an error of its own, once the database is back")
            db.execute_sql("INSERT INTO seen VALUES (1)")

    def broken_query():
        with db.connection_context():
            db.execute_sql("SELECT * FROM no_such_table")

    opts = actor_options("governance.reporting")
    dramatiq.actor(record, broker=broker, **opts)
    dramatiq.actor(broken_query, broker=broker, **opts)
    start_worker()
    with database_outage(url):
        broker.get_actor("record").send()
        poll(lambda: len(runs) >= 5, timeout=20, message="retries past the 2 attempts")
    with db.connection_context():
        poll(
            lambda: db.execute_sql("SELECT count(*) FROM seen").fetchone()[0] == 1,
            timeout=10,
            message="the message done once the database is back",
        )
    assert own_errors == ["raised"]
    outage_runs = runs[:5]
    gaps = [b - a for a, b in zip(outage_runs, outage_runs[1:], strict=False)]
    assert all(0.18 <= gap <= 0.5 for gap in gaps), gaps

    # A query that cannot work is not an outage: it fails after its 2 attempts.
    broker.get_actor("broken_query").send()
    dead = f"{namespace}:governance.reporting.XQ"
    poll(lambda: redis_client.zcard(dead) == 1, timeout=10, message="one dead letter")
    time.sleep(0.5)
    assert redis_client.zcard(dead) == 1
    db.close()


def test_only_an_unreachable_database_counts_as_an_outage(make_database_url, tmp_path):
    db = open_database(make_database_url("errors"))

    def error_of(sql: str) -> BaseException:
        with pytest.raises(peewee.PeeweeException) as raised, db.connection_context():
            if isinstance(db, peewee.PostgresqlDatabase):
                db.execute_sql("SET statement_timeout = 50")
            db.execute_sql(sql)
        return raised.value

    assert not is_database_unavailable(error_of("SELECT * FROM no_such_table"))
    assert not is_database_unavailable(error_of("SELECT 1 +"))
    if isinstance(db, peewee.PostgresqlDatabase):
        assert not is_database_unavailable(error_of("SELECT pg_sleep(1)"))  # timed out
        with pytest.raises(peewee.PeeweeException) as unadaptable, db.connection_context():
            db.execute_sql("SELECT %s", (object(),))  # refused by the driver itself
        assert not is_database_unavailable(unadaptable.value)
    with pytest.raises(peewee.OperationalError) as unreachable:
        open_database(f"sqlite:///{tmp_path}").connect()  # a directory, not a file
    assert is_database_unavailable(unreachable.value)
    assert is_database_unavailable(peewee.InterfaceError("connection already closed"))


def test_undecodable_and_unknown_actor_messages_are_dead_lettered_without_stopping(
    broker, start_worker, redis_client, namespace
):
    # Given a worker on a queue that receives a body that is not a message at all,
    # and a message for an actor nobody defines
    done = threading.Event()
    dramatiq.actor(
        lambda: done.set(),
        broker=broker,
        actor_name="after",
        queue_name="governance.reporting",
    )
    queue = f"{namespace}:governance.reporting"
    redis_client.hset(f"{queue}.msgs", "garbage-id", b"{not json")
    redis_client.rpush(queue, "garbage-id")
    broker.enqueue(
        dramatiq.Message(
            queue_name="governance.reporting",
            actor_name="nobody_defines_me",
            args=(),
            kwargs={},
            options={},
        )
    )
    start_worker()

    # When a good message follows, it is processed: the worker did not crash-loop
    broker.get_actor("after").send()
    assert done.wait(10)

    # Then both bad messages are in the dead-letter queue, not lost and not looping
    poll(lambda: redis_client.zcard(f"{queue}.XQ") == 2, timeout=10, message="two dead letters")
    assert redis_client.hexists(f"{queue}.XQ.msgs", "garbage-id")


def test_a_dropped_wake_up_connection_loses_no_delayed_message(broker, start_worker, redis_client):
    # Given a delayed message held in a worker's memory until it is due
    ran = threading.Event()
    dramatiq.actor(
        lambda: ran.set(), broker=broker, actor_name="later", queue_name="governance.reporting"
    )
    start_worker()
    broker.get_actor("later").send_with_options(delay=1500)
    time.sleep(0.5)

    # When every wake-up subscription is cut while Redis itself stays up
    redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    # Then the delayed message still runs when due
    assert ran.wait(10)


def test_enqueue_many_sends_messages_and_their_job_records_together(
    broker, redis_client, namespace
):
    messages = [
        dramatiq.Message(
            queue_name=queue, actor_name="anyone", args=(i,), kwargs={}, options={"tenant_id": "t"}
        )
        for i, queue in enumerate(["governance.policy", "governance.policy", "governance.audit"])
    ]

    sent = broker.enqueue_many(messages)

    assert [m.message_id for m in sent] == [m.message_id for m in messages]
    assert redis_client.llen(f"{namespace}:governance.policy") == 2
    assert redis_client.llen(f"{namespace}:governance.audit") == 1
    for message in messages:
        record = redis_client.hgetall(f"{namespace}:job:{message.message_id}")
        assert record[b"state"] == b"queued"


def test_enqueue_many_after_redis_lost_its_scripts_sends_each_message_once(
    broker, redis_client, namespace
):
    def message(i):
        return dramatiq.Message(
            queue_name="governance.policy", actor_name="anyone", args=(i,), kwargs={}, options={}
        )

    broker.enqueue_many([message(0)])  # the scripts are now known to be loaded
    redis_client.script_flush()  # as after a Redis restart

    sent = broker.enqueue_many([message(1), message(2)])

    assert redis_client.llen(f"{namespace}:governance.policy") == 3
    for m in sent:
        assert redis_client.hget(f"{namespace}:job:{m.message_id}", "state") == b"queued"
        events = redis_client.lrange(f"{namespace}:job:{m.message_id}:events", 0, -1)
        assert len(events) == 1  # its record was written once


def test_maintain_requeues_a_silent_workers_messages_on_every_queue(redis_url, namespace):
    # Given: a worker (broker id) fetched a message on a queue and on a delay queue and
    # then went silent for longer than the heartbeat timeout
    settings = CommonSettings(redis_url=redis_url, namespace=namespace)
    dead = create_broker(settings, heartbeat_timeout_ms=1000)
    alive = create_broker(settings, heartbeat_timeout_ms=1000)
    dead.maintenance_chance = alive.maintenance_chance = 0  # only maintain() requeues
    queue = "governance.audit"
    for name in (queue, f"{queue}.DQ"):
        message = dramatiq.Message(name, "noop", (), {}, {})
        dead.enqueue(message)
        assert len(dead.do_fetch(name, 1)) == 1
    heartbeats = f"{namespace}:__heartbeats__"
    dead.client.zadd(heartbeats, {dead.broker_id: time.time() * 1000 - 5000})

    # When: another worker runs the maintenance
    alive.maintain()

    # Then: both messages are back on their queues, and the dead worker is forgotten
    assert alive.client.llen(f"{namespace}:{queue}") == 1
    assert alive.client.llen(f"{namespace}:{queue}.DQ") == 1
    assert alive.client.zscore(heartbeats, dead.broker_id) is None
    assert alive.client.zscore(heartbeats, alive.broker_id) is not None
    dead.close()
    alive.close()


def test_a_worker_runs_the_maintenance_at_boot_and_on_a_timer(redis_url, namespace):
    settings = CommonSettings(redis_url=redis_url, namespace=namespace)
    broker = create_broker(settings, heartbeat_timeout_ms=1200)  # a round every 0.2 s
    calls = []
    broker.maintain = lambda: calls.append(time.monotonic())  # type: ignore[method-assign]
    worker = Worker(broker, worker_threads=1, worker_timeout=1000)
    worker.start()
    try:
        poll(lambda: len(calls) >= 3, timeout=5, message="three maintenance rounds")
    finally:
        worker.stop()
        broker.close()
    assert 0.15 < calls[2] - calls[1] < 2.0  # a round every 0.2 s, late on a busy machine
