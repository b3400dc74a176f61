"""The trigger path end to end: both services, real Redis, real dramatiq worker processes.

Delays are shortened through configuration only (RETRY_DELAY_SCALE, a short Dramatiq
heartbeat timeout with maintenance on every command, a short claim timeout); the
mechanisms themselves run as in production.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from shared.broker import create_broker
from shared.events import Event, event_message
from shared.settings import CommonSettings
from tests.support import poll
from tests.system import System

RETRY_SCALE = 0.25
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    env = {
        "RETRY_DELAY_SCALE": str(RETRY_SCALE),
        "WORKFLOW_PLUGINS": "tests.workflow.plugin_steps",
        "WORKER_HEARTBEAT_TIMEOUT_MS": "3000",
        "BROKER_MAINTENANCE_CHANCE": "1000000",
        "EXECUTION_CLAIM_TIMEOUT_SECONDS": "2",
    }
    with System.running(
        tmp_path_factory.mktemp("system"), make_database_url, redis_url, env=env, workers=1
    ) as running:
        yield running


@pytest.fixture
def tenant(system):
    """A tenant of the test's own, and a live worker group."""
    if not system.workers:
        system.start_worker()
    return f"t{uuid.uuid4().hex[:8]}"


def add_workflow(system, tenant, trigger, steps, conditions=(), name="wf"):
    client = system.workflow_client(tenant=tenant)
    body = {
        "name": name,
        "entity_type": "policy",
        "trigger": trigger,
        "conditions": list(conditions),
        "steps": steps,
        "status": "active",
    }
    response = client.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_policy(system, tenant, **fields):
    api = system.api_client(sub="alice", roles=["editor"], tenant=tenant)
    body = {"title": "Passwords", "policy_type": "security", "owner": "bob", **fields}
    response = api.post("/policies", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.rstrip("Z"))


def test_policy_create_runs_the_workflow_with_its_step_log(system, tenant):
    add_workflow(
        system,
        tenant,
        "on_create",
        [
            {"kind": "notify", "recipients": ["owner"], "subject": "New policy {{ entity.title }}"},
            {"kind": "create_task", "assignee": "owner", "title": "Review {{ entity.title }}"},
        ],
        conditions=[{"field": "policy_type", "op": "eq", "value": "security"}],
    )
    policy = create_policy(system, tenant)
    create_policy(system, tenant, policy_type="hr")  # does not match

    [execution] = system.wait_for_executions(1, tenant=tenant, status="completed")
    assert execution["entity_id"] == policy["id"]
    assert execution["event_type"] == "policy.created"
    detail = system.execution(execution["id"], tenant)
    assert [(s["kind"], s["status"], s["attempt"]) for s in detail["steps"]] == [
        ("notify", "completed", 1),
        ("create_task", "completed", 1),
    ]
    assert all(s["started_at"] and s["finished_at"] for s in detail["steps"])
    bob = system.workflow_client(sub="bob", roles=["viewer"], tenant=tenant)
    assert [n["subject"] for n in bob.get("/notifications").json()["items"]] == [
        "New policy Passwords"
    ]
    assert [t["title"] for t in bob.get("/tasks").json()["items"]] == ["Review Passwords"]
    assert len(system.executions(tenant)) == 1


def test_change_status_emits_an_event_that_is_processed_in_turn(system, tenant):
    add_workflow(system, tenant, "on_create", [{"kind": "change_status", "to": "in_review"}])
    add_workflow(
        system,
        tenant,
        "on_status_change",
        [{"kind": "notify", "recipients": ["owner"], "subject": "{{ entity.title }} in review"}],
        conditions=[{"field": "status", "op": "eq", "value": "in_review"}],
    )
    policy = create_policy(system, tenant)

    executions = system.wait_for_executions(2, tenant=tenant, status="completed")
    by_type = {e["event_type"]: e for e in executions}
    assert set(by_type) == {"policy.created", "policy.status_changed"}
    api = system.api_client(roles=["viewer"], tenant=tenant)
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_review"
    moved = system.execution(by_type["policy.created"]["id"], tenant)["steps"][0]
    assert moved["output"]["to"] == "in_review"


def test_a_self_retriggering_workflow_stops_at_the_chain_limit(system, tenant):
    toggle = [
        ("in_review", "draft"),
        ("draft", "in_review"),
    ]
    for status, to in toggle:
        add_workflow(
            system,
            tenant,
            "on_status_change",
            [{"kind": "change_status", "to": to}],
            conditions=[{"field": "status", "op": "eq", "value": status}],
        )
    policy = create_policy(system, tenant)
    api = system.api_client(tenant=tenant)
    assert api.post(f"/policies/{policy['id']}/transitions", json={"to": "in_review"}).is_success

    [stopped] = system.wait_for_executions(1, tenant=tenant, status="failed", timeout=30)
    assert "causation chain too deep" in stopped["error"]
    assert "limit is 5" in stopped["error"]
    # Depths 0..5 ran; the event six changes deep stopped.
    assert len(system.executions(tenant, status="completed")) == 6
    assert len(system.executions(tenant)) == 7


