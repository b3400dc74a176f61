"""The scheduler: one leader at a time, scheduled workflows, the stuck-execution sweep.
When a cron schedule fires is tested in tests/unit/test_cron.py."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from datetime import datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from shared.db import migrate, utcnow
from tests.support import ServiceProcess, python_module
from tests.workflow.test_engine import event, make_workflow
from workflow_service.db import init_database
from workflow_service.definitions import validate_definition
from workflow_service.migrations import all_migrations
from workflow_service.models import Execution
from workflow_service.runtime import cache_invalidator
from workflow_service.scheduler import (
    CRON_MISFIRE_GRACE_S,
    LeaderLock,
    ScheduledWorkflows,
    SchedulerContext,
)
from workflow_service.workflows import WorkflowStore


def test_one_leader_at_a_time_and_takeover_after_the_ttl(redis_client, namespace):
    key = f"{namespace}:scheduler:leader"
    first = LeaderLock(redis_client, key, ttl_s=0.3)
    second = LeaderLock(redis_client, key, ttl_s=0.3)
    assert first.refresh() and not second.refresh()
    assert first.refresh()  # renewing keeps it
    time.sleep(0.35)  # the leader died without releasing: its lock expires
    assert second.refresh() and not first.refresh()
    second.release()
    assert first.refresh()


WEEKLY = {
    "name": "weekly review",
    "entity_type": "policy",
    "trigger": "scheduled",
    "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p-7"},
    "steps": [{"kind": "notify", "recipients": ["role:admin"], "subject": "weekly"}],
}
MONDAY_9 = datetime(2024, 6, 3, 9, 0)


def test_a_scheduled_workflow_fires_once_per_fire_time_leader_or_not(
    engine, workflow_db, redis_client, namespace, settings
):
    store = WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))
    workflow = store.create("acme", "alice", validate_definition(WEEKLY), "active")
    scheduler = BlockingScheduler()
    lock = LeaderLock(redis_client, f"{namespace}:lock", 5)
    jobs = ScheduledWorkflows(scheduler, SchedulerContext(settings, engine, lock))
    jobs.sync()
    assert [j.id for j in scheduler.get_jobs()] == [f"workflow:{workflow.id}:1"]

    # A process that does not lead fires cron jobs all the same (no time is lost
    # while the lead changes hands)...
    assert not lock.held
    first = jobs.fire(workflow.id, MONDAY_9)
    # ...and a second firing of the same time, by the leader, finds that execution.
    lock.refresh()
    again = jobs.fire(workflow.id, MONDAY_9)
    [execution] = Execution.select()
    assert first.id == again.id == execution.id
    assert execution.entity_id == "p-7" and execution.event["event_type"] == "policy.scheduled"
    assert execution.event["occurred_at"] == "2024-06-03T09:00:00"
    assert {m.message_id for m in engine.outbox.messages} == {execution.job_id}
    # The next fire time is another execution.
    jobs.fire(workflow.id, MONDAY_9 + timedelta(days=7))
    assert Execution.select().count() == 2

    store.update(
        "acme", workflow.id, "alice", {"trigger_config": {"cron": "0 * * * *", "entity_id": "p-7"}}
    )
    jobs.sync()
    assert [j.id for j in scheduler.get_jobs()] == [f"workflow:{workflow.id}:2"]
    store.set_status("acme", workflow.id, "alice", "inactive")
    jobs.sync()
    assert scheduler.get_jobs() == []
    assert jobs.fire(workflow.id, MONDAY_9 + timedelta(days=14)) is None


def test_the_cron_job_fires_for_the_scheduled_time_when_it_runs_late(
    engine, workflow_db, redis_client, namespace, settings
):
    # Given: two schedulers; one runs the 8:59 job on time, the other 29 s late (its
    # threads were busy)
    store = WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))
    definition = {**WEEKLY, "trigger_config": {"cron": "59 8 * * *", "entity_id": "p-7"}}
    store.create("acme", "alice", validate_definition(definition), "active")
    lock = LeaderLock(redis_client, f"{namespace}:lock", 5)
    late_engine = dataclasses.replace(engine, clock=lambda: MONDAY_9 - timedelta(seconds=31))
    on_time_engine = dataclasses.replace(engine, clock=lambda: MONDAY_9 - timedelta(seconds=60))
    for eng in (on_time_engine, late_engine):
        scheduler = BlockingScheduler()
        jobs = ScheduledWorkflows(scheduler, SchedulerContext(settings, eng, lock))
        jobs.sync()
        # When: APScheduler runs the job as it does: func(*args, **kwargs)
        [job] = scheduler.get_jobs()
        assert job.misfire_grace_time == CRON_MISFIRE_GRACE_S
        job.func(*job.args, **job.kwargs)
    # Then: both fired for 8:59, so there is one execution
    [execution] = Execution.select()
    assert execution.event["occurred_at"] == "2024-06-03T08:59:00"


FIRE = """
import pathlib, sys, time
from datetime import datetime
from workflow_service.scheduler import ScheduledWorkflows, build
from workflow_service.settings import WorkflowSettings

