"""Reading and editing Dramatiq's Redis layout (see dramatiq/brokers/redis/dispatch.lua).

For a queue ``q`` under namespace ``ns``:

* ``ns:q``            list of message ids waiting (ready)
* ``ns:q.msgs``       hash id -> encoded message, for ready and fetched messages
* ``ns:q.DQ``         list of delayed message ids (retries waiting for their time);
  workers fetch them early and hold them in memory until due
* ``ns:q.XQ``         sorted set of dead-lettered ids (score: when), data in ``.XQ.msgs``
* ``ns:__acks__.<worker>.<q>``  set of ids a worker fetched and has not acked yet
* ``ns:__heartbeats__`` sorted set of broker ids by last contact

The ids here are Dramatiq's per-enqueue ``redis_message_id``, not message ids; a job
record keeps the current one as ``broker_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

_CLAIM_DEAD = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
  return false
end
local data = redis.call("hget", KEYS[2], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
return data or false
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
