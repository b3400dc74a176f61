"""The engine against a real database and Redis, with messages collected, not delivered."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest

from shared.db import utcnow
from shared.events import Event
from workflow_service.db import database
from workflow_service.definitions import validate_definition
from workflow_service.engine import ExecutionFailed, run_actor_name
from workflow_service.models import Execution, Notification, StepRun, Task
from workflow_service.runtime import cache_invalidator
from workflow_service.workflows import WorkflowStore


def make_workflow(store, **overrides):
    definition = {
        "name": "notify owner",
        "entity_type": "policy",
        "trigger": "on_create",
        "conditions": [{"field": "policy_type", "op": "eq", "value": "security"}],
        "steps": [
            {"kind": "notify", "recipients": ["owner"], "subject": "New: {{ entity.title }}"},
            {"kind": "create_task", "assignee": "owner", "title": "Review {{ entity.title }}"},
        ],
        **overrides,
    }
    return store.create("acme", "alice", validate_definition(definition), "active")


def event(**overrides):
    fields = {
        "event_type": "policy.created",
        "entity_type": "policy",
        "entity_id": "p-1",
        "tenant_id": "acme",
        "data": {"title": "Passwords", "policy_type": "security", "owner": "bob"},
    }
    fields.update(overrides)
    return Event(**fields)


@pytest.fixture
def store(workflow_db, redis_client, namespace):
    return WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))


def test_dispatch_creates_one_execution_per_event_and_resends_the_same_job(engine, store):
    workflow = make_workflow(store)
    make_workflow(store, conditions=[{"field": "policy_type", "op": "eq", "value": "hr"}])
    e = event()

    first = engine.dispatch(e)
    again = engine.dispatch(e)

    assert [x.id for x in first] == [x.id for x in again]
    assert len(first) == 1 and first[0].workflow_id == workflow.id
    assert Execution.select().count() == 1
    ids = [m.message_id for m in engine.outbox.messages]
    assert ids == [first[0].job_id, first[0].job_id]
    assert engine.outbox.messages[0].actor_name == run_actor_name("policy")
    assert engine.outbox.messages[0].options["tenant_id"] == "acme"


def test_run_executes_steps_in_order_and_logs_them(engine, store):
    make_workflow(store)
    [execution] = engine.dispatch(event())

    assert engine.run(execution.id) == "completed"

    steps = list(StepRun.select().order_by(StepRun.position))
    assert [(s.key, s.kind, s.status) for s in steps] == [
        ("0", "notify", "completed"),
        ("1", "create_task", "completed"),
    ]
    assert steps[0].output["subject"] == "New: Passwords"
    note = Notification.get()
    assert (note.recipient, note.subject) == ("bob", "New: Passwords")
    task = Task.get()
    assert (task.assignee, task.title) == ("bob", "Review Passwords")
    # A second delivery of the run message changes nothing.
    assert engine.run(execution.id) == "completed"
    assert Notification.select().count() == 1 and StepRun.select().count() == 2


def test_retry_resumes_at_the_failed_step_without_repeating_earlier_ones(engine, store):
    make_workflow(
        store,
        steps=[
            {"kind": "notify", "recipients": ["owner"], "subject": "hi"},
            {"kind": "flaky", "fail_times": 2},
        ],
    )
    [execution] = engine.dispatch(event())
    for _ in range(2):
        with pytest.raises(RuntimeError):
            engine.run(execution.id)
        assert Execution.get_by_id(execution.id).status == "pending"

    assert engine.run(execution.id) == "completed"
    runs = [(s.key, s.attempt, s.status) for s in StepRun.select().order_by(StepRun.id)]
    assert runs == [
        ("0", 1, "completed"),
        ("1", 1, "failed"),
        ("1", 2, "failed"),
        ("1", 3, "completed"),
    ]
    assert Notification.select().count() == 1


def test_permanent_step_failure_fails_the_execution(engine, store):
    make_workflow(store, steps=[{"kind": "assign", "assignee": "owner"}])
    [execution] = engine.dispatch(event(data={"policy_type": "security"}))
    with pytest.raises(ExecutionFailed):
        engine.run(execution.id)
    failed = Execution.get_by_id(execution.id)
    assert failed.status == "failed"
    assert "no owner" in failed.error


def test_a_chain_deeper_than_the_limit_fails_without_running(engine, store):
    make_workflow(store)
    deep = event(causation=[f"e{i}" for i in range(6)])
    [execution] = engine.dispatch(deep)
    assert execution.status == "failed"
    assert "causation chain too deep" in execution.error and "limit is 5" in execution.error
    assert engine.outbox.messages == []


def test_cache_reloads_only_when_the_tenant_version_changes(engine, store):
    workflow = make_workflow(store)
    engine.dispatch(event())
    engine.dispatch(event())
    loads = engine.cache.loads
    assert loads == 1  # the second event was matched from memory

    store.set_status("acme", workflow.id, "alice", "inactive")
    assert engine.dispatch(event()) == []
    assert engine.cache.loads == loads + 1

    store.set_status("acme", workflow.id, "alice", "active")
    assert len(engine.dispatch(event())) == 1


def test_cancelled_execution_does_not_start_its_next_step(engine, store):
    make_workflow(store)
    [execution] = engine.dispatch(event())
    assert engine.cancel(execution.id)
    assert engine.run(execution.id) == "cancelled"
    assert StepRun.select().count() == 0


def test_a_worker_that_lost_its_claim_stops_before_the_side_effect(engine, store):
    make_workflow(store)
    [execution] = engine.dispatch(event())
    start = utcnow()
    calls = 0

    def clock():
        # Given a worker that claims the execution and then stalls past the claim
        # timeout, during which another worker claims it (attempt 2)
        nonlocal calls
        calls += 1
        if calls == 1:
            return start
        if calls == 2:
            Execution.update(attempts=Execution.attempts + 1).where(
                Execution.id == execution.id
            ).execute()
        return start + timedelta(seconds=120)

    engine.clock = clock
    # When the first worker reaches its step, it finds the claim gone and stops
    assert engine.run(execution.id) == "running"
    # Then it sent no notification and left the execution to the new owner
    assert Notification.select().count() == 0
    row = Execution.get_by_id(execution.id)
    assert (row.status, row.attempts) == ("running", 2)


def test_a_step_longer_than_the_claim_timeout_keeps_its_claim(engine, store):
    # Given claims that go stale after 0.6 s, and a step that runs for 2 s
    engine.settings = dataclasses.replace(engine.settings, claim_timeout_s=0.6)
    make_workflow(store, steps=[{"kind": "slow_call", "seconds": 2}])
    [execution] = engine.dispatch(event())
    takeovers = []

    def another_worker():
        # tries to take the execution over while the step runs, as a redelivery would
        with database.connection_context():
            deadline = time.monotonic() + 1.8
            while time.monotonic() < deadline:
                time.sleep(0.1)
                takeovers.append(engine.claim(execution.id))

    contender = threading.Thread(target=another_worker)
    contender.start()
    # When the first worker runs it, its claim is renewed while the step runs
    assert engine.run(execution.id) == "completed"
    contender.join()
    # Then nobody could take it over, and it ran once
    assert takeovers and not any(takeovers)
    assert Execution.get_by_id(execution.id).attempts == 1


def test_one_recipient_grammar_for_notify_and_create_task(engine, store):
    # (assign's people: tests/workflow/test_assign.py)
    # Given: steps naming people as initiator and user:<id>
    make_workflow(
        store,
        steps=[
            {"kind": "notify", "recipients": ["initiator", "user:carol"], "subject": "Hi"},
            {"kind": "create_task", "assignee": "user:bob", "title": "Review"},
            {"kind": "create_task", "assignee": "initiator", "title": "Follow up"},
        ],
    )
    # When: ed's change triggers it
    [execution] = engine.dispatch(event(actor="ed"))
    assert engine.run(execution.id) == "completed"
    # Then: "initiator" is ed, the person who started it, never a user named "initiator";
    # and every step stores the bare user id
    notes = Notification.select().where(Notification.execution == execution.id)
    assert sorted(n.recipient for n in notes) == ["carol", "ed"]
    tasks = Task.select().where(Task.execution == execution.id).order_by(Task.title)
    assert [(t.title, t.assignee) for t in tasks] == [("Follow up", "ed"), ("Review", "bob")]


def test_a_step_sends_its_messages_only_after_its_transaction_commits(engine, store):
    # Given a notify step that e-mails the owner (a delivery row, then its message)
    from workflow_service.users.directory import save_user

    save_user("acme", "bob", name="Bob", email="bob@example.org", roles=["editor"])
    make_workflow(
        store,
        steps=[{"kind": "notify", "recipients": ["owner"], "channels": ["email"], "subject": "Hi"}],
    )
    sent_inside_a_transaction = []
    collect = engine.outbox.enqueue

    def enqueue(message, **options):
        sent_inside_a_transaction.append(database.in_transaction())
        return collect(message, **options)

    engine.outbox.enqueue = enqueue
    [execution] = engine.dispatch(event())
    # When it runs
    engine.run(execution.id)
    # Then the delivery message went out, and not before the row was committed
    deliveries = [m for m in engine.outbox.messages if m.actor_name == "deliver_notification"]
    assert len(deliveries) == 1
    assert sent_inside_a_transaction and not any(sent_inside_a_transaction)
