"""Baseline actors for the workflow benchmarks, run by a real ``dramatiq`` worker.

    BENCH_BROKER=stock  dramatiq bench.dramatiq_probe --processes 1 --threads 8
    BENCH_BROKER=shared dramatiq bench.dramatiq_probe --processes 1 --threads 8

``stock`` is Dramatiq's own RedisBroker with its default middleware and settings (the
bare baseline); ``shared`` is the project's broker (``shared.broker.create_broker``,
the one the workflow workers use), to compare one hop on each. Settings come from
REDIS_URL and REDIS_NAMESPACE.

* ``noop()`` does nothing: its drain rate is the ceiling of a worker on this machine.
* ``pickup(sent_at)`` records how long after ``sent_at`` (time.time()) a worker thread
  started it, in the Redis list ``<namespace>:bench:pickup``.
"""

from __future__ import annotations

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from shared.broker import create_broker
from shared.settings import CommonSettings

QUEUE = "bench.probe"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("REDIS_NAMESPACE", "bench")

if os.environ.get("BENCH_BROKER", "stock") == "shared":
    broker = create_broker(CommonSettings(redis_url=REDIS_URL, namespace=NAMESPACE))
else:
    broker = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    pass


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def pickup(sent_at: float) -> None:
    _client.rpush(f"{NAMESPACE}:bench:pickup", time.time() - sent_at)