def test_a_step_failing_twice_is_retried_with_the_queue_backoff(system, tenant):
    add_workflow(system, tenant, "on_create", [{"kind": "flaky", "fail_times": 2}])
    create_policy(system, tenant)

    [execution] = system.wait_for_executions(1, tenant=tenant, status="completed", timeout=30)
    steps = system.execution(execution["id"], tenant)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    assert "flaky step failing on attempt 1" in steps[0]["error"]
    starts = [parse_time(s["started_at"]) for s in steps]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    # governance.policy: exponential from 2 s -> 2 s, then 4 s (scaled), without jitter.
    for gap, expected in zip(gaps, (2 * RETRY_SCALE, 4 * RETRY_SCALE), strict=True):
        assert expected <= gap < expected + 0.35, gaps
    assert execution["attempts"] == 3


def test_the_same_event_delivered_twice_creates_one_execution(system, tenant):
    add_workflow(
        system,
        tenant,
        "on_update",
        [{"kind": "notify", "recipients": ["bob"], "subject": "changed"}],
    )
    broker = create_broker(CommonSettings(redis_url=system.redis_url, namespace=system.namespace))
    event = Event(
        event_type="policy.updated",
        entity_type="policy",
        entity_id="p-dup",
        tenant_id=tenant,
        data={"title": "t", "owner": "bob"},
    )
    broker.enqueue(event_message(event))
    broker.enqueue(event_message(event))
    [execution] = system.wait_for_executions(1, tenant=tenant, status="completed")
    # Give the second delivery time to be processed, then check nothing new appeared.
    poll(
        lambda: broker.client.llen(f"{system.namespace}:governance.policy") == 0,
        message="the queue drained",
    )
    bob = system.workflow_client(sub="bob", roles=["viewer"], tenant=tenant)
    poll(lambda: bob.get("/notifications").json()["items"], message="the notification")
    assert len(system.executions(tenant)) == 1
    assert len(bob.get("/notifications").json()["items"]) == 1
    broker.close()


def test_an_invalid_message_is_dead_lettered_at_once(system, tenant):
    import dramatiq

    broker = create_broker(CommonSettings(redis_url=system.redis_url, namespace=system.namespace))
    bad = dramatiq.Message(
        queue_name="governance.policy",
        actor_name="dispatch_event",
        args=({"event_type": "policy.exploded", "tenant_id": tenant},),
        kwargs={},
        options={},
    )
    broker.enqueue(bad)
    # Dramatiq's Redis broker keys dead messages by a per-enqueue id; the body names ours.
    dead = f"{system.namespace}:governance.policy.XQ.msgs"
    poll(
        lambda: any(bad.message_id.encode() in body for body in broker.client.hvals(dead)),
        message="the message in the dead-letter queue",
    )
    broker.close()


def test_kill_9_mid_step_redelivers_and_the_side_effect_happens_once(system, tenant):
    add_workflow(
        system, tenant, "on_create", [{"kind": "slow_note", "seconds": 3, "recipient": "observer"}]
    )
    create_policy(system, tenant)
    [running] = system.wait_for_executions(1, tenant=tenant, status="running")
    poll(lambda: system.execution(running["id"], tenant)["steps"], message="the step started")

    # When: the worker dies mid-step, and another worker group comes up.
    system.kill(system.workers[0])
    system.start_worker()

    # Then: Dramatiq requeues the dead worker's message after the heartbeat timeout,
    # the new worker claims the execution again and completes it.
    [done] = system.wait_for_executions(1, tenant=tenant, status="completed", timeout=40)
    steps = system.execution(done["id"], tenant)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "completed")]
    assert steps[0]["error"].startswith("interrupted")
    observer = system.workflow_client(sub="observer", roles=["viewer"], tenant=tenant)
    assert len(observer.get("/notifications").json()["items"]) == 1


def test_kill_9_after_an_api_call_repeats_the_call_but_not_its_effect(system, tenant):
    # A step whose side effect is outside the database (an api call) is repeated after
    # a crash; its Idempotency-Key makes the api replay the first answer.
    add_workflow(
        system,
        tenant,
        "on_create",
        [{"kind": "change_status_then_sleep", "to": "in_review", "seconds": 3}],
    )
    policy = create_policy(system, tenant)
    api = system.api_client(roles=["viewer"], tenant=tenant)
    poll(
        lambda: api.get(f"/policies/{policy['id']}").json()["status"] == "in_review",
        message="the api call made",
    )

    # When: the worker dies after the call, before the step is recorded
    system.kill(system.workers[0])
    system.start_worker()

    # Then: the step runs again and completes with the first answer replayed; the
    # policy moved once (one version more, one status change)
    [done] = system.wait_for_executions(1, tenant=tenant, status="completed", timeout=40)
    steps = system.execution(done["id"], tenant)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "completed")]
    assert steps[1]["output"]["version"] == 2
    versions = api.get(f"/policies/{policy['id']}/versions").json()["items"]
    assert [v["change"] for v in versions] == ["policy.created", "policy.status_changed"]


