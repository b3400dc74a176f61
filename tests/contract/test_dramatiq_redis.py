"""The installed Dramatiq keeps its queues in Redis where shared.dramatiq_redis says.

Everything the system assumes about Dramatiq's Redis broker (key names, the order of
its dispatch script's arguments, its consumer, where delayed, fetched and dead-lettered
messages go) is named in :mod:`shared.dramatiq_redis`. These tests run Dramatiq's own
``RedisBroker`` and consumers against real Redis, and compare what they wrote with
those names. A Dramatiq upgrade that moves a key fails here, by name, rather than
silently in the ops views, retries or promote.
"""

from __future__ import annotations

import re
import time
from queue import PriorityQueue

import dramatiq
import pytest
from dramatiq.broker import MessageProxy
from dramatiq.worker import ConsumerThread

from shared.dramatiq_redis import (
    DISPATCH_ARGV,
    SCRIPTS,
    DeadLetters,
    DelayedMessages,
    Layout,
    RedisBroker,
    RedisConsumer,
    base_queue_name,
    dead_letter_by_body,
    dead_queue_name,
    delay_queue_name,
    dispatch_args,
    earliest_held_eta_ms,
    is_delay_queue,
    move_due_call,
)

QUEUE = "contract.q"


@pytest.fixture
def broker(redis_client, namespace):
    """Dramatiq's own broker, stock: no middleware, no maintenance by chance."""
    broker = RedisBroker(client=redis_client, namespace=namespace, middleware=[])
    broker.maintenance_chance = 0
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def message(n: int = 0) -> dramatiq.Message:
    return dramatiq.Message(QUEUE, "anyone", (n,), {}, {})


def redis_id(m: dramatiq.Message | MessageProxy) -> bytes:
    return m.options["redis_message_id"].encode()


def take(broker: RedisBroker, queue_name: str, count: int) -> tuple[RedisConsumer, list]:
    """Fetch ``count`` messages of ``queue_name`` with Dramatiq's own consumer."""
    consumer = broker.consume(queue_name, prefetch=count, timeout=100)
    taken = []
    deadline = time.monotonic() + 5
    while len(taken) < count and time.monotonic() < deadline:
        got = next(consumer)
        if got is not None:
            taken.append(got)
    assert len(taken) == count, f"fetched {len(taken)} of {count} from {queue_name}"
    return consumer, taken


def test_dispatch_script_takes_its_arguments_in_the_order_the_module_names():
    # The script the broker sends, as Dramatiq loaded it.
    script = RedisBroker(middleware=[]).scripts["dispatch"].script
    script = script.decode() if isinstance(script, bytes) else script

    named = dict(re.findall(r"local (\w+) = ARGV\[(\d+)\]", script))
    by_index = sorted((int(i), name) for name, i in named.items())
    assert [name for _, name in by_index] == list(DISPATCH_ARGV)
    assert [i for i, _ in by_index] == list(range(1, len(DISPATCH_ARGV) + 1))
    assert "local namespace = KEYS[1]" in script
    # A command's own arguments follow the common ones.
    assert f"for i={len(DISPATCH_ARGV) + 1},#ARGV do" in script


def test_dispatch_args_are_what_dramatiqs_own_calls_send(broker, namespace):
    sent = []
    dispatch = broker.scripts["dispatch"]

    def recording(*, keys, args):
        sent.append((keys, list(args)))
        return dispatch(keys=keys, args=args)

    broker.scripts["dispatch"] = recording
    try:
        broker.do_fetch(QUEUE, 3)
        broker.do_requeue(QUEUE, "a", "b")
    finally:
        broker.scripts["dispatch"] = dispatch

    (keys, fetch), (_, requeue) = sent
    assert keys == [namespace]
    ours = [
        (fetch, dispatch_args(broker, "fetch", QUEUE, 3)),
        (requeue, dispatch_args(broker, "requeue", QUEUE, "a", "b")),
    ]
    timestamp = DISPATCH_ARGV.index("timestamp")
    maintenance = DISPATCH_ARGV.index("do_maintenance")
    for theirs, mine in ours:
        assert len(theirs) == len(mine)
        for i, (a, b) in enumerate(zip(theirs, mine, strict=True)):
            if i == timestamp:
                assert abs(int(a) - int(b)) < 60_000
            elif i == maintenance:
                assert int(a) == int(b) == 0
            else:
                assert a == b, f"argument {i + 1} ({DISPATCH_ARGV[i] if i < 8 else 'own'})"


def test_a_message_enqueued_with_dispatch_args_is_one_dramatiqs_consumer_takes(broker):
    m = message(7).copy(options={"redis_message_id": "id-7"})
    args = dispatch_args(broker, "enqueue", QUEUE, "id-7", m.encode())
    broker.scripts["dispatch"](keys=[broker.namespace], args=args)

    _, [taken] = take(broker, QUEUE, 1)
    assert taken.message_id == m.message_id and taken.args == (7,)


