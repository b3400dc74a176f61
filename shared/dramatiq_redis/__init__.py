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

from dataclasses import dataclass
from importlib import resources

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name, q_name, xq_name

__all__ = [
    "BODIES_SUFFIX",
    "DEAD_SUFFIX",
    "DELAY_SUFFIX",
    "DISPATCH_ARGV",
    "Layout",
    "RedisBroker",
    "RedisConsumer",
    "base_queue_name",
    "dead_queue_name",
    "delay_queue_name",
    "dispatch_args",
    "is_delay_queue",
    "read_lua",
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
        return f"{self.acks_prefix()}{broker_id}.{queue_name}"

    def acks_prefix(self) -> str:
        """What every ack set's key starts with (the broker id and queue follow)."""
        return self.key("__acks__.")

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