def test_sigterm_lets_in_flight_work_finish_and_loses_nothing(system, tenant):
    add_workflow(
        system,
        tenant,
        "on_create",
        [{"kind": "slow_note", "seconds": 1.5, "recipient": "observer"}],
    )
    for i in range(6):
        create_policy(system, tenant, title=f"p{i}")
    system.wait_for_executions(1, tenant=tenant, status="running")

    assert system.terminate(system.workers[0]) == 0
    finished = len(system.executions(tenant, status="completed"))
    assert finished >= 1  # in-flight executions finished before the worker exited
    assert not system.executions(tenant, status="running")
    system.start_worker()

    system.wait_for_executions(6, tenant=tenant, status="completed", timeout=30)
    observer = system.workflow_client(sub="observer", roles=["viewer"], tenant=tenant)
    assert len(observer.get("/notifications", params={"limit": 50}).json()["items"]) == 6


def test_exhausted_retries_fail_the_execution_with_the_fixed_backoff_of_its_queue(system, tenant):
    # governance.assessment: 3 attempts, fixed 5 s (scaled) between them.
    client = system.workflow_client(tenant=tenant)
    body = {
        "name": "always failing",
        "entity_type": "assessment",
        "trigger": "on_create",
        "steps": [{"kind": "flaky", "fail_times": 10}],
        "status": "active",
    }
    assert client.post("/workflows", json=body).status_code == 201
    broker = create_broker(CommonSettings(redis_url=system.redis_url, namespace=system.namespace))
    event = Event(
        event_type="assessment.created",
        entity_type="assessment",
        entity_id="a-1",
        tenant_id=tenant,
    )
    broker.enqueue(event_message(event))

    [failed] = system.wait_for_executions(1, tenant=tenant, status="failed", timeout=30)
    assert failed["error"].startswith("gave up after 3 attempts: RuntimeError: flaky step")
    steps = system.execution(failed["id"], tenant)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    starts = [parse_time(s["started_at"]) for s in steps]
    for a, b in zip(starts, starts[1:], strict=False):
        assert 5 * RETRY_SCALE <= (b - a).total_seconds() < 5 * RETRY_SCALE + 0.35
    dead = f"{system.namespace}:governance.assessment.XQ.msgs"
    assert any(failed["job"]["id"].encode() in body for body in broker.client.hvals(dead))
    broker.close()


def test_workers_see_a_deactivated_workflow_at_once(system, tenant):
    # Given a running worker that has cached the tenant's active workflows,
    target = add_workflow(
        system,
        tenant,
        "on_create",
        [{"kind": "notify", "recipients": ["bob"], "subject": "x"}],
        name="t",
    )
    sentinel = add_workflow(
        system,
        tenant,
        "on_create",
        [{"kind": "notify", "recipients": ["bob"], "subject": "y"}],
        name="s",
    )
    create_policy(system, tenant)
    system.wait_for_executions(2, tenant=tenant, status="completed")

    # when the workflow is deactivated through the admin API,
    client = system.workflow_client(tenant=tenant)
    assert client.post(f"/workflows/{target['id']}/deactivate").json()["status"] == "inactive"
    create_policy(system, tenant)

    # then the next event no longer runs it (the sentinel shows the event was dispatched).
    system.wait_for_executions(2, tenant=tenant, workflow_id=sentinel["id"])
    assert len(system.executions(tenant, workflow_id=target["id"])) == 1


def test_a_manual_run_loads_the_entity_from_the_api(system, tenant):
    # Given: a manual workflow that names the entity's title and its owner
    workflow = add_workflow(
        system,
        tenant,
        "manual",
        [
            {"kind": "notify", "recipients": ["owner"], "subject": "Look at {{ entity.title }}"},
            {"kind": "create_task", "assignee": "owner", "title": "Review {{ entity.title }}"},
        ],
    )
    policy = create_policy(system, tenant, title="Travel", owner="bob")
    client = system.workflow_client(tenant=tenant)
    # When: it is run for an id the api does not have
    missing = client.post(f"/workflows/{workflow['id']}/run", json={"entity_id": str(uuid.uuid4())})
    # Then: 404, and nothing runs
    assert missing.status_code == 404, missing.text
    # When: it is run for the policy, with no data and a claim about its owner
    run = client.post(
        f"/workflows/{workflow['id']}/run",
        json={"entity_id": policy["id"], "data": {"owner": "mallory"}},
    )
    assert run.status_code == 202, run.text
    # Then: the steps saw the policy as the api has it
    [execution] = system.wait_for_executions(1, tenant=tenant, status="completed")
    assert execution["id"] == run.json()["execution_id"]
    bob = system.workflow_client(sub="bob", roles=["viewer"], tenant=tenant)
    notes = bob.get("/notifications").json()["items"]
    assert [n["subject"] for n in notes] == ["Look at Travel"]
    assert [t["title"] for t in bob.get("/tasks").json()["items"]] == ["Review Travel"]
    mallory = system.workflow_client(sub="mallory", roles=["viewer"], tenant=tenant)
    assert mallory.get("/notifications").json()["items"] == []