def test_names_of_delay_and_dead_letter_queues_are_dramatiqs(broker):
    delayed = broker.enqueue(message(), delay=60_000)
    assert delayed.queue_name == delay_queue_name(QUEUE)
    assert is_delay_queue(delayed.queue_name) and not is_delay_queue(QUEUE)
    assert base_queue_name(delayed.queue_name) == QUEUE
    assert base_queue_name(dead_queue_name(QUEUE)) == QUEUE
    # A delay queue's dead letters are its queue's.
    assert dead_queue_name(delay_queue_name(QUEUE)) == dead_queue_name(QUEUE)


def test_every_key_dramatiq_writes_is_where_the_layout_says(broker, redis_client, namespace):
    layout = Layout(namespace)
    # Given: three messages ready and one delayed, sent through Dramatiq's enqueue
    ready = [broker.enqueue(message(n)) for n in range(3)]
    delayed = broker.enqueue(message(9), delay=60_000)

    assert redis_client.lrange(layout.queue(QUEUE), 0, -1) == [redis_id(m) for m in ready]
    assert set(redis_client.hkeys(layout.bodies(QUEUE))) == {redis_id(m) for m in ready}
    assert redis_client.lrange(layout.delayed(QUEUE), 0, -1) == [redis_id(delayed)]
    assert redis_client.hget(layout.delayed_bodies(QUEUE), redis_id(delayed)) == delayed.encode()

    # When: Dramatiq's consumers fetch them all
    consumer, taken = take(broker, QUEUE, 3)
    delay_consumer, [held] = take(broker, delay_queue_name(QUEUE), 1)

    # Then: the fetched ids are in this broker's ack sets, one per queue
    acks = layout.acks(broker.broker_id, QUEUE)
    delay_acks = layout.acks(broker.broker_id, delay_queue_name(QUEUE))
    assert redis_client.smembers(acks) == {redis_id(m) for m in ready}
    assert redis_client.smembers(delay_acks) == {redis_id(delayed)}
    assert acks == layout.acks_prefix() + broker.broker_id + layout.acks_suffix(QUEUE)
    assert set(redis_client.keys(layout.acks_pattern(QUEUE))) == {acks.encode()}
    assert redis_client.zscore(layout.heartbeats(), broker.broker_id) is not None

    # When: one is acked, one dead-lettered, and the delayed one dead-lettered too
    consumer.ack(taken[0])
    before = time.time() * 1000
    taken[1].fail()
    consumer.nack(taken[1])
    delay_consumer.nack(held)

    # Then: the ack dropped its body; the dead letters are in the queue's dead-letter set
    # (the delayed one's too), scored by when, with their bodies
    assert not redis_client.hexists(layout.bodies(QUEUE), redis_id(taken[0]))
    dead = redis_client.zrange(layout.dead(QUEUE), 0, -1, withscores=True)
    assert {m for m, _ in dead} == {redis_id(taken[1]), redis_id(held)}
    assert all(score >= before - 1000 for _, score in dead)
    assert redis_client.hget(layout.dead_bodies(QUEUE), redis_id(held)) == delayed.encode()
    assert redis_client.hexists(layout.dead_bodies(QUEUE), redis_id(taken[1]))

    # And: Dramatiq wrote no key the layout does not name (empty lists and sets vanish)
    expected = {
        layout.bodies(QUEUE),  # the third message, fetched and not acked
        acks,
        layout.dead(QUEUE),
        layout.dead_bodies(QUEUE),
        layout.heartbeats(),
    }
    assert {k.decode() for k in redis_client.keys(f"{namespace}:*")} == expected


def test_maintenance_requeues_from_the_ack_sets_the_layout_names(broker, redis_client, namespace):
    # Given: a silent broker's ack set and heartbeat, written where the layout says
    layout = Layout(namespace)
    m = broker.enqueue(message())
    broker.do_fetch(QUEUE, 1)
    redis_client.smove(
        layout.acks(broker.broker_id, QUEUE), layout.acks("silent", QUEUE), redis_id(m)
    )
    redis_client.zadd(layout.heartbeats(), {"silent": 1})

    # When: Dramatiq's maintenance runs on the queue
    broker.maintenance_chance = 1_000_000
    broker.do_qsize(QUEUE)

    # Then: it found that set through the heartbeats and requeued the message
    assert redis_client.lrange(layout.queue(QUEUE), 0, -1) == [redis_id(m)]
    assert not redis_client.exists(layout.acks("silent", QUEUE))
    assert redis_client.zscore(layout.heartbeats(), "silent") is None


