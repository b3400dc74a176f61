"""Per-minute queue figures (shared/jobstatus/stats.py) against real Redis: known
inputs give known counts and percentiles, and a queue's memory stays the same fixed
size however many jobs it sees."""

from __future__ import annotations

import math
import random

import pytest

from shared.jobstatus import JobStatusStore
from shared.jobstatus.stats import (
    BUCKETS,
    BYTES_PER_QUEUE,
    LATENCY_FIELD,
    SLOTS,
    MinuteStats,
    bucket_bounds,
    bucket_of,
    percentile,
)

QUEUE = "governance.policy"
#: A minute boundary (epoch seconds), so tests know which minute a time falls in.
T0 = 1_800_000_000 - 1_800_000_000 % 60


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock(T0 + 30)


@pytest.fixture
def store(redis_client, namespace, clock):
    return JobStatusStore(redis_client, namespace, clock=clock)


@pytest.fixture
def stats(redis_client, namespace, clock):
    return MinuteStats(redis_client, namespace, clock=clock)


def finished(store, i, at_s, duration_s, outcome=("processed", "succeeded"), queue=QUEUE):
    return store.change(
        f"job-{i}",
        queue,
        state="succeeded",
        rank=13,
        stats=outcome,
        duration_s=duration_s,
        at_ms=int(at_s * 1000),
    )


def started(store, i, at_s, latency_ms, queue=QUEUE):
    transition = store.change(f"job-{i}", queue, state="running", rank=11, at_ms=int(at_s * 1000))
    transition[LATENCY_FIELD] = latency_ms
    return transition


def test_buckets_are_half_powers_of_two_of_a_millisecond():
    assert bucket_of(0.2) == 0
    assert bucket_of(1) == 1 and bucket_of(1.41) == 1 and bucket_of(1.42) == 2
    assert bucket_of(1000) == 20  # [2**9.5, 2**10) ms
    assert bucket_of(10**12) == BUCKETS - 1
    for index in range(1, BUCKETS - 1):
        low, high = bucket_bounds(index)
        assert bucket_of(low) == index and bucket_of(high * 0.999) == index
    assert percentile([0] * BUCKETS, 0.5) is None


def test_known_jobs_give_their_counts_and_percentiles(stats, store, clock):
    # Given, in the minute before the current one: 90 jobs that took 10 ms and 10 that
    # took 1 s after waiting 5 ms and 2 s; 3 failed attempts and 2 retries; and in the
    # current minute 7 jobs of 200 ms
    previous = T0 - 60
    batch = []
    for i in range(100):
        slow = i >= 90
        batch.append(started(store, i, previous + 1, 2000 if slow else 5))
        batch.append(finished(store, i, previous + 2, 1.0 if slow else 0.010))
    batch += [
        finished(store, 200 + i, previous + 3, 0.05, ("processed", "failed")) for i in range(3)
    ]
    batch += [
        finished(store, 300 + i, previous + 4, 0.05, ("processed", "retried")) for i in range(2)
    ]
    batch += [finished(store, 400 + i, T0 + 10, 0.2) for i in range(7)]
    # When the batch writer sends them (split in two batches, as it would)
    stats.send(store, batch[:50], stats.gather(batch[:50]))
    stats.send(store, batch[50:], stats.gather(batch[50:]))
    # Then the series of the last 3 minutes has them, minute by minute
    series = stats.series(QUEUE, 3)
    assert series["t"] == [T0 - 120, T0 - 60, T0]
    assert series["processed"] == [0, 105, 7]
    assert series["succeeded"] == [0, 100, 7]
    assert series["failed"] == [0, 3, 0]
    assert series["retried"] == [0, 2, 0]
    assert series["latency_p50_ms"][0] is None and series["duration_p95_ms"][0] is None

    def near(value, truth):  # within the histogram's resolution (a bucket: sqrt 2)
        return truth / math.sqrt(2) <= value <= truth * math.sqrt(2)

    assert near(series["latency_p50_ms"][1], 5)
    assert near(series["latency_p95_ms"][1], 2000)
    assert near(series["duration_p50_ms"][1], 10)
    assert near(series["duration_p95_ms"][1], 1000)
    assert near(series["duration_p50_ms"][2], 200)
    assert series["latency_p50_ms"][2] is None  # none of them started in this minute
    # And the job records went through in the same calls
    assert store.raw("job-5")["state"] == "succeeded"


def test_a_day_old_slot_is_reused_and_older_minutes_are_not_counted(stats, store, clock):
    stats.write(stats.gather([finished(store, 1, T0 + 1, 0.01)]))
    # A day later the same slot holds the new minute only
    clock.now += SLOTS * 60
    stats.write(stats.gather([finished(store, 2, clock.now, 0.01)]))
    assert stats.series(QUEUE, 1)["processed"] == [1]
    # A write for a minute more than a day old does not land in the newer minute's slot
    stats.write(stats.gather([finished(store, 3, T0 + 2, 0.01)]))
    assert stats.series(QUEUE, 1)["processed"] == [1]
    assert sum(stats.series(QUEUE, SLOTS)["processed"]) == 1


def test_memory_stays_fixed_after_100000_jobs(stats, store, clock, redis_client, namespace):
    # Given 100,000 jobs over a day and a half, written in the batch writer's batches
    rng = random.Random(17)
    start = T0 - SLOTS * 60
    total = 100_000
    batch = []
    for i in range(total):
        at = start + i * (1.5 * SLOTS * 60) / total
        batch.append(started(store, i, at, rng.uniform(0.5, 5000)))
        batch.append(finished(store, i, at, rng.uniform(0.001, 30)))
        if len(batch) >= 1000:
            stats.write(stats.gather(batch))
            batch = []
    stats.write(stats.gather(batch))
    clock.now = start + 1.5 * SLOTS * 60
    key = stats.key(QUEUE)
    # Then the queue's figures are one string of the stated size
    assert redis_client.strlen(key) == BYTES_PER_QUEUE
    usage = redis_client.memory_usage(key)
    # (the allocation is 512 KiB; the key and its object add well under 1 KiB)
    assert usage is not None and usage <= 512 * 1024 + 1024, usage
    assert redis_client.keys(f"{namespace}:jobs:minutes:*") == [key.encode()]
    # And it holds the last day: about two thirds of the jobs, each minute ~46 of them
    series = stats.series(QUEUE, SLOTS)
    kept = sum(series["processed"])
    assert total * 0.6 < kept < total * 0.7
    assert all(40 <= n <= 50 for n in series["processed"][:-1])
