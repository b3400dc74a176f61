"""Per-minute figures of each queue over the last day, in fixed-size Redis strings.

Each queue has one string ``<ns>:jobs:minutes:<queue>`` of :data:`SLOTS` slots, one per
minute of a day; the minute ``m`` (minutes since the epoch) lives in slot ``m % SLOTS``.
A slot is :data:`SLOT_WORDS` unsigned 32-bit big-endian words (Redis ``BITFIELD u32``):

* the minute it holds (a slot holding an older minute is zeroed before it is reused),
* the counters :data:`COUNTERS` (processed, succeeded, failed, retried),
* a log-scale histogram of latencies (enqueue, or retry time, to start) and one of
  attempt durations, :data:`BUCKETS` buckets each, from which p50 / p95 are read.

The string is allocated whole on first write, so memory does not grow with traffic:
:data:`BYTES_PER_QUEUE` bytes (524,160) per queue for the whole day, whatever the
number of jobs; the slot size is chosen so that the allocation is exactly 512 KiB
(Redis' allocator rounds a larger string up to its next size class, 640 KiB).
Counters saturate at 2**32 - 1 per minute instead of wrapping.

Histogram buckets are half powers of two of milliseconds: bucket 0 is under 1 ms,
bucket ``i`` holds ``[2**((i-1)/2), 2**(i/2))`` ms, and the last one everything from
``2**((BUCKETS-2)/2)`` ms (about 25 minutes) up. A percentile read from it is within
one bucket, i.e. within a factor of sqrt(2), of the true value.

The job-status middleware's batch writer feeds it: :meth:`MinuteStats.gather` folds a
batch of transitions into per-(queue, minute) increments, and :meth:`MinuteStats.send`
applies the batch and the increments in one round trip (one pipeline), so recording
the figures costs no extra round trip per message.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from shared.dramatiq_redis import read_lua

logger = logging.getLogger(__name__)

#: Minutes kept per queue (one day).
SLOTS = 1440
#: Buckets of each histogram.
BUCKETS = 43
#: Counters of a slot, in their order after the minute word.
COUNTERS: tuple[str, ...] = ("processed", "succeeded", "failed", "retried")
_COUNTER_AT = {name: 1 + i for i, name in enumerate(COUNTERS)}
_LATENCY_AT = 1 + len(COUNTERS)
_DURATION_AT = _LATENCY_AT + BUCKETS
SLOT_WORDS = _DURATION_AT + BUCKETS
SLOT_BYTES = SLOT_WORDS * 4
#: Size of one queue's string: every minute of a day.
BYTES_PER_QUEUE = SLOTS * SLOT_BYTES
#: An idle queue's string expires after this long without a write.
TTL_S = 2 * 86400
#: The transition field carrying a job's latency in ms (set on its running change).
LATENCY_FIELD = "l"

_SLOT = struct.Struct(f">{SLOT_WORDS}I")

#: The script that applies :meth:`MinuteStats.gather`'s increments (``minutes.lua``).
_WRITE = read_lua("shared.jobstatus", "minutes")


def bucket_of(ms: float) -> int:
    """The histogram bucket a value (milliseconds) counts in."""
    if ms < 1:
        return 0
    return min(BUCKETS - 1, 1 + int(math.floor(2 * math.log2(ms))))


def bucket_bounds(index: int) -> tuple[float, float]:
    """Lower and upper bound (ms) of a bucket; the last one's upper bound is infinite."""
    if index == 0:
        return 0.0, 1.0
    upper = math.inf if index == BUCKETS - 1 else 2 ** (index / 2)
    return 2 ** ((index - 1) / 2), upper


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) in ms, interpolated within its bucket; None when empty."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low, high = bucket_bounds(index)
            if math.isinf(high):
                return low
            fraction = (rank - seen) / count
            if index == 0:
                return low + (high - low) * fraction
            return low * (high / low) ** fraction
        seen += count
    return bucket_bounds(BUCKETS - 1)[0]