def test_dead_letters_are_taken_back_and_dropped_where_dramatiq_put_them(broker, redis_client):
    dead_letters = DeadLetters(redis_client, broker.namespace)
    consumer, [first, second] = take_after(broker, 2)
    for m in (first, second):
        m.fail()
        consumer.nack(m)
    first_id, second_id = redis_id(first).decode(), redis_id(second).decode()
    assert dead_letters.is_dead(QUEUE, first_id)

    body = dead_letters.claim(QUEUE, first_id)
    assert dramatiq.Message.decode(body).message_id == first.message_id
    assert dead_letters.claim(QUEUE, first_id) is None
    dead_letters.restore(QUEUE, first_id, body, 1)
    assert dead_letters.before(QUEUE, 2) == [first_id]
    assert dead_letters.drop(QUEUE, [first_id, second_id]) == 2
    assert not redis_client.exists(Layout(broker.namespace).dead_bodies(QUEUE))


def test_an_undecodable_body_is_dead_lettered_by_value(broker, redis_client):
    m = broker.enqueue(message())
    _, [taken] = take(broker, QUEUE, 1)

    assert dead_letter_by_body(broker, QUEUE, m.encode())

    assert DeadLetters(redis_client, broker.namespace).is_dead(QUEUE, redis_id(taken).decode())


def test_a_promoted_delayed_message_is_sent_once_and_its_worker_sends_nothing(
    broker, redis_client, namespace
):
    # Given: a delayed message a worker fetched and holds until its eta
    layout = Layout(namespace)
    delayed = broker.enqueue(message(5), delay=60_000)
    take(broker, delay_queue_name(QUEUE), 1)
    delayed_state = DelayedMessages(redis_client, namespace)
    delayed_id, found = delayed_state.find(QUEUE, delayed.message_id)
    assert delayed_id == redis_id(delayed).decode()

    # When: it is promoted
    now = found.copy(queue_name=QUEUE, options={"redis_message_id": "promoted"})
    del now.options["eta"]
    with redis_client.pubsub() as pubsub:
        pubsub.subscribe("wake")
        assert delayed_state.promote(QUEUE, delayed_id, now, "wake")
        woken = [pubsub.get_message(timeout=1) for _ in range(2)]

    # Then: it is on its queue, gone from the delay queue and the worker's ack set, and
    # the worker's move when the eta comes sends nothing
    assert woken[-1] and woken[-1]["data"] == b"1"
    assert not redis_client.exists(layout.delayed_bodies(QUEUE))
    assert not redis_client.exists(layout.acks(broker.broker_id, delay_queue_name(QUEUE)))
    keys, args = move_due_call(layout, QUEUE, delayed_id, "moved", now.encode())
    move_due = redis_client.register_script(SCRIPTS["move_due"])
    assert move_due(keys=keys, args=args) == 0
    _, [taken] = take(broker, QUEUE, 1)
    assert taken.message_id == delayed.message_id and taken.args == (5,)
    assert redis_client.llen(layout.queue(QUEUE)) == 0


def test_a_due_delayed_message_is_moved_onto_its_queue(broker, redis_client, namespace):
    layout = Layout(namespace)
    delayed = broker.enqueue(message(6), delay=1)
    take(broker, delay_queue_name(QUEUE), 1)

    due = delayed.copy(queue_name=QUEUE, options={"redis_message_id": "moved"})
    keys, args = move_due_call(layout, QUEUE, redis_id(delayed).decode(), "moved", due.encode())
    move_due = redis_client.register_script(SCRIPTS["move_due"])
    assert move_due(keys=keys, args=args) == 1
    assert not redis_client.exists(layout.delayed_bodies(QUEUE))

    _, [taken] = take(broker, QUEUE, 1)
    assert taken.message_id == delayed.message_id


def test_the_consumer_is_dramatiqs_and_holds_delayed_messages_by_eta(broker):
    consumer = broker.consume(QUEUE)
    assert type(consumer) is RedisConsumer
    # What the system's consumer reads and writes of Dramatiq's.
    for attribute in ("message_cache", "queued_message_ids", "prefetch", "timeout"):
        assert hasattr(consumer, attribute), attribute
    assert consumer.outstanding_message_count == 0
    assert callable(RedisBroker._should_do_maintenance)

    # Dramatiq's consumer thread keeps fetched delayed messages by eta.
    thread = ConsumerThread(
        broker=broker,
        queue_name=delay_queue_name(QUEUE),
        prefetch=10,
        work_queue=PriorityQueue(),
        worker_timeout=100,
    )
    assert earliest_held_eta_ms(thread) is None
    for eta in (5_000, 2_000, 9_000):
        held = message().copy(queue_name=delay_queue_name(QUEUE), options={"eta": eta})
        thread.handle_message(MessageProxy(held))
    assert earliest_held_eta_ms(thread) == 2_000


def take_after(broker: RedisBroker, count: int) -> tuple[RedisConsumer, list]:
    for n in range(count):
        broker.enqueue(message(n))
    return take(broker, QUEUE, count)
