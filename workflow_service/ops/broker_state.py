"""Counts and operations on this namespace's Dramatiq queues in Redis.

Dramatiq's Redis layout (which key holds what) is :mod:`shared.dramatiq_redis`'s; this
module reads and changes queues only through it. Besides Dramatiq's keys, a queue has
the pause flag and wake-up channel of :mod:`shared.broker`.

The ids here are Dramatiq's per-enqueue ``redis_message_id``, not message ids; a job
record keeps the current one as ``broker_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis

from shared.broker import PAUSE_CHANGED, paused_key, wake_channel
from shared.dramatiq_redis import DeadLetters, DelayedMessages, Layout, delay_queue_name


@dataclass(frozen=True)
class QueueDepths:
    ready: int
    delayed: int
    in_flight: int
    dead: int


class BrokerState:
    """Counts and dead-letter operations on one namespace's Dramatiq queues."""

    def __init__(self, client: redis.Redis, namespace: str):
        self.client = client
        self.namespace = namespace
        self.layout = Layout(namespace)
        self.dead_letters = DeadLetters(client, namespace)
        self.delayed = DelayedMessages(client, namespace)

    def broker_ids(self) -> list[str]:
        """Ids of every broker that talked to Redis recently (workers and senders)."""
        return [w.decode() for w in self.client.zrange(self.layout.heartbeats(), 0, -1)]

    def depths(self, queues: list[str]) -> dict[str, QueueDepths]:
        """Ready, delayed, in flight and dead counts of each queue, in one round trip.

        Delayed counts both the delay queue's list and the delayed messages that workers
        fetched and hold in memory until their eta (the delay queue's ack sets).
        """
        layout = self.layout
        brokers = self.broker_ids()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(layout.queue(queue))
            pipe.llen(layout.delayed(queue))
            pipe.zcard(layout.dead(queue))
            for broker_id in brokers:
                pipe.scard(layout.acks(broker_id, queue))
                pipe.scard(layout.acks(broker_id, delay_queue_name(queue)))
        values = iter(pipe.execute())
        out = {}
        for queue in queues:
            ready, delayed, dead = next(values), next(values), next(values)
            in_flight = held = 0
            for _ in brokers:
                in_flight += next(values)
                held += next(values)
            out[queue] = QueueDepths(ready, delayed + held, in_flight, dead)
        return out

    # -- dead letters -----------------------------------------------------------------

    def is_dead(self, queue: str, broker_id: str) -> bool:
        return self.dead_letters.is_dead(queue, broker_id)

    def dead_at(self, pipe: Any, queue: str, broker_id: str) -> None:
        """Queue on ``pipe`` the read of when a message was dead-lettered (ms, or None)."""
        self.dead_letters.dead_at(pipe, queue, broker_id)

    def claim_dead(self, queue: str, broker_id: str) -> bytes | None:
        """Atomically take a message out of the dead-letter set; None if it is not there."""
        return self.dead_letters.claim(queue, broker_id)

    def restore_dead(self, queue: str, broker_id: str, data: bytes, score: float) -> None:
        """Put back a message :meth:`claim_dead` took (when re-enqueueing it failed)."""
        self.dead_letters.restore(queue, broker_id, data, score)

    def dead_before(self, queue: str, before_ms: int) -> list[str]:
        """Ids of the dead letters of ``queue`` older than ``before_ms``."""
        return self.dead_letters.before(queue, before_ms)

    def drop_dead(self, queue: str, broker_ids: list[str]) -> int:
        """Remove dead letters (and their bodies) by id; returns how many were there."""
        return self.dead_letters.drop(queue, broker_ids)

    # -- pause ------------------------------------------------------------------------

    def paused(self) -> dict[str, dict]:
        """Paused queues: name -> ``{"by", "at"}`` (who paused it, when in ms)."""
        raw = self.client.hgetall(paused_key(self.namespace))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def set_paused(self, queue: str, paused: bool, by: str, at_ms: int) -> bool:
        """Pause or resume ``queue`` and wake its consumers so they read the flag now.

        Returns whether this changed anything (pausing a paused queue keeps who paused
        it first).
        """
        pipe = self.client.pipeline(transaction=True)
        if paused:
            pipe.hsetnx(paused_key(self.namespace), queue, json.dumps({"by": by, "at": at_ms}))
        else:
            pipe.hdel(paused_key(self.namespace), queue)
        pipe.publish(wake_channel(self.namespace, queue), PAUSE_CHANGED)
        changed, _ = pipe.execute()
        return bool(changed)

    # -- delayed messages -------------------------------------------------------------

    def find_delayed(self, queue: str, message_id: str) -> tuple[str, dramatiq.Message] | None:
        """The delay-queue id and message of job ``message_id``, if it waits there."""
        return self.delayed.find(queue, message_id)

    def promote(self, queue: str, delayed_id: str, message: dramatiq.Message) -> bool:
        """Send a delayed message onto ``queue`` now and wake its consumers; False if its
        body was gone (it came due and its worker sent it, or another promote did).

        Taking the body out of the delay queue is what the worker does too when the
        message comes due, so exactly one of them sends it.
        """
        channel = wake_channel(self.namespace, queue)
        return self.delayed.promote(queue, delayed_id, message, channel)
