"""What this system assumes about Dramatiq's Redis broker, in one place.

Dramatiq's ``RedisBroker`` keeps its queues in Redis by a layout of its own (written
down at the top of ``dramatiq/brokers/redis/dispatch.lua``), and it has no public API
for most of what the system does with them: count a queue's delayed and in-flight
messages, take a dead letter back, move a delayed message onto its queue, wake a
waiting consumer. Everything here depends on that layout, and nothing outside this
package spells a key of it. For a queue ``q`` under namespace ``ns``:

* ``ns:q``              list of the ids of ready messages
* ``ns:q.msgs``         hash id -> encoded message, for ready and fetched messages
* ``ns:q.DQ``           the delay queue: a queue of its own (list and ``.msgs`` hash)
  whose messages carry an ``eta``; workers fetch them early and hold them in memory
  until due, then enqueue them on ``q``
* ``ns:q.XQ``           sorted set of dead-lettered ids (score: when, in ms), their
  bodies in ``ns:q.XQ.msgs``; a delay queue's dead letters go to its queue's
* ``ns:__acks__.<broker id>.<q>``  set of the ids a worker fetched and has not acked
* ``ns:__heartbeats__`` sorted set of broker ids by last contact (ms)

The ids are Dramatiq's per-enqueue ``redis_message_id`` option, not message ids.

A Dramatiq upgrade that moves a key, or reorders the arguments of its ``dispatch``
script (:data:`DISPATCH_ARGV`), breaks this package and only this package; the
contract test ``tests/contract/test_dramatiq_redis.py`` runs the installed Dramatiq
against real Redis and fails on any difference.

The Lua scripts of this package are ``.lua`` files beside this module, read once at
import (as Dramatiq reads its own).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name, q_name, xq_name

__all__ = [
    "BODIES_SUFFIX",
    "DeadLetters",
    "DelayedMessages",
    "DEAD_SUFFIX",
    "DELAY_SUFFIX",
    "DISPATCH_ARGV",
    "Layout",
    "RedisBroker",
    "RedisConsumer",
    "base_queue_name",
    "dead_queue_name",
    "delay_queue_name",
    "dead_letter_by_body",
    "dispatch_args",
    "earliest_held_eta_ms",
    "is_delay_queue",
    "move_due_call",
    "read_lua",
    "SCRIPTS",
]

#: Dramatiq's consumer of a Redis queue. Private in Dramatiq (``_RedisConsumer``); the
#: system's consumer extends it, so it is named here and nowhere else.
RedisConsumer = _RedisConsumer

#: Name suffix of a queue's delay queue and dead-letter set, and of a queue's bodies.
DELAY_SUFFIX = ".DQ"
DEAD_SUFFIX = ".XQ"
BODIES_SUFFIX = ".msgs"

#: The leading arguments of Dramatiq's ``dispatch`` script (``ARGV[1..8]``, named as
#: dispatch.lua names them); a command's own arguments follow.
DISPATCH_ARGV: tuple[str, ...] = (
    "command",
    "timestamp",
    "queue_name",
    "worker_id",
    "heartbeat_timeout",
    "dead_message_ttl",
    "do_maintenance",
    "max_unpack_size",
)


def delay_queue_name(queue_name: str) -> str:
    """``q`` -> ``q.DQ``."""
    return dq_name(queue_name)


def dead_queue_name(queue_name: str) -> str:
    """``q`` (or ``q.DQ``) -> ``q.XQ``."""
    return xq_name(queue_name)


def base_queue_name(queue_name: str) -> str:
    """``q.DQ`` / ``q.XQ`` -> ``q``."""
    return q_name(queue_name)


def is_delay_queue(queue_name: str) -> bool:
    return queue_name.endswith(DELAY_SUFFIX)


@dataclass(frozen=True)
class Layout:
    """The Redis keys of Dramatiq's queues under one namespace."""

    namespace: str

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def queue(self, queue_name: str) -> str:
        """List of the ids of the ready messages of ``queue_name`` (any queue, a delay
        queue included)."""
        return self.key(queue_name)

    def bodies(self, queue_name: str) -> str:
        """Hash id -> encoded message of ``queue_name``'s ready and fetched messages."""
        return self.key(queue_name + BODIES_SUFFIX)

    def delayed(self, queue_name: str) -> str:
        return self.queue(delay_queue_name(queue_name))

    def delayed_bodies(self, queue_name: str) -> str:
        return self.bodies(delay_queue_name(queue_name))

    def dead(self, queue_name: str) -> str:
        """Sorted set of the dead-lettered ids of ``queue_name`` (score: when, ms)."""
        return self.key(dead_queue_name(queue_name))

    def dead_bodies(self, queue_name: str) -> str:
        return self.dead(queue_name) + BODIES_SUFFIX

    def acks(self, broker_id: str, queue_name: str) -> str:
        """Set of the ids of ``queue_name`` that broker ``broker_id`` fetched, unacked."""
        return f"{self.acks_prefix()}{broker_id}{self.acks_suffix(queue_name)}"

    def acks_prefix(self) -> str:
        """What every ack set's key starts with: ``acks(b, q)`` is ``acks_prefix() + b +
        acks_suffix(q)``."""
        return self.key("__acks__.")

    def acks_suffix(self, queue_name: str) -> str:
        return f".{queue_name}"

    def acks_pattern(self, queue_name: str) -> str:
        """A ``SCAN``/``KEYS`` pattern matching every broker's ack set of ``queue_name``."""
        return self.acks("*", queue_name)

    def heartbeats(self) -> str:
        """Sorted set of broker ids by their last contact (ms)."""
        return self.key("__heartbeats__")