class MinuteStats:
    """Writes and reads the per-minute figures of one namespace's queues."""

    def __init__(
        self, client: redis.Redis, namespace: str, *, clock: Callable[[], float] = time.time
    ):
        self.client = client
        self.namespace = namespace
        self.clock = clock
        self._write = client.register_script(_WRITE)
        self._loaded = False

    def key(self, queue: str) -> str:
        return f"{self.namespace}:jobs:minutes:{queue}"

    # -- writing ----------------------------------------------------------------------

    @staticmethod
    def gather(transitions: Sequence[dict[str, Any]]) -> list[list[Any]]:
        """Per (queue, minute): the words to increment and by how much (see ``_WRITE``)."""
        words: dict[tuple[str, int], dict[int, int]] = {}
        for t in transitions:
            counters, durations, latency = t.get("c"), t.get("d"), t.get(LATENCY_FIELD)
            if not counters and not durations and latency is None:
                continue
            slot = words.setdefault((t["q"], int(t["at"]) // 60_000), {})
            for name in counters or ():
                at = _COUNTER_AT.get(name)
                if at is not None:
                    slot[at] = slot.get(at, 0) + 1
            for seconds in durations or ():
                at = _DURATION_AT + bucket_of(float(seconds) * 1000)
                slot[at] = slot.get(at, 0) + 1
            if latency is not None:
                at = _LATENCY_AT + bucket_of(float(latency))
                slot[at] = slot.get(at, 0) + 1
        out = []
        for (queue, minute), incs in words.items():
            if incs:
                flat = [v for pair in sorted(incs.items()) for v in pair]
                out.append([queue, minute, flat])
        return out

    def _args(self, items: list[list[Any]]) -> list[Any]:
        compact = json.dumps(items, separators=(",", ":"))
        return [self.namespace, SLOTS, SLOT_WORDS, TTL_S * 1000, compact]

    def write(self, items: list[list[Any]]) -> None:
        """Apply increments from :meth:`gather` (one round trip)."""
        if items:
            self._write(args=self._args(items))

    def send(self, store: Any, transitions: list[dict[str, Any]], items: list[list[Any]]) -> None:
        """Apply ``transitions`` to the job-status ``store`` and ``items`` here, in one
        pipeline. Raises the store's error (after which ``items`` is empty if the
        figures were written, so a retry does not count them twice); the figures'
        own error is logged and they are dropped."""
        if not items:
            store.apply(transitions)
            return
        for _ in range(2):
            # As the broker does: skip redis-py's SCRIPT EXISTS once the scripts are
            # known to be in Redis; a Redis that lost them answers NOSCRIPT.
            loaded = self._loaded
            with self.client.pipeline(transaction=False) as pipe:
                if transitions:
                    store.apply(transitions, client=pipe, loaded=loaded)
                if loaded:
                    pipe.evalsha(self._write.sha, 0, *self._args(items))  # type: ignore[attr-defined]
                else:
                    self._write(args=self._args(items), client=pipe)
                replies = pipe.execute(raise_on_error=False)
            store_reply = replies[0] if transitions else None
            stats_reply = replies[-1]
            if loaded and (
                isinstance(store_reply, redis.exceptions.NoScriptError)
                or isinstance(stats_reply, redis.exceptions.NoScriptError)
            ):
                self._loaded = False
                if not isinstance(store_reply, Exception):
                    transitions = []
                if not isinstance(stats_reply, Exception):
                    items.clear()
                    store.apply(transitions)
                    return
                continue
            self._loaded = True
            if isinstance(stats_reply, Exception):
                logger.warning("Dropped per-minute queue figures: %s", stats_reply)
            items.clear()
            if isinstance(store_reply, Exception):
                raise store_reply
            return

    # -- reading ----------------------------------------------------------------------

    def series(self, queue: str, minutes: int) -> dict[str, Any]:
        """The last ``minutes`` minutes of ``queue`` (oldest first, the current one
        last), as columns: ``t`` (each minute's start, epoch seconds), the counters,
        and ``latency_p50_ms`` ... ``duration_p95_ms`` (null for a minute without
        samples)."""
        minutes = max(1, min(SLOTS, minutes))
        now = int(self.clock() // 60)
        first = now - minutes + 1
        start, end = first % SLOTS, now % SLOTS
        key = self.key(queue)
        pipe = self.client.pipeline(transaction=False)
        if start <= end:
            pipe.getrange(key, start * SLOT_BYTES, (end + 1) * SLOT_BYTES - 1)
        else:
            pipe.getrange(key, start * SLOT_BYTES, SLOTS * SLOT_BYTES - 1)
            pipe.getrange(key, 0, (end + 1) * SLOT_BYTES - 1)
        data = b"".join(pipe.execute())
        out: dict[str, list[Any]] = {
            name: []
            for name in (
                "t",
                *COUNTERS,
                "latency_p50_ms",
                "latency_p95_ms",
                "duration_p50_ms",
                "duration_p95_ms",
            )
        }
        for i in range(minutes):
            minute = first + i
            offset = i * SLOT_BYTES
            words: tuple[int, ...] = (0,) * SLOT_WORDS
            if len(data) >= offset + SLOT_BYTES:
                words = _SLOT.unpack_from(data, offset)
            if words[0] != minute:
                words = (minute,) + (0,) * (SLOT_WORDS - 1)
            latency = words[_LATENCY_AT : _LATENCY_AT + BUCKETS]
            duration = words[_DURATION_AT : _DURATION_AT + BUCKETS]
            out["t"].append(minute * 60)
            for name, at in _COUNTER_AT.items():
                out[name].append(words[at])
            for name, histogram in (("latency", latency), ("duration", duration)):
                for q in (50, 95):
                    value = percentile(histogram, q / 100)
                    out[f"{name}_p{q}_ms"].append(None if value is None else round(value, 3))
        return out
