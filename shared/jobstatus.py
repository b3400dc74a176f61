"""Job status records in Redis: every message's life, written by a Dramatiq middleware.

Both services read these records (the api's ``/jobs``, the workflow service's ops views);
only :class:`JobStatus`, which every broker built by :mod:`shared.broker` carries, writes
them. A record is a Redis hash ``<ns>:job:<message id>`` with a short timeline list
(``:events``) and a set of child jobs (``:children``). Sorted sets per (queue, state),
and per (tenant, queue, state), index the records by the time they entered the state.

Every transition is one Lua call (one round trip): it moves the record between the
state indexes, appends to the timeline, links a child to its parent, bumps the queue's
counters and duration histogram, and prunes the oldest succeeded/failed records beyond
the queue's retention, so Redis never grows without bound. Records of queued, running
and retrying jobs are never pruned.

States, and who writes them:

* ``queued``   - ``before_enqueue`` in the sending process, so the record exists before
  any worker can fetch the message.
* ``running``  - ``before_process_message``; ``attempt`` is the run number (1 = first).
* ``retrying`` - ``before_enqueue`` of the Retries middleware's re-enqueue of the same
  message: the failed attempt's error and the time of the next attempt.
* ``succeeded`` - ``after_process_message`` without an exception.
* ``failed``   - ``after_nack``: retries exhausted or not retryable; the message is in
  the queue's dead-letter set (``<ns>:<queue>.XQ``).

Writing a record never breaks message handling: a Redis error is logged and dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import CurrentMessage, Middleware, Retries
from dramatiq.results import Results
from pydantic import BaseModel, ConfigDict

from shared.queues import CATALOG, base_queue_name

logger = logging.getLogger(__name__)

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATES: tuple[str, ...] = (QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED)
#: States whose records retention prunes; the others are waiting or running jobs.
TERMINAL_STATES: tuple[str, ...] = (SUCCEEDED, FAILED)

#: Longest error message kept; the type and the first words are what an operator needs,
#: and a long message is usually a payload or a response body that does not belong here.
MAX_ERROR_CHARS = 300
MAX_PROGRESS_MESSAGE_CHARS = 200
#: Timeline entries kept per job (a 10-attempt job needs about 21).
MAX_EVENTS = 64
#: Upper bounds (seconds) of the duration histogram's buckets.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
)
#: Counters kept per queue (``<ns>:jobs:stats:<queue>`` hash fields).
COUNTERS: tuple[str, ...] = ("enqueued", "processed", "succeeded", "failed", "retried")
#: How often a worker process says which queues it consumes, and how long that holds.
WORKER_BEAT_S = 10.0
WORKER_SEEN_WINDOW_S = 60.0

_TRANSITION = """
local ns = ARGV[1]
local id = ARGV[2]
local queue = ARGV[3]
local state = ARGV[4]
local now = tonumber(ARGV[5])
local tenant = ARGV[6]
local keep = tonumber(ARGV[7])
local event = ARGV[8]
local parent = ARGV[9]
local stats = ARGV[10]
local bucket = ARGV[11]
local duration = ARGV[12]
local must_exist = ARGV[13]
local max_events = tonumber(ARGV[14])

local job = ns .. ":job:" .. id
local function index(q, s) return ns .. ":jobs:" .. q .. ":" .. s end
local function tindex(t, q, s) return ns .. ":jobs:t:" .. t .. ":" .. q .. ":" .. s end

local old = redis.call("hmget", job, "state", "tenant", "queue")
if must_exist == "1" and not old[1] then
  return 0
end

if state ~= "" then
  if old[1] and (old[1] ~= state or old[3] ~= queue) then
    redis.call("zrem", index(old[3], old[1]), id)
    if old[2] and old[2] ~= "" then
      redis.call("zrem", tindex(old[2], old[3], old[1]), id)
    end
  end
  redis.call("zadd", index(queue, state), now, id)
  if tenant ~= "" then
    redis.call("zadd", tindex(tenant, queue, state), now, id)
  end
end

if #ARGV > 14 then
  redis.call("hset", job, unpack(ARGV, 15))
end
if event ~= "" then
  redis.call("rpush", job .. ":events", event)
  redis.call("ltrim", job .. ":events", -max_events, -1)