def dispatch_args(
    broker: RedisBroker, command: str, queue_name: str, *args: object, maintenance: int = 0
) -> list:
    """``ARGV`` of one call of Dramatiq's ``dispatch`` script (``KEYS``: the namespace),
    in the order of :data:`DISPATCH_ARGV`, as ``RedisBroker._dispatch`` builds it.

    Built here rather than through ``broker.do_<command>`` so a call can be queued on
    a pipeline (Dramatiq's own calls send one round trip each).
    """
    return [
        command,
        current_millis(),
        queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        int(maintenance),
        broker._max_unpack_size(),
        *args,
    ]


def read_lua(package: str, name: str) -> str:
    """The text of the Lua script ``<name>.lua`` shipped in ``package``."""
    return resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def earliest_held_eta_ms(thread: threading.Thread | None = None) -> int | None:
    """The earliest eta (ms) of the delayed messages that Dramatiq's consumer thread
    ``thread`` (by default the current thread: call it from a consumer) holds in
    memory, or None.

    Dramatiq's consumer thread keeps the delayed messages it fetched in a priority
    queue (``ConsumerThread.delay_queue``, earliest eta first) and moves the due ones
    onto their queue each time its consumer returns.
    """
    thread = thread or threading.current_thread()
    held = getattr(thread, "delay_queue", None)
    if held is None:
        return None
    with held.mutex:
        return held.queue[0].priority if held.queue else None


#: This package's scripts, read once at import: name -> Lua source.
SCRIPTS: dict[str, str] = {
    name: read_lua(__name__, name) for name in ("move_due", "promote", "claim_dead")
}


