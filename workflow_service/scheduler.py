"""``python -m workflow_service scheduler``: timed work.

The scheduler only sends messages; workers do the work. Several scheduler processes
may run (for availability). Jobs:

* ``scheduled`` workflows: a cron job per active workflow (its ``trigger_config.cron``),
  refreshed when workflows change. Every scheduler process fires them, leader or not:
  a leader that dies would otherwise lose the cron times that fall in its lock's TTL.
  Firing twice is harmless: the execution's id is derived from the workflow and the
  scheduled fire time (the same in every process, see :func:`scheduled_fire_time`),
  and its insert is conditional, so each fire time makes one execution.
* the sweep: re-sends run messages of executions stuck pending or running longer than
  ``EXECUTION_SWEEP_AFTER_SECONDS`` (a lost message, a worker that died for good).

Housekeeping (the sweep, and the ``jobs`` the features declare in their ``FEATURE``,
see :mod:`workflow_service.features`: functions called with ``(scheduler, context)``
that add APScheduler jobs and check ``context.is_leader()``) runs on one leader at a time: a
Redis lock with a TTL, renewed every third of the TTL; another process takes over
within one TTL after the leader dies. Such a job that misses a run catches up at its
next one, so a gap costs a delay, not work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger

from shared.broker import create_broker
from shared.db import check_current
from workflow_service import features
from workflow_service.cache import global_version_key
from workflow_service.db import database, init_database
from workflow_service.definitions import cron_trigger
from workflow_service.engine import Engine
from workflow_service.kernel.schedules import leader_key
from workflow_service.migrations import all_migrations
from workflow_service.models import Execution, Workflow, WorkflowStatus
from workflow_service.runtime import build_engine
from workflow_service.settings import WorkflowSettings

log = logging.getLogger(__name__)

#: How late (seconds) APScheduler may still run a cron job, e.g. when its threads were
#: busy; later than that the fire time is missed (in this process).
CRON_MISFIRE_GRACE_S = 30
#: How far back a cron job looks for the fire time it runs for: more than the grace,
#: less than the minute between two crontab times, so it finds exactly one.
_FIRE_LOOKBACK = timedelta(seconds=59)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLock:
    """A Redis lock held by one process at a time, renewed while it lives.

    Its value names the holder, ``<host>:<pid>:<random>``, so operators can tell which
    scheduler process leads (``GET /schedules``); the random part keeps a restarted
    process with a reused pid from passing for the old holder.
    """

    def __init__(self, client: redis.Redis, key: str, ttl_s: float):
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held = False

    def refresh(self) -> bool:
        """Keep or take the lock; False when another process holds it or Redis is down."""
        try:
            if self.held and self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                return True
            self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except redis.RedisError:
            log.warning("scheduler lock: Redis unreachable; not leading", exc_info=True)
            self.held = False
        return self.held

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.eval(_RELEASE, 1, self.key, self.token)
        self.held = False


@dataclass
class SchedulerContext:
    settings: WorkflowSettings
    engine: Engine
    lock: LeaderLock

    def is_leader(self) -> bool:
        return self.lock.held


class ScheduledWorkflows:
    """Keeps one cron job per active ``scheduled`` workflow."""

    def __init__(self, scheduler: BlockingScheduler, context: SchedulerContext):
        self.scheduler = scheduler
        self.context = context
        self.jobs: dict[str, str] = {}  # workflow id -> job id (which encodes the version)

    def sync(self) -> None:
        with database.connection_context():
            rows = list(
                Workflow.select().where(
                    (Workflow.trigger == "scheduled") & (Workflow.status == WorkflowStatus.ACTIVE)
                )
            )
        wanted = {row.id: f"workflow:{row.id}:{row.version}" for row in rows}
        for workflow_id, job_id in list(self.jobs.items()):
            if wanted.get(workflow_id) != job_id:
                self.scheduler.remove_job(job_id)
                del self.jobs[workflow_id]
        for row in rows:
            job_id = wanted[row.id]
            if row.id in self.jobs:
                continue
            config = row.trigger_config
            try:
                trigger = cron_trigger(config["cron"], config.get("timezone", "UTC"))
            except (KeyError, ValueError) as exc:
                log.error("workflow %s has an unusable schedule: %s", row.id, exc)
                continue
            self.scheduler.add_job(
                self.fire_due,
                trigger,
                args=(row.id, trigger),
                id=job_id,
                misfire_grace_time=CRON_MISFIRE_GRACE_S,
                coalesce=True,
            )
            self.jobs[row.id] = job_id

    def fire_due(self, workflow_id: str, trigger: BaseTrigger) -> None:
        """The cron job: fire for the scheduled time this run is for."""
        now = self.context.engine.clock()
        fire_time = scheduled_fire_time(trigger, now)
        if fire_time is None:
            log.warning("workflow %s: no fire time of its schedule near %s", workflow_id, now)
            return
        self.fire(workflow_id, fire_time)

    def fire(self, workflow_id: str, fire_time: datetime) -> Execution | None:
        """Run ``workflow_id`` for ``fire_time`` (naive UTC): one execution, whichever
        and however many processes fire it; None when the workflow is not active."""
        with database.connection_context():
            workflow = Workflow.get_or_none(Workflow.id == workflow_id)
            if workflow is None or workflow.status != WorkflowStatus.ACTIVE:
                return None
            entity_id = workflow.trigger_config.get("entity_id", "")
            execution = self.context.engine.scheduled_run(workflow, entity_id, fire_time)
        log.info("scheduled workflow %s fired: execution %s", workflow_id, execution.id)
        return execution


def scheduled_fire_time(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The fire time (naive UTC) a cron job running at ``now`` (naive UTC) is for.

    APScheduler 3 does not pass a job its scheduled time. It is the trigger's latest
    fire time up to ``now``: APScheduler runs a job at most ``CRON_MISFIRE_GRACE_S``
    late, so that time is within :data:`_FIRE_LOOKBACK`. Every process computes the
    same time for the same run, however late within the grace it runs; the clock's
    minute (what a process would see at 12:01:02 running the 12:00 job) would not.
    """
    now = now.replace(tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, now - _FIRE_LOOKBACK)
    if fire is None or fire > now:
        return None
    return fire.astimezone(UTC).replace(tzinfo=None)


