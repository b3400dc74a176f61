"""Reading and editing Dramatiq's Redis layout (see dramatiq/brokers/redis/dispatch.lua).

For a queue ``q`` under namespace ``ns``:

* ``ns:q``            list of message ids waiting (ready)
* ``ns:q.msgs``       hash id -> encoded message, for ready and fetched messages
* ``ns:q.DQ``         list of delayed message ids (retries waiting for their time);
  workers fetch them early and hold them in memory until due
* ``ns:q.XQ``         sorted set of dead-lettered ids (score: when), data in ``.XQ.msgs``
* ``ns:__acks__.<worker>.<q>``  set of ids a worker fetched and has not acked yet
* ``ns:__heartbeats__`` sorted set of broker ids by last contact
* ``ns:queues:paused``  hash of paused queues (ours, see :func:`shared.broker.paused_key`)

The ids here are Dramatiq's per-enqueue ``redis_message_id``, not message ids; a job
record keeps the current one as ``broker_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dramatiq
import redis

from shared.broker import PAUSE_CHANGED, paused_key, wake_channel

_CLAIM_DEAD = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
  return false
end
local data = redis.call("hget", KEYS[2], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
return data or false
"""


# Take a delayed message's body out of its delay queue (list, bodies, and the set of the
# worker holding it in memory, if one does) and send it onto its queue under a new id.
# Taking the body is what the worker does too when the message comes due (MOVE_DUE in
# shared.broker), so exactly one of them sends it.
_PROMOTE = """
if redis.call("hdel", KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call("lrem", KEYS[1], 1, ARGV[1])
for _, broker_id in ipairs(redis.call("zrange", ARGV[4] .. ":__heartbeats__", 0, -1)) do
  redis.call("srem", ARGV[4] .. ":__acks__." .. broker_id .. "." .. ARGV[5], ARGV[1])
end
redis.call("hset", KEYS[4], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[3], ARGV[2])
redis.call("publish", ARGV[6], "1")
return 1
"""


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
        self._claim_dead = client.register_script(_CLAIM_DEAD)
        self._promote = client.register_script(_PROMOTE)

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def broker_ids(self) -> list[str]:
        """Ids of every broker that talked to Redis recently (workers and senders)."""
        return [w.decode() for w in self.client.zrange(self.key("__heartbeats__"), 0, -1)]

    def depths(self, queues: list[str]) -> dict[str, QueueDepths]:
        """Ready, delayed, in flight and dead counts of each queue, in one round trip."""
        brokers = self.broker_ids()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self.key(queue))
            pipe.llen(self.key(f"{queue}.DQ"))
            pipe.zcard(self.key(f"{queue}.XQ"))
            for broker_id in brokers:
                pipe.scard(self.key(f"__acks__.{broker_id}.{queue}"))
                pipe.scard(self.key(f"__acks__.{broker_id}.{queue}.DQ"))
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

    def is_dead(self, queue: str, broker_id: str) -> bool:
        return self.client.zscore(self.key(f"{queue}.XQ"), broker_id) is not None

    def claim_dead(self, queue: str, broker_id: str) -> bytes | None:
        """Atomically take a message out of the dead-letter set; None if it is not there."""
        xq = self.key(f"{queue}.XQ")
        return self._claim_dead(keys=[xq, f"{xq}.msgs"], args=[broker_id]) or None

    def restore_dead(self, queue: str, broker_id: str, data: bytes, score: float) -> None:
        """Put back a message :meth:`claim_dead` took (when re-enqueueing it failed)."""
        xq = self.key(f"{queue}.XQ")
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(xq, {broker_id: score})
        pipe.hset(f"{xq}.msgs", broker_id, data)
        pipe.execute()

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
        """The delay-queue id and message of job ``message_id``, if it waits there.

        Scans the delay queue's bodies (what is delayed: retries waiting on their
        backoff, a bounded set), never the ready queue.
        """
        for redis_id, data in self.client.hscan_iter(self.key(f"{queue}.DQ.msgs"), count=500):
            if message_id.encode() not in data:
                continue
            message = dramatiq.Message.decode(data)
            if message.message_id == message_id:
                return redis_id.decode(), message
        return None

    def promote(self, queue: str, delayed_id: str, message: dramatiq.Message) -> bool:
        """Send a delayed message onto ``queue`` now; False if its body was gone (it came
        due and its worker sent it, or another promote did)."""
        new_id = message.options["redis_message_id"]
        dq = f"{queue}.DQ"
        keys = [self.key(dq), self.key(f"{dq}.msgs"), self.key(queue), self.key(f"{queue}.msgs")]
        args = [
            delayed_id,
            new_id,
            message.encode(),
            self.namespace,
            dq,
            wake_channel(self.namespace, queue),
        ]
        return bool(self._promote(keys=keys, args=args))

    def dead_before(self, queue: str, before_ms: int) -> list[str]:
        """Ids of the dead letters of ``queue`` older than ``before_ms``."""
        xq = self.key(f"{queue}.XQ")
        return [m.decode() for m in self.client.zrangebyscore(xq, "-inf", f"({before_ms}")]

    def drop_dead(self, queue: str, broker_ids: list[str]) -> int:
        """Remove dead letters (and their bodies) by id; returns how many were there."""
        if not broker_ids:
            return 0
        xq = self.key(f"{queue}.XQ")
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(xq, *broker_ids)
        pipe.hdel(f"{xq}.msgs", *broker_ids)
        removed, _ = pipe.execute()
        return int(removed)