def move_due_call(
    layout: Layout, queue_name: str, delayed_id: str, new_id: str, data: bytes
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ``move_due.lua``: move delayed message ``delayed_id`` (taken from
    ``queue_name``'s delay queue) onto ``queue_name`` as ``new_id``."""
    keys = [layout.delayed_bodies(queue_name), layout.queue(queue_name), layout.bodies(queue_name)]
    return keys, [delayed_id, new_id, data]


def dead_letter_by_body(broker: RedisBroker, queue_name: str, data: bytes) -> bool:
    """Dead-letter the message of ``queue_name`` whose body is ``data``, fetched (and not
    acked) by ``broker``; False if it is not among that broker's fetched messages.

    For a body that is not a Dramatiq message: its Redis id is only known by value.
    """
    layout = Layout(broker.namespace)
    client = broker.client
    for redis_id in client.smembers(layout.acks(broker.broker_id, queue_name)):
        if client.hget(layout.bodies(queue_name), redis_id) == data:
            broker.do_nack(queue_name, redis_id.decode())
            return True
    return False


class DeadLetters:
    """The dead-letter sets of one namespace's queues: read, take back, drop."""

    def __init__(self, client: redis.Redis, namespace: str):
        self.client = client
        self.layout = Layout(namespace)
        self._claim = client.register_script(SCRIPTS["claim_dead"])

    def is_dead(self, queue_name: str, redis_id: str) -> bool:
        return self.client.zscore(self.layout.dead(queue_name), redis_id) is not None

    def dead_at(self, pipe: Any, queue_name: str, redis_id: str) -> None:
        """Queue on ``pipe`` the read of when ``redis_id`` was dead-lettered (ms, or None)."""
        pipe.zscore(self.layout.dead(queue_name), redis_id)

    def claim(self, queue_name: str, redis_id: str) -> bytes | None:
        """Atomically take a message out of the dead-letter set; None if it is not there."""
        keys = [self.layout.dead(queue_name), self.layout.dead_bodies(queue_name)]
        return self._claim(keys=keys, args=[redis_id]) or None

    def restore(self, queue_name: str, redis_id: str, data: bytes, score: float) -> None:
        """Put back a message :meth:`claim` took (when re-enqueueing it failed)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.layout.dead(queue_name), {redis_id: score})
        pipe.hset(self.layout.dead_bodies(queue_name), redis_id, data)
        pipe.execute()

    def before(self, queue_name: str, before_ms: int) -> list[str]:
        """Ids of the dead letters of ``queue_name`` older than ``before_ms``."""
        dead = self.layout.dead(queue_name)
        return [m.decode() for m in self.client.zrangebyscore(dead, "-inf", f"({before_ms}")]

    def drop(self, queue_name: str, redis_ids: list[str]) -> int:
        """Remove dead letters (and their bodies) by id; returns how many were there."""
        if not redis_ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.layout.dead(queue_name), *redis_ids)
        pipe.hdel(self.layout.dead_bodies(queue_name), *redis_ids)
        removed, _ = pipe.execute()
        return int(removed)


class DelayedMessages:
    """The delay queues of one namespace: find a delayed message, send it now."""

    def __init__(self, client: redis.Redis, namespace: str):
        self.client = client
        self.layout = Layout(namespace)
        self._promote = client.register_script(SCRIPTS["promote"])

    def find(self, queue_name: str, message_id: str) -> tuple[str, dramatiq.Message] | None:
        """The delay-queue id and message of job ``message_id``, if it waits there.

        Scans the delay queue's bodies (what is delayed: retries waiting on their
        backoff, a bounded set), never the ready queue.
        """
        bodies = self.layout.delayed_bodies(queue_name)
        for redis_id, data in self.client.hscan_iter(bodies, count=500):
            if message_id.encode() not in data:
                continue
            message = dramatiq.Message.decode(data)
            if message.message_id == message_id:
                return redis_id.decode(), message
        return None

    def promote(
        self, queue_name: str, delayed_id: str, message: dramatiq.Message, wake_channel: str
    ) -> bool:
        """Send a delayed message onto ``queue_name`` now (as ``message``, whose
        ``redis_message_id`` is new) and publish on ``wake_channel``; False if its body
        was gone (it came due and its worker sent it, or another promote did)."""
        layout, delay_queue = self.layout, delay_queue_name(queue_name)
        keys = [
            layout.delayed(queue_name),
            layout.delayed_bodies(queue_name),
            layout.queue(queue_name),
            layout.bodies(queue_name),
            layout.heartbeats(),
        ]
        args = [
            delayed_id,
            message.options["redis_message_id"],
            message.encode(),
            layout.acks_prefix(),
            layout.acks_suffix(delay_queue),
            wake_channel,
        ]
        return bool(self._promote(keys=keys, args=args))