workflow_id, fire_time, go = sys.argv[1:]
scheduler, context = build(WorkflowSettings.from_env())
jobs = ScheduledWorkflows(scheduler, context)
print("ready", flush=True)
while not pathlib.Path(go).exists():
    time.sleep(0.002)
execution = jobs.fire(workflow_id, datetime.fromisoformat(fire_time))
print("fired", execution.id, "leader" if context.is_leader() else "not leader", flush=True)
"""


def test_two_scheduler_processes_firing_the_same_time_make_one_execution(
    tmp_path, common_env, make_database_url, redis_client, namespace
):
    # Given: a scheduled workflow, and two scheduler processes (their own engines,
    # brokers and database connections), neither of which leads
    url = make_database_url("cron")
    db = init_database(url)
    migrate(db, all_migrations())
    store = WorkflowStore(db, cache_invalidator(redis_client, namespace))
    workflow = store.create("acme", "alice", validate_definition(WEEKLY), "active")
    env = {**common_env, "WORKFLOW_DATABASE_URL": url}
    go = tmp_path / "go"
    argv = [sys.executable, "-c", FIRE, workflow.id, MONDAY_9.isoformat(), str(go)]
    schedulers = [ServiceProcess(f"fire-{i}", argv, env, tmp_path).start() for i in (1, 2)]
    try:
        for process in schedulers:
            process.wait_log("ready", timeout=60)
        # When: both fire Monday 9:00 at once
        go.touch()
        for process in schedulers:
            assert process.proc.wait(60) == 0, process.log()
    finally:
        for process in schedulers:
            process.stop()
    # Then: one execution, which both found; its run message has one job id
    with db.connection_context():
        [execution] = Execution.select()
    fired = {p.log().split("fired ", 1)[1].strip() for p in schedulers}
    assert fired == {f"{execution.id} not leader"}
    queued = [json.loads(m) for m in redis_client.hvals(f"{namespace}:governance.policy.msgs")]
    assert 1 <= len(queued) <= 2 and {m["message_id"] for m in queued} == {execution.job_id}
    db.close()


def test_sweep_resends_stuck_executions_with_their_job_ids(
    engine, workflow_db, redis_client, namespace
):
    store = WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))
    make_workflow(store)
    [execution] = engine.dispatch(event())
    engine.outbox.messages.clear()
    assert engine.sweep(older_than_s=60) == []

    long_ago = utcnow() - timedelta(minutes=10)
    Execution.update(updated_at=long_ago).execute()
    assert engine.sweep(older_than_s=60) == [execution.id]
    assert [m.message_id for m in engine.outbox.messages] == [execution.job_id]

    engine.claim(execution.id)
    assert engine.sweep(older_than_s=60) == []  # running under a fresh claim
    # a claim as old as this is also that old an update (claiming stamps both)
    Execution.update(claimed_at=long_ago, updated_at=long_ago).execute()
    assert engine.sweep(older_than_s=60) == [execution.id]


def test_a_sweep_re_sends_an_execution_once_per_sweep_after_period(
    engine, workflow_db, redis_client, namespace, settings
):
    # Given: an execution whose run message waits in a queue that is behind
    now = [datetime(2024, 6, 3, 9, 0)]
    engine.clock = lambda: now[0]
    store = WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))
    make_workflow(store)
    [execution] = engine.dispatch(event())
    engine.outbox.messages.clear()

    def sweep_after(seconds):
        now[0] += timedelta(seconds=seconds)
        return engine.sweep(older_than_s=60)

    # When: the sweep comes by every 30 s
    # Then: it re-sends the message once a minute, not at every sweep
    assert sweep_after(61) == [execution.id]
    assert sweep_after(0) == []
    assert sweep_after(30) == []
    assert sweep_after(31) == [execution.id]
    assert len(engine.outbox.messages) == 2

    # And the same for one running under a claim whose worker is gone
    assert engine.claim(execution.id)
    assert sweep_after(settings.claim_timeout_s + 61) == [execution.id]
    assert sweep_after(0) == []
    assert sweep_after(30) == []
    assert sweep_after(31) == [execution.id]
    # the re-sent message can still take the abandoned claim over
    assert engine.claim(execution.id)
    assert Execution.get_by_id(execution.id).attempts == 2


def test_the_scheduler_process_leads_and_stops_on_sigterm(
    tmp_path, common_env, make_database_url, redis_client
):
    env = {
        **common_env,
        "WORKFLOW_DATABASE_URL": make_database_url("sched"),
        "SCHEDULER_LOCK_TTL_SECONDS": "3",
    }
    migrate = ServiceProcess(
        "migrate", python_module("workflow_service", "migrate"), env, tmp_path
    ).start()
    assert migrate.proc.wait(60) == 0
    scheduler = ServiceProcess(
        "scheduler", python_module("workflow_service", "scheduler"), env, tmp_path
    ).start()
    try:
        scheduler.wait_log("now the leader", timeout=20)
        key = f"{common_env['REDIS_NAMESPACE']}:scheduler:leader"
        assert redis_client.get(key)
    finally:
        code = scheduler.stop(signal.SIGTERM)
    assert code == 0
    assert redis_client.get(key) is None  # released on the way out