end
if parent ~= "" then
  redis.call("zadd", ns .. ":job:" .. parent .. ":children", "NX", now, id)
end

local stats_key = ns .. ":jobs:stats:" .. queue
for name in string.gmatch(stats, "%S+") do
  redis.call("hincrby", stats_key, name, 1)
end
if bucket ~= "" then
  redis.call("hincrby", stats_key, bucket, 1)
  redis.call("hincrby", stats_key, "duration_count", 1)
  redis.call("hincrbyfloat", stats_key, "duration_sum", duration)
end

if state ~= "" and keep >= 0 then
  local idx = index(queue, state)
  local excess = redis.call("zcard", idx) - keep
  if excess > 0 then
    local victims = redis.call("zrange", idx, 0, excess - 1)
    for _, vid in ipairs(victims) do
      local vkey = ns .. ":job:" .. vid
      local v = redis.call("hmget", vkey, "tenant", "parent", "broker_id")
      if v[1] and v[1] ~= "" then
        redis.call("zrem", tindex(v[1], queue, state), vid)
      end
      if v[2] and v[2] ~= "" then
        redis.call("zrem", ns .. ":job:" .. v[2] .. ":children", vid)
      end
      if state == "failed" and v[3] and v[3] ~= "" then
        -- The dead-letter set mirrors the kept failed records (Bull's removeOnFail).
        redis.call("zrem", ns .. ":" .. queue .. ".XQ", v[3])
        redis.call("hdel", ns .. ":" .. queue .. ".XQ.msgs", v[3])
      end
      redis.call("del", vkey, vkey .. ":events", vkey .. ":children")
    end
    redis.call("zremrangebyrank", idx, 0, excess - 1)
  end
end
return 1
"""

_PROGRESS = """
if redis.call("exists", KEYS[1]) == 1 then
  redis.call("hset", KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""

_DELETE = """
local ns = ARGV[1]
local id = ARGV[2]
local job = ns .. ":job:" .. id
local v = redis.call("hmget", job, "state", "tenant", "queue", "parent")
if not v[1] then
  return 0
end
redis.call("zrem", ns .. ":jobs:" .. v[3] .. ":" .. v[1], id)
if v[2] and v[2] ~= "" then
  redis.call("zrem", ns .. ":jobs:t:" .. v[2] .. ":" .. v[3] .. ":" .. v[1], id)
end
if v[4] and v[4] ~= "" then
  redis.call("zrem", ns .. ":job:" .. v[4] .. ":children", id)
end
redis.call("del", job, job .. ":events", job .. ":children")
return 1
"""


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not hand out."""


def now_ms(clock: Callable[[], float] = time.time) -> int:
    return int(clock() * 1000)


def iso(ms: int | str | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC timestamp (None stays None)."""
    if ms in (None, ""):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds")


def error_summary(exc: BaseException | None) -> tuple[str, str]:
    """Type and a short message of an error, looking through Dramatiq's Retry wrapper.

    :class:`shared.broker.CatalogRetries` turns an unexpected error into
    ``Retry(delay=...)`` with the original as ``__cause__``; the record shows the
    original, since that is what an operator has to fix.
    """
    if exc is None:
        return "", ""
    cause = exc.__cause__ if isinstance(exc, dramatiq.Retry) and exc.__cause__ else exc
    message = str(cause)
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "\u2026"
    return type(cause).__name__, message


def duration_bucket(seconds: float) -> str:
    """The histogram field a duration counts in (upper bound, non-cumulative)."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return f"le:{bound:g}"
    return "le:+Inf"


def encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{int(score)}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, job_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":", 1)
        return int(score), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text not in (None, "") else None


class JobStatusStore:
    """Reads and writes job records under one namespace.

    ``keep_succeeded`` / ``keep_failed`` override the catalog's per-queue retention
    (for every queue) when given; queues outside the catalog keep the catalog defaults.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        keep_succeeded: int | None = None,
        keep_failed: int | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.namespace = namespace
        self.keep_succeeded = keep_succeeded
        self.keep_failed = keep_failed
        self.clock = clock
        self._transition = client.register_script(_TRANSITION)
        self._progress = client.register_script(_PROGRESS)
        self._delete = client.register_script(_DELETE)

    # -- keys -------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.namespace}:job:{job_id}"

    def index_key(self, queue: str, state: str, tenant: str | None = None) -> str:
        if tenant:
            return f"{self.namespace}:jobs:t:{tenant}:{queue}:{state}"
        return f"{self.namespace}:jobs:{queue}:{state}"

    def stats_key(self, queue: str) -> str:
        return f"{self.namespace}:jobs:stats:{queue}"

    def workers_key(self, queue: str) -> str:
        return f"{self.namespace}:jobs:workers:{queue}"

    def keep(self, queue: str, state: str) -> int:
        """How many records of ``state`` the store keeps for ``queue`` (-1: all)."""
        spec = CATALOG.get(queue)
        if state == SUCCEEDED:
            if self.keep_succeeded is not None:
                return self.keep_succeeded
            return spec.keep_succeeded if spec else 100
        if state == FAILED:
            if self.keep_failed is not None:
                return self.keep_failed
            return spec.keep_failed if spec else 1000
        return -1

    # -- writing ----------------------------------------------------------------------

    def transition(
        self,
        job_id: str,
        queue: str,
        *,
        state: str = "",
        tenant: str = "",
        fields: dict[str, Any] | None = None,
        event: dict[str, Any] | None = None,
        parent: str = "",
        stats: Iterable[str] = (),
        duration_s: float | None = None,
        must_exist: bool = False,
        at_ms: int | None = None,
    ) -> bool:
        """Apply one change to a record in one round trip; see the module docstring."""
        at = at_ms if at_ms is not None else now_ms(self.clock)
        flat: list[Any] = []
        for name, value in (fields or {}).items():
            flat.extend((name, "" if value is None else value))
        if state:
            flat.extend(("state", state, "updated_at", at))
        if parent:
            flat.extend(("parent", parent))
        args = [
            self.namespace,
            job_id,
            queue,
            state,
            at,
            tenant or "",
            self.keep(queue, state) if state else -1,
            json.dumps(event, separators=(",", ":")) if event else "",
            parent or "",
            " ".join(stats),
            duration_bucket(duration_s) if duration_s is not None else "",
            repr(duration_s) if duration_s is not None else "0",
            "1" if must_exist else "0",
            MAX_EVENTS,
            *flat,
        ]
        return bool(self._transition(args=args))

    def set_progress(self, job_id: str, percent: int, message: str = "") -> bool:
        percent = max(0, min(100, int(percent)))
        return bool(
            self._progress(
                keys=[self.job_key(job_id)],
                args=[
                    "progress",
                    percent,
                    "progress_message",
                    message[:MAX_PROGRESS_MESSAGE_CHARS],
                    "progress_at",
                    now_ms(self.clock),
                ],
            )
        )

    def delete(self, job_id: str) -> bool:
        """Drop a record, its timeline and its children set, and unlink it from its parent."""
        return bool(self._delete(args=[self.namespace, job_id]))

    # -- reading ----------------------------------------------------------------------

    def raw(self, job_id: str) -> dict[str, str] | None:
        data = self.client.hgetall(self.job_key(job_id))
        if not data:
            return None
        return {_text(k) or "": _text(v) or "" for k, v in data.items()}

    def get(self, job_id: str, *, children_limit: int = 50) -> dict[str, Any] | None:
        """The public record with its timeline and a summary of its children."""
        key = self.job_key(job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.lrange(f"{key}:events", 0, -1)
        pipe.zrange(f"{key}:children", 0, -1)
        data, events, child_ids = pipe.execute()
        if not data:
            return None
        record = present({_text(k) or "": _text(v) or "" for k, v in data.items()})
        record["timeline"] = [_present_event(json.loads(e)) for e in events]
        record["children"] = self.children_summary(
            [_text(c) or "" for c in child_ids], limit=children_limit, tenant=record["tenant_id"]
        )
        return record

    def children_summary(
        self, child_ids: list[str], *, limit: int = 50, tenant: str | None = None
    ) -> dict[str, Any]:
        """Counts per state and the first ``limit`` children (of ``tenant`` only, if given)."""
        pipe = self.client.pipeline(transaction=False)
        for child in child_ids:
            pipe.hmget(self.job_key(child), "state", "actor", "queue", "progress", "tenant")
        by_state: dict[str, int] = {}
        items: list[dict[str, Any]] = []
        total = 0
        for child, (state, actor, queue, progress, child_tenant) in zip(
            child_ids, pipe.execute() if child_ids else [], strict=True
        ):
            if tenant and state is not None and (_text(child_tenant) or None) != tenant:
                continue
            total += 1
            state_text = _text(state) or "pruned"
            by_state[state_text] = by_state.get(state_text, 0) + 1
            if len(items) < limit:
                items.append(
                    {
                        "id": child,
                        "state": state_text,
                        "actor": _text(actor),
                        "queue": _text(queue),
                        "progress": _int(progress),
                        "href": f"/jobs/{child}",
                    }
                )
        return {"total": total, "by_state": by_state, "items": items}

    def list_jobs(
        self,
        *,
        queues: Iterable[str],
        states: Iterable[str] = STATES,
        tenant: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Records newest first (by when they entered their state), and the next cursor.

        The cursor is (score, id) of the last item; ties on the score are broken by id,
        so pages never repeat or skip a record that stays in its state.
        """
        after = decode_cursor(cursor) if cursor else None
        keys = [self.index_key(q, s, tenant) for q in queues for s in states]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            if after is None:
                pipe.zrevrangebyscore(key, "+inf", "-inf", start=0, num=limit + 1, withscores=True)
            else:
                # Strictly older records, plus every record tied with the cursor's score
                # (the ids decide which of those come after the cursor).
                pipe.zrevrangebyscore(
                    key, f"({after[0]}", "-inf", start=0, num=limit + 1, withscores=True
                )
                pipe.zrangebyscore(key, after[0], after[0], withscores=True)
        fetched = pipe.execute()
        results = (
            fetched
            if after is None
            else [older + tied for older, tied in zip(fetched[0::2], fetched[1::2], strict=True)]
        )
        candidates: list[tuple[int, str]] = []
        for rows in results:
            for member, score in rows:
                item = (int(score), _text(member) or "")
                if after is None or item < after:
                    candidates.append(item)
        candidates.sort(reverse=True)
        page = candidates[:limit]
        pipe = self.client.pipeline(transaction=False)
        for _, job_id in page:
            pipe.hgetall(self.job_key(job_id))
        items = []
        for _entry, data in zip(page, pipe.execute() if page else [], strict=True):
            if data:
                items.append(present({_text(k) or "": _text(v) or "" for k, v in data.items()}))
        next_cursor = encode_cursor(*page[-1]) if len(candidates) > limit else None
        return items, next_cursor

    def counts(self, queue: str) -> dict[str, int]:
        """Records kept per state for one queue."""
        pipe = self.client.pipeline(transaction=False)
        for state in STATES:
            pipe.zcard(self.index_key(queue, state))
        return dict(zip(STATES, pipe.execute(), strict=True))

    def stats(self, queue: str) -> dict[str, float]:
        """Counters and raw histogram fields of one queue."""
        data = self.client.hgetall(self.stats_key(queue))
        return {_text(k) or "": float(v) for k, v in data.items()}

    def workers_seen(self, queue: str, window_s: float = WORKER_SEEN_WINDOW_S) -> list[str]:
        since = self.clock() - window_s
        return [
            _text(w) or ""
            for w in self.client.zrangebyscore(self.workers_key(queue), since, "+inf")
        ]

    def beat(self, worker: str, queues: Iterable[str]) -> None:
        """Say that ``worker`` consumes ``queues`` now; forget workers long gone."""
        now = self.clock()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zadd(self.workers_key(queue), {worker: now})
            pipe.zremrangebyscore(self.workers_key(queue), "-inf", now - 10 * WORKER_SEEN_WINDOW_S)
        pipe.execute()

    def forget_worker(self, worker: str, queues: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zrem(self.workers_key(queue), worker)
        pipe.execute()


def present(data: dict[str, str]) -> dict[str, Any]:
    """The public shape of a stored record (times as ISO 8601 UTC)."""
    error = None
    if data.get("error_type"):
        error = {"type": data["error_type"], "message": data.get("error_message", "")}
    progress = None
    if data.get("progress", "") != "":
        progress = {
            "percent": int(data["progress"]),
            "message": data.get("progress_message", ""),
            "at": iso(data.get("progress_at")),
        }
    job_id = data.get("id", "")
    return {
        "id": job_id,
        "href": f"/jobs/{job_id}",
        "queue": data.get("queue"),
        "actor": data.get("actor"),
        "tenant_id": data.get("tenant") or None,
        "state": data.get("state"),
        "attempt": _int(data.get("attempt")) or 0,
        "max_attempts": _int(data.get("max_attempts")),
        "enqueued_at": iso(data.get("enqueued_at")),
        "started_at": iso(data.get("started_at")),
        "finished_at": iso(data.get("finished_at")),
        "updated_at": iso(data.get("updated_at")),
        "eta": iso(data.get("eta")),
        "next_retry_at": iso(data.get("next_retry_at")),
        "error": error,
        "progress": progress,
        "result": {"backend_key": data["result_key"]} if data.get("result_key") else None,
        "parent": data.get("parent") or None,
        "retry_of": data.get("retry_of") or None,
        "retried_as": data.get("retried_as") or None,
    }


def _present_event(event: dict[str, Any]) -> dict[str, Any]:
    for name in ("at", "next_retry_at", "eta"):
        if name in event:
            event[name] = iso(event[name])
    return event


# -- the public shape, for the OpenAPI documents of both services ----------------------


class JobErrorOut(BaseModel):
    type: str
    message: str


class JobProgressOut(BaseModel):
    percent: int
    message: str
    at: str | None


class JobResultOut(BaseModel):
    #: Key of the result in Dramatiq's Results backend (the record never copies it).
    backend_key: str


class JobOut(BaseModel):
    id: str
    href: str
    queue: str | None
    actor: str | None
    tenant_id: str | None
    state: str | None
    attempt: int
    max_attempts: int | None
    enqueued_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    eta: str | None
    next_retry_at: str | None
    error: JobErrorOut | None
    progress: JobProgressOut | None
    result: JobResultOut | None
    parent: str | None
    retry_of: str | None
    retried_as: str | None


class TimelineEntryOut(BaseModel):
    """One step of a job's life; retrying entries carry the error and the next attempt."""

    model_config = ConfigDict(extra="allow")

    state: str
    at: str | None
    attempt: int | None = None


class ChildOut(BaseModel):
    id: str
    state: str
    actor: str | None
    queue: str | None
    progress: int | None
    href: str


class ChildrenOut(BaseModel):
    total: int
    by_state: dict[str, int]
    items: list[ChildOut]


class JobDetailOut(JobOut):
    timeline: list[TimelineEntryOut]
    children: ChildrenOut


class JobPageOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class _ThreadState(threading.local):
    #: The message this worker thread is processing, between before_process_message
    #: and its ack/nack.
    current: Any = None
    attempt: int = 0
    started: float = 0.0
    #: (message id, error type, error message) of the attempt that just raised.
    error: tuple[str, str, str] | None = None
    #: True in a worker's consumer threads: their enqueues move due delayed messages.
    consumer: bool = False


class JobStatus(Middleware):
    """Records each message's life in a :class:`JobStatusStore`.

    Must come after Retries, CurrentMessage and Results in the middleware list: its
    ``after_process_message`` then runs before Retries' (Dramatiq runs "after" hooks
    in reverse), so it can note the error that Retries is about to act on.
    """

    def __init__(self, store: JobStatusStore):
        self.store = store
        self.local = _ThreadState()
        self._max_attempts: dict[tuple[str, str], int | None] = {}
        self._results_backend: Any = None
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._worker_queues: list[str] = []
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    # -- helpers ----------------------------------------------------------------------

    def _write(self, job_id: str, queue: str, **kwargs: Any) -> None:
        try:
            self.store.transition(job_id, queue, **kwargs)
        except redis.RedisError as exc:
            logger.warning("Could not record the status of job %s: %s", job_id, exc)

    def max_attempts(self, broker: dramatiq.Broker, message: dramatiq.Message) -> int | None:
        override = message.options.get("max_retries")
        if override is not None:
            return int(override) + 1
        cache_key = (message.queue_name, message.actor_name)
        if cache_key not in self._max_attempts:
            retries: int | None = None
            with contextlib.suppress(ActorNotFound):
                retries = broker.get_actor(message.actor_name).options.get("max_retries")
            if retries is None:
                spec = CATALOG.get(base_queue_name(message.queue_name))
                if spec is not None:
                    retries = spec.max_retries
            if retries is None:
                retries = next(
                    (m.max_retries for m in broker.middleware if isinstance(m, Retries)), None
                )
            self._max_attempts[cache_key] = None if retries is None else retries + 1
        return self._max_attempts[cache_key]

    def _result_key(self, broker: dramatiq.Broker, message: dramatiq.Message) -> str:
        if self._results_backend is None:
            results = next((m for m in broker.middleware if isinstance(m, Results)), None)
            self._results_backend = results or False
        results = self._results_backend
        if not results:
            return ""
        store, _ = results._lookup_options(broker, message)
        return results.backend.build_message_key(message) if store else ""

    @staticmethod
    def _base(message: dramatiq.Message) -> dict[str, Any]:
        return {
            "id": message.message_id,
            "queue": base_queue_name(message.queue_name),
            "actor": message.actor_name,
            "tenant": message.options.get("tenant_id") or "",
            "broker_id": message.options.get("redis_message_id", ""),
        }

    def _error_of(self, message: Any) -> tuple[str, str]:
        stashed = self.local.error
        if stashed and stashed[0] == message.message_id:
            return stashed[1], stashed[2]
        return error_summary(getattr(message, "_exception", None))

    # -- sending ----------------------------------------------------------------------

    def before_enqueue(self, broker, message, delay):
        queue = base_queue_name(message.queue_name)
        tenant = message.options.get("tenant_id") or ""
        at = now_ms(self.store.clock)
        fields = self._base(message)
        current = self.local.current
        if self.local.consumer and message.options.get("redis_message_id"):
            # A worker moving a due delayed message onto its queue: same job, still
            # waiting; only where the message lives changes.
            self._write(
                message.message_id,
                queue,
                fields={"broker_id": fields["broker_id"]},
                must_exist=True,
                at_ms=at,
            )
            return
        if current is not None and current.message_id == message.message_id:
            # Retries re-enqueueing the message that just failed.
            error_type, error_message = self._error_of(current)
            eta = message.options.get("eta") or at + (delay or 0)
            attempt = message.options.get("retries", 1)
            fields.update(
                {
                    "error_type": error_type,
                    "error_message": error_message,
                    "next_retry_at": eta,
                    "finished_at": at,
                }
            )
            duration = time.monotonic() - self.local.started if self.local.started else None
            self._write(
                message.message_id,
                queue,
                state=RETRYING,
                tenant=tenant,
                fields=fields,
                event={
                    "state": RETRYING,
                    "at": at,
                    "attempt": attempt,
                    "next_attempt": attempt + 1,
                    "next_retry_at": eta,
                    "delay_ms": delay or 0,
                    "error": {"type": error_type, "message": error_message},
                },
                stats=("processed", "retried"),
                duration_s=duration,
                at_ms=at,
            )
            self.local.started = 0.0
            return
        parent = current.message_id if current is not None else ""
        parent = parent or message.options.get("parent_job_id", "")
        fields.update(
            {
                "attempt": message.options.get("retries", 0),
                "max_attempts": self.max_attempts(broker, message) or "",
                "enqueued_at": at,
                "eta": message.options.get("eta", ""),
                "retry_of": message.options.get("retry_of", ""),
                "started_at": "",
                "finished_at": "",
                "next_retry_at": "",
                "error_type": "",
                "error_message": "",
                "progress": "",
                "result_key": "",
            }
        )
        event: dict[str, Any] = {"state": QUEUED, "at": at}
        if message.options.get("eta"):
            event["eta"] = message.options["eta"]
        if fields["retry_of"]:
            event["retry_of"] = fields["retry_of"]
        self._write(
            message.message_id,
            queue,
            state=QUEUED,
            tenant=tenant,
            fields=fields,
            event=event,
            parent=parent,
            stats=("enqueued",),
            at_ms=at,
        )

    # -- processing -------------------------------------------------------------------

    def after_consumer_thread_boot(self, broker, thread):
        self.local.consumer = True

    def before_process_message(self, broker, message):
        _active.recorder = self
        self.local.current = message
        self.local.error = None
        self.local.started = time.monotonic()
        at = now_ms(self.store.clock)
        attempt = self.local.attempt = message.options.get("retries", 0) + 1
        fields = self._base(message)
        fields.update(
            {
                "attempt": attempt,
                "max_attempts": self.max_attempts(broker, message) or "",
                "started_at": at,
                "finished_at": "",
                "next_retry_at": "",
            }
        )
        self._write(
            message.message_id,
            fields["queue"],
            state=RUNNING,
            tenant=fields["tenant"],
            fields=fields,
            event={"state": RUNNING, "at": at, "attempt": attempt},
            at_ms=at,
        )

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            error_type, error_message = error_summary(exception)
            self.local.error = (message.message_id, error_type, error_message)
            return
        if message.failed:
            return
        at = now_ms(self.store.clock)
        fields = self._base(message)
        fields.update(
            {
                "finished_at": at,
                "result_key": self._result_key(broker, message),
                "next_retry_at": "",
            }
        )
        duration = time.monotonic() - self.local.started if self.local.started else None
        self.local.started = 0.0
        self._write(
            message.message_id,
            fields["queue"],
            state=SUCCEEDED,
            tenant=fields["tenant"],
            fields=fields,
            event={"state": SUCCEEDED, "at": at, "attempt": message.options.get("retries", 0) + 1},
            stats=("processed", "succeeded"),
            duration_s=duration,
            at_ms=at,
        )

    def after_skip_message(self, broker, message):
        if message.failed:
            return  # after_nack records it
        at = now_ms(self.store.clock)
        fields = self._base(message)
        fields.update({"finished_at": at, "next_retry_at": ""})
        self._write(
            message.message_id,
            fields["queue"],
            state=SUCCEEDED,
            tenant=fields["tenant"],
            fields=fields,
            event={"state": SUCCEEDED, "at": at, "skipped": True},
            stats=("processed", "succeeded"),
            at_ms=at,
        )

    def after_nack(self, broker, message):
        at = now_ms(self.store.clock)
        error_type, error_message = self._error_of(message)
        fields = self._base(message)
        current = self.local.current
        if current is not None and current.message_id == message.message_id:
            attempt = self.local.attempt
        else:  # failed before it ran (unknown actor, skipped): the attempts made so far
            attempt = message.options.get("retries", 0)
        fields.update(
            {
                "attempt": attempt,
                "finished_at": at,
                "next_retry_at": "",
                "error_type": error_type or "Failed",
                "error_message": error_message,
            }
        )
        duration = time.monotonic() - self.local.started if self.local.started else None
        stats = ("processed", "failed") if self.local.started else ("failed",)
        self._write(
            message.message_id,
            fields["queue"],
            state=FAILED,
            tenant=fields["tenant"],
            fields=fields,
            event={
                "state": FAILED,
                "at": at,
                "attempt": attempt,
                "error": {"type": fields["error_type"], "message": error_message},
            },
            stats=stats,
            duration_s=duration,
            at_ms=at,
        )
        self._done()

    def after_ack(self, broker, message):
        self._done()

    def _done(self) -> None:
        self.local.current = None
        self.local.error = None
        self.local.started = 0.0

    # -- worker presence --------------------------------------------------------------

    def after_worker_boot(self, broker, worker):
        self._worker_queues = sorted({base_queue_name(q) for q in worker.consumers})
        self._beat_stop.clear()
        self._beat_thread = threading.Thread(
            target=self._beat_loop, name="job-status-beat", daemon=True
        )
        self._beat_thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._beat_stop.set()
        try:
            self.store.forget_worker(self.worker_name, self._worker_queues)
        except redis.RedisError:
            logger.debug("could not unregister the worker", exc_info=True)

    def _beat_loop(self) -> None:
        while not self._beat_stop.is_set():
            try:
                self.store.beat(self.worker_name, self._worker_queues)
            except redis.RedisError as exc:
                logger.warning("Could not record worker presence: %s", exc)
            self._beat_stop.wait(WORKER_BEAT_S)


class _Active(threading.local):
    #: The middleware that recorded this thread's current message as running.
    recorder: JobStatus | None = None


_active = _Active()


def report_progress(percent: int, message: str = "") -> None:
    """Record the current message's progress (0-100) and a short message.

    A no-op outside a message, or when the broker records no job status; a Redis error
    is logged, never raised into the actor.
    """
    current = CurrentMessage.get_current_message()
    if current is None:
        return None
    recorder = _active.recorder
    if recorder is None:
        return None
    try:
        recorder.store.set_progress(current.message_id, percent, message)
    except redis.RedisError as exc:
        logger.warning("Could not record progress of job %s: %s", current.message_id, exc)
    return None
