"""Worker processes as operators see them: who runs, where, on what, doing what.

Each worker process keeps a hash ``<ns>:workers:<host>:<pid>`` (host, pid, queues,
threads, the jobs in flight, version, when it started and last beat) and its score in
the sorted set ``<ns>:workers`` (last beat, epoch seconds), refreshed by the job-status
middleware's beat thread every ``WORKER_BEAT_S``. A worker whose last beat is older
than ``WORKER_SEEN_WINDOW_S`` is *gone* (killed, hung, or cut off from Redis); one that
shut down cleanly says so (``stopped``). Either stays listed for :data:`KEEP_GONE_S`,
then the hash expires and the next read drops it from the set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import redis

from shared.jobstatus.store import WORKER_SEEN_WINDOW_S

#: How long a gone or stopped worker stays listed.
KEEP_GONE_S = 600.0
#: In-flight job ids listed per worker (the count is always exact).
MAX_IN_FLIGHT_LISTED = 50


def package_version() -> str:
    try:
        return metadata.version("governance-workflows")
    except metadata.PackageNotFoundError:
        return "unknown"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkerPresence:
    """Writes one worker process's presence record and reads everyone's."""

    def __init__(
        self, client: redis.Redis, namespace: str, *, clock: Callable[[], float] = time.time
    ):
        self.client = client
        self.namespace = namespace
        self.clock = clock

    def set_key(self) -> str:
        return f"{self.namespace}:workers"

    def key(self, name: str) -> str:
        return f"{self.namespace}:workers:{name}"

    def beat(
        self,
        name: str,
        *,
        host: str,
        pid: int,
        queues: Iterable[str],
        threads: int,
        in_flight: list[str],
        started_at: float,
        version: str,
        stopped: bool = False,
    ) -> None:
        now = self.clock()
        record: dict[str | bytes, str | int | float] = {
            "name": name,
            "host": host,
            "pid": pid,
            "queues": json.dumps(sorted(queues)),
            "threads": threads,
            "in_flight": len(in_flight),
            "in_flight_jobs": json.dumps(in_flight[:MAX_IN_FLIGHT_LISTED]),
            "version": version,
            "started_at": started_at,
            "heartbeat_at": now,
            "stopped_at": now if stopped else "",
        }
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.key(name), mapping=record)
        pipe.expire(self.key(name), int(WORKER_SEEN_WINDOW_S + KEEP_GONE_S))
        pipe.zadd(self.set_key(), {name: now})
        pipe.zremrangebyscore(self.set_key(), "-inf", now - WORKER_SEEN_WINDOW_S - KEEP_GONE_S)
        pipe.execute()

    def list(self) -> list[dict[str, Any]]:
        """Every worker seen lately, live ones first, then by host and pid."""
        now = self.clock()
        since = now - WORKER_SEEN_WINDOW_S - KEEP_GONE_S
        names = [_text(n) for n in self.client.zrangebyscore(self.set_key(), since, "+inf")]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.key(name))
        out = []
        for name, raw in zip(names, pipe.execute(), strict=True):
            if not raw:
                continue  # expired between the two reads
            data = {_text(k): _text(v) for k, v in raw.items()}
            beat = float(data.get("heartbeat_at") or 0)
            stopped = bool(data.get("stopped_at"))
            if stopped:
                state = "stopped"
            elif now - beat > WORKER_SEEN_WINDOW_S:
                state = "gone"
            else:
                state = "live"
            out.append(
                {
                    "name": name,
                    "host": data.get("host", ""),
                    "pid": int(data.get("pid") or 0),
                    "queues": json.loads(data.get("queues") or "[]"),
                    "threads": int(data.get("threads") or 0),
                    "in_flight": int(data.get("in_flight") or 0),
                    "in_flight_jobs": json.loads(data.get("in_flight_jobs") or "[]"),
                    "version": data.get("version", ""),
                    "started_at": float(data.get("started_at") or 0),
                    "heartbeat_at": beat,
                    "seconds_since_heartbeat": round(max(0.0, now - beat), 1),
                    "state": state,
                }
            )
        out.sort(key=lambda w: (w["state"] != "live", w["host"], w["pid"]))
        return out