def build(settings: WorkflowSettings) -> tuple[BlockingScheduler, SchedulerContext]:
    db = init_database(settings.pooled_database_url)
    with db.connection_context():
        check_current(db, all_migrations(settings.plugins))
    installed = features.install(settings.plugins)
    broker = create_broker(settings)
    engine = build_engine(settings, database, broker, broker.client)
    lock = LeaderLock(broker.client, leader_key(settings.namespace), settings.scheduler_lock_ttl_s)
    context = SchedulerContext(settings, engine, lock)
    scheduler = BlockingScheduler(timezone=UTC)
    workflows = ScheduledWorkflows(scheduler, context)

    def lead() -> None:
        was = lock.held
        if lock.refresh() and not was:
            log.info("scheduler: now the leader")
        elif was and not lock.held:
            log.info("scheduler: lost the lead")

    def sweep() -> None:
        if not lock.held:
            return
        with database.connection_context():
            sent = engine.sweep(settings.sweep_after_s)
        if sent:
            log.info("sweep re-sent %d stuck executions", len(sent))

    last_version: list[bytes | None] = [None]

    def refresh_workflows() -> None:
        # Cheap: re-read scheduled workflows only when some workflow changed.
        try:
            version = broker.client.get(global_version_key(settings.namespace)) or b"0"
        except redis.RedisError:
            version = None  # cannot tell: re-read
        if version is None or version != last_version[0] or not workflows.jobs:
            last_version[0] = version
            workflows.sync()

    interval = max(settings.scheduler_lock_ttl_s / 3, 0.5)
    scheduler.add_job(
        lead, "interval", seconds=interval, id="leader-lock", next_run_time=datetime.now(UTC)
    )
    scheduler.add_job(sweep, "interval", seconds=settings.sweep_interval_s, id="sweep")
    scheduler.add_job(
        refresh_workflows,
        "interval",
        seconds=5,
        id="workflow-schedules",
        next_run_time=datetime.now(UTC),
    )
    for feature in installed:
        for register in feature.jobs:
            register(scheduler, context)
    return scheduler, context


def main() -> int:
    settings = WorkflowSettings.from_env()
    scheduler, context = build(settings)

    def stop(signum, frame):
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler starting (lock ttl %.0fs)", settings.scheduler_lock_ttl_s)
    try:
        scheduler.start()
    finally:
        context.lock.release()
    return 0
