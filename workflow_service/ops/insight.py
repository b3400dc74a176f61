"""Operations views over time and of the fleet: ``/stats``, ``/workers``, ``/schedules``,
and the series for alerting that ``/metrics`` adds (oldest ready message per queue,
scheduler leader present).

Who sees what: ``/stats`` and ``/workers`` count and name processes shared by every
tenant, so they are for operators only. Scheduled workflows are tenant data: a tenant's
admin lists its own tenant's (with their next fire times and last run), an operator
every tenant's; which scheduler process holds the leader lock is fleet detail, shown
to operators only (``leader`` is null for an admin).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import falcon
import peewee
import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import BaseModel

from shared.dramatiq_redis import Layout
from shared.http import ApiError, Param, bad_parameter, parse_choice, require_operator, route
from shared.jobstatus.stats import BYTES_PER_QUEUE, SLOTS, MinuteStats
from shared.jobstatus.workers import WorkerPresence
from shared.queues import QUEUE_NAMES
from workflow_service.definitions import cron_trigger
from workflow_service.kernel.schedules import leader_key, next_fire_times
from workflow_service.models import Execution, Workflow
from workflow_service.ops.resources import OPS_READ_ROLES, ops_reader, ops_scope

log = logging.getLogger(__name__)

#: Most scheduled workflows listed in one answer.
MAX_SCHEDULES = 500


def _redis_down(exc: redis.RedisError) -> ApiError:
    return ApiError(falcon.HTTP_503, "Redis unavailable", f"The queue store did not answer: {exc}.")


def _iso(value: float | datetime | None) -> str | None:
    if value is None or value == 0:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


# -- /stats ---------------------------------------------------------------------------


class QueueSeriesOut(BaseModel):
    queue: str
    #: Each minute's start (epoch seconds), oldest first; the current minute last.
    t: list[int]
    processed: list[int]
    succeeded: list[int]
    failed: list[int]
    retried: list[int]
    latency_p50_ms: list[float | None]
    latency_p95_ms: list[float | None]
    duration_p50_ms: list[float | None]
    duration_p95_ms: list[float | None]


class StatsOut(BaseModel):
    minutes: int
    #: Redis memory each queue's day of figures takes, whatever the traffic.
    bytes_per_queue: int
    items: list[QueueSeriesOut]


def _stats_operator(req):
    return require_operator(req, "Figures over time count every tenant's jobs")


def _workers_operator(req):
    return require_operator(req, "Worker processes serve every tenant")


class StatsResource:
    docs = {
        "GET": route(
            summary="Per queue, per minute (last 24 h at most): processed, succeeded, "
            "failed, retried; latency (enqueue to start) and duration p50 / p95",
            response=StatsOut,
            roles=("operator",),
            authorize=_stats_operator,
            params=(
                Param("queue", schema={"enum": list(QUEUE_NAMES)}, description="Default: all."),
                Param("minutes", schema={"type": "integer"}, description="1-1440, default 60"),
            ),
            errors=(400, 503),
        )
    }

    def __init__(self, stats: MinuteStats):
        self.stats = stats

    def on_get(self, req, resp):
        queue = parse_choice(req, "queue", QUEUE_NAMES)
        raw = req.get_param("minutes") or "60"
        try:
            minutes = int(raw)
        except ValueError:
            raise bad_parameter("minutes", f"'minutes' must be an integer, got {raw!r}.") from None
        if not 1 <= minutes <= SLOTS:
            raise bad_parameter("minutes", f"'minutes' must be between 1 and {SLOTS}.")
        queues = [queue] if queue else list(QUEUE_NAMES)
        try:
            items = [{"queue": q, **self.stats.series(q, minutes)} for q in queues]
        except redis.RedisError as exc:
            raise _redis_down(exc) from None
        resp.media = {"minutes": minutes, "bytes_per_queue": BYTES_PER_QUEUE, "items": items}


# -- /workers -------------------------------------------------------------------------


class WorkerOut(BaseModel):
    name: str
    host: str
    pid: int
    queues: list[str]
    threads: int
    in_flight: int
    #: Up to 50 of the job ids in flight.
    in_flight_jobs: list[str]
    version: str
    started_at: str | None
    heartbeat_at: str | None
    seconds_since_heartbeat: float
    #: ``live``; ``gone`` (no heartbeat for a minute); ``stopped`` (shut down cleanly).
    state: str


class WorkersOut(BaseModel):
    items: list[WorkerOut]


class WorkerCollection:
    docs = {
        "GET": route(
            summary="Worker processes: host, pid, queues, threads, jobs in flight, last "
            "heartbeat, version; gone and stopped ones for ten minutes",
            response=WorkersOut,
            roles=("operator",),
            authorize=_workers_operator,
            errors=(503,),
        )
    }

    def __init__(self, presence: WorkerPresence):
        self.presence = presence

    def on_get(self, req, resp):
        try:
            workers = self.presence.list()
        except redis.RedisError as exc:
            raise _redis_down(exc) from None
        for worker in workers:
            worker["started_at"] = _iso(worker["started_at"])
            worker["heartbeat_at"] = _iso(worker["heartbeat_at"])
        resp.media = {"items": workers}


# -- /schedules -----------------------------------------------------------------------


class LastRunOut(BaseModel):
    execution_id: str
    status: str
    created_at: str | None
    finished_at: str | None
    error: str | None


class ScheduleOut(BaseModel):
    workflow_id: str
    name: str
    tenant: str
    status: str
    version: int
    cron: str
    timezone: str
    entity_id: str
    #: The next three fire times (UTC), as the scheduler's cron job computes them;
    #: empty for an inactive workflow (the scheduler only fires active ones).
    next_fire_times: list[str]
    last_run: LastRunOut | None
    #: Why no fire times could be computed (an unusable cron line or time zone).
    error: str | None


class LeaderOut(BaseModel):
    #: The lock's value: ``<host>:<pid>:<random>`` of the scheduler process leading.
    holder: str
    host: str
    pid: int | None
    expires_in_ms: int


class SchedulesOut(BaseModel):
    #: The tenant listed; null: every tenant (an operator's view).
    tenant: str | None
    #: Which scheduler process holds the leader lock (operators only; null for an
    #: admin, and for an operator when no scheduler leads).
    leader: LeaderOut | None
    items: list[ScheduleOut]


def read_leader(client: redis.Redis, namespace: str) -> dict[str, Any] | None:
    pipe = client.pipeline(transaction=False)
    pipe.get(leader_key(namespace))
    pipe.pttl(leader_key(namespace))
    value, ttl = pipe.execute()
    if value is None:
        return None
    holder = value.decode() if isinstance(value, bytes) else str(value)
    parts = holder.split(":")
    pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    return {
        "holder": holder,
        "host": parts[0] if pid is not None else "",
        "pid": pid,
        "expires_in_ms": max(0, int(ttl)),
    }


class ScheduleCollection:
    docs = {
        "GET": route(
            summary="Scheduled workflows with their cron line, time zone, next three fire "
            "times and last run (an admin: its own tenant's); operators also see which "
            "scheduler process leads",
            response=SchedulesOut,
            roles=OPS_READ_ROLES,
            authorize=ops_reader,
            errors=(503,),
        )
    }

    def __init__(self, client: redis.Redis, namespace: str, clock: Callable[[], datetime]):
        self.client = client
        self.namespace = namespace
        self.clock = clock

    def on_get(self, req, resp):
        scope = ops_scope(req, read=True)
        leader = None
        if scope is None:
            try:
                leader = read_leader(self.client, self.namespace)
            except redis.RedisError as exc:
                raise _redis_down(exc) from None
        resp.media = {"tenant": scope, "leader": leader, "items": self._schedules(scope)}

    def _schedules(self, scope: str | None) -> list[dict[str, Any]]:
        query = Workflow.select().where(Workflow.trigger == "scheduled")
        if scope is not None:
            query = query.where(Workflow.tenant_id == scope)
        rows = list(query.order_by(Workflow.tenant_id, Workflow.name).limit(MAX_SCHEDULES))
        last = _last_runs([row.id for row in rows])
        now = self.clock()
        items = []
        for row in rows:
            config = row.trigger_config or {}
            cron, tz = str(config.get("cron", "")), str(config.get("timezone", "UTC"))
            times: list[str] = []
            error = None
            if row.status == "active":
                try:
                    trigger = cron_trigger(cron, tz)
                    times = [_iso(t) or "" for t in next_fire_times(trigger, now, 3)]
                except (ValueError, LookupError) as exc:
                    error = f"unusable schedule: {exc}"
            run = last.get(row.id)
            items.append(
                {
                    "workflow_id": row.id,
                    "name": row.name,
                    "tenant": row.tenant_id,
                    "status": row.status,
                    "version": row.version,
                    "cron": cron,
                    "timezone": tz,
                    "entity_id": str(config.get("entity_id", "")),
                    "next_fire_times": times,
                    "last_run": None
                    if run is None
                    else {
                        "execution_id": run.id,
                        "status": run.status,
                        "created_at": _iso(run.created_at),
                        "finished_at": _iso(run.finished_at),
                        "error": run.error,
                    },
                    "error": error,
                }
            )
        return items


def _last_runs(workflow_ids: list[str]) -> dict[str, Execution]:
    """The newest execution of each workflow, in one query."""
    if not workflow_ids:
        return {}
    newest = (
        Execution.select(Execution.workflow, peewee.fn.MAX(Execution.created_at).alias("at"))
        .where(Execution.workflow.in_(workflow_ids))
        .group_by(Execution.workflow)
    )
    rows = (
        Execution.select()
        .join(newest, on=(Execution.workflow == newest.c.workflow_id))
        .where(Execution.created_at == newest.c.at)
    )
    return {row.workflow_id: row for row in rows}


# -- /metrics -------------------------------------------------------------------------


class FleetCollector:
    """Series for alerting, read from Redis on scrape: the age of each queue's oldest
    ready message, the workers live per queue (from their presence records), and
    whether a scheduler holds the leader lock."""

    PREFIX = "governance"

    def __init__(self, client: redis.Redis, namespace: str, clock: Callable[[], float]):
        self.client = client
        self.namespace = namespace
        self.layout = Layout(namespace)
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._collect())
        except redis.RedisError as exc:
            log.warning("could not read fleet metrics from Redis: %s", exc)
            return
        yield from families

    def _collect(self) -> Iterator[Metric]:
        queues = list(QUEUE_NAMES)
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.lindex(self.layout.queue(queue), 0)
        pipe.exists(leader_key(self.namespace))
        *heads, leader = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for queue, head in zip(queues, heads, strict=True):
            if head is not None:
                pipe.hget(self.layout.bodies(queue), head)
        bodies = iter(pipe.execute())
        now_ms = self.clock() * 1000
        age = GaugeMetricFamily(
            f"{self.PREFIX}_queue_oldest_ready_age_seconds",
            "Age of the oldest message ready to run (since it was sent or became due)",
            labels=["queue"],
        )
        for queue, head in zip(queues, heads, strict=True):
            seconds = 0.0
            if head is not None:
                seconds = _message_age_s(next(bodies), now_ms)
            age.add_metric([queue], seconds)
        yield age
        yield GaugeMetricFamily(
            f"{self.PREFIX}_scheduler_leader",
            "1 when a scheduler process holds the leader lock",
            value=1 if leader else 0,
        )


def _message_age_s(body: bytes | None, now_ms: float) -> float:
    if not body:
        return 0.0
    try:
        message = json.loads(body)
        since = message.get("options", {}).get("eta") or message.get("message_timestamp")
        return max(0.0, (now_ms - float(since)) / 1000) if since else 0.0
    except (ValueError, TypeError, AttributeError):
        return 0.0


def add_insight_routes(app: falcon.App, docs: Any, context: Any) -> None:
    """``/stats``, ``/workers``, ``/schedules`` and their ``/metrics`` series."""
    settings, deps = context.settings, context.deps
    client = deps.redis
    docs.add_route(app, "/stats", StatsResource(MinuteStats(client, settings.namespace)))
    docs.add_route(app, "/workers", WorkerCollection(WorkerPresence(client, settings.namespace)))
    docs.add_route(
        app,
        "/schedules",
        ScheduleCollection(client, settings.namespace, lambda: datetime.now(UTC)),
    )
    deps.registry.register(FleetCollector(client, settings.namespace, time.time))
