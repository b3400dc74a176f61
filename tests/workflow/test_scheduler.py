"""The scheduler: one leader at a time, scheduled workflows, the stuck-execution sweep."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from shared.db import utcnow
from tests.support import ServiceProcess, python_module
from tests.workflow.test_engine import event, make_workflow
from workflow_service.definitions import validate_definition
from workflow_service.models import Execution
from workflow_service.runtime import cache_invalidator
from workflow_service.scheduler import LeaderLock, ScheduledWorkflows, SchedulerContext
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


def test_a_scheduled_workflow_fires_once_per_minute_whoever_fires(
    engine, workflow_db, redis_client, namespace, settings
):
    store = WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))
    definition = {
        "name": "weekly review",
        "entity_type": "policy",
        "trigger": "scheduled",
        "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p-7"},
        "steps": [{"kind": "notify", "recipients": ["role:admin"], "subject": "weekly"}],
    }
    workflow = store.create("acme", "alice", validate_definition(definition), "active")
    scheduler = BlockingScheduler()
    lock = LeaderLock(redis_client, f"{namespace}:lock", 5)
    jobs = ScheduledWorkflows(scheduler, SchedulerContext(settings, engine, lock))
    jobs.sync()
    assert [j.id for j in scheduler.get_jobs()] == [f"workflow:{workflow.id}:1"]

    jobs.fire(workflow.id)  # not the leader: nothing happens
    assert Execution.select().count() == 0
    lock.refresh()
    jobs.fire(workflow.id)
    jobs.fire(workflow.id)  # a second scheduler firing the same minute
    [execution] = Execution.select()
    assert execution.entity_id == "p-7" and execution.event["event_type"] == "policy.scheduled"

    store.update(
        "acme", workflow.id, "alice", {"trigger_config": {"cron": "0 * * * *", "entity_id": "p-7"}}
    )
    jobs.sync()
    assert [j.id for j in scheduler.get_jobs()] == [f"workflow:{workflow.id}:2"]
    store.set_status("acme", workflow.id, "alice", "inactive")
    jobs.sync()
    assert scheduler.get_jobs() == []


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
    Execution.update(claimed_at=long_ago).execute()
    assert engine.sweep(older_than_s=60) == [execution.id]


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
