"""What an approval does to the job that parked its execution (real Redis).

Every path that ends a waiting execution outside the engine's run - the entity deleted
or archived, a stale decision, a person's cancel, a next stage nobody can decide -
closes the parked job's waiting mark, and its tree reads ``cancelled`` or ``failed``;
while the approval stays open, the mark names the people who decide now.

The executions run in the test process, so the worker's own record of the run job is
written here as the worker would write it (queued, the waiting mark, succeeded).
"""

from __future__ import annotations

import json

import falcon.testing
import pytest

from shared.jobstatus import JobStatus, JobStatusStore
from shared.jobstatus.middleware import rank
from shared.queues import ENTITY_QUEUES
from tests.approvals.conftest import TENANT, Outbox, auth
from tests.approvals.test_review_binding import (
    POLICY,
    PolicyApi,
    approval,
    decide,
    event,
    request_of,
    run_for,
    workflow,
)
from workflow_service.app import Deps, create_app
from workflow_service.approvals import reassign
from workflow_service.db import database
from workflow_service.models import Execution
from workflow_service.runtime import build_engine
from workflow_service.users.directory import save_user

QUEUE = ENTITY_QUEUES["policy"]


class RecordingOutbox(Outbox):
    """The test broker, recording job status like every broker the services build."""

    def __init__(self, store: JobStatusStore):
        super().__init__()
        self.middleware = [JobStatus(store)]


@pytest.fixture
def store(redis_client, namespace) -> JobStatusStore:
    return JobStatusStore(redis_client, namespace)


@pytest.fixture
def outbox(store) -> RecordingOutbox:
    return RecordingOutbox(store)


@pytest.fixture
def api() -> PolicyApi:
    api = PolicyApi()
    api.policies[POLICY] = {
        "id": POLICY,
        "title": "Access control",
        "owner": "olivia",
        "created_by": "olivia",
        "status": "in_review",
        "version": 3,
    }
    return api


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox, api):
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    test_client = falcon.testing.TestClient(app)
    test_client.engine = engine
    return test_client


def parked_job(store, execution_id: str) -> str:
    """Record the execution's run job as the worker does: it parked the execution for
    the approval's first stage and succeeded."""
    execution = Execution.get_by_id(execution_id)
    request = request_of(execution_id)
    job = execution.job_id
    identity = {"id": job, "queue": QUEUE, "actor": "run_execution", "tenant": TENANT}
    for state in ("queued", "running", "succeeded"):
        fields = None
        if state == "succeeded":
            marker = {
                "status": "waiting_approval",
                "execution_id": execution_id,
                "approval_id": request.id,
                "approvers": ["first-stage"],
            }
            fields = {"waiting": json.dumps(marker)}
        store.transition(
            job,
            QUEUE,
            state=state,
            rank=rank(state, 0 if state == "queued" else 1),
            tenant=TENANT,
            fields=fields,
            identity=identity,
        )
    assert store.get(job)["tree_state"] == "waiting"
    return job


def assert_ended(store, job: str, status: str, why: str) -> None:
    record = store.get(job)
    assert record["waiting"] is None
    assert record["tree_state"] == status, record["tree_cause"]
    ended = record["tree_cause"]["ended"]
    assert ended["status"] == status and why in ended["reason"], ended
    waiting, _ = store.list_jobs(queues=[QUEUE], tenant=TENANT, tree_states=["waiting"])
    assert job not in [item["id"] for item in waiting]


@pytest.mark.parametrize(
    ("event_type", "data", "why"),
    [
        ("policy.deleted", {}, "deleted"),
        ("policy.status_changed", {"status": "archived", "version": 4}, "archived"),
        ("policy.status_changed", {"status": "draft", "version": 4}, "stale"),
    ],
)
def test_an_entity_event_that_closes_the_approval_ends_the_job_s_wait(
    client, outbox, store, event_type, data, why
):
    # Given: an execution parked for an approval, its job waiting
    execution_id = run_for(client, outbox, workflow(client, [approval()]))
    job = parked_job(store, execution_id)
    # When: the policy is deleted, archived or withdrawn
    client.engine.dispatch(event(event_type, data))
    # Then: the execution is cancelled and the job no longer waits
    assert Execution.get_by_id(execution_id).status == "cancelled"
    assert_ended(store, job, "cancelled", why)


def test_a_stale_decision_ends_the_job_s_wait(client, outbox, store, api):
    execution_id = run_for(client, outbox, workflow(client, [approval()]))
    job = parked_job(store, execution_id)
    api.policies[POLICY].update(status="draft", version=5)
    answer = decide(client, request_of(execution_id).id, "bob")
    assert answer.status_code == 409 and answer.json["title"] == "Approval is stale"
    assert_ended(store, job, "cancelled", "stale")


def test_a_cancel_through_the_api_ends_the_job_s_wait(client, outbox, store):
    execution_id = run_for(client, outbox, workflow(client, [approval()]))
    job = parked_job(store, execution_id)
    answer = client.simulate_post(
        f"/executions/{execution_id}/cancel", headers=auth("ed", ["editor"])
    )
    assert answer.status_code == 200, answer.json
    assert_ended(store, job, "cancelled", "cancelled on request")


def test_the_job_names_each_stage_s_approvers_and_fails_when_none_is_left(client, outbox, store):
    # Given: alice decides the first stage, bob and carol the second (both needed)
    step = approval(
        stages=[
            {"approvers": ["user:alice"]},
            {"approvers": ["user:bob", "user:carol"], "mode": "all"},
        ],
    )
    del step["approvers"]
    execution_id = run_for(client, outbox, workflow(client, [step]))
    job = parked_job(store, execution_id)
    request = request_of(execution_id)
    # When: alice approves
    answer = decide(client, request.id, "alice")
    assert answer.status_code == 200 and answer.json["stage"] == 2, answer.json
    # Then: the job waits for the second stage's people
    waiting = store.get(job)["tree_cause"]["waiting"]
    assert waiting["approvers"] == ["bob", "carol"]
    assert waiting["approval_id"] == request.id
    # When: bob approves, carol is left
    assert decide(client, request.id, "bob").json["outcome"] is None
    assert store.get(job)["waiting"]["approvers"] == ["carol"]


def test_a_next_stage_nobody_can_decide_fails_the_job(client, outbox, store):
    step = approval(stages=[{"approvers": ["user:alice"]}, {"approvers": ["user:bob"]}])
    del step["approvers"]
    execution_id = run_for(client, outbox, workflow(client, [step]))
    job = parked_job(store, execution_id)
    request = request_of(execution_id)
    # bob leaves before the second stage opens
    save_user(TENANT, "bob", name="Bob", roles=["approver"], active=False)
    answer = decide(client, request.id, "alice")
    assert answer.json["outcome"] == "cancelled", answer.json
    assert Execution.get_by_id(execution_id).status == "failed"
    assert_ended(store, job, "failed", "eligible")
    assert store.get(job)["tree_cause"]["error"]["type"] == "ExecutionFailed"
    failed, _ = store.list_jobs(queues=[QUEUE], tenant=TENANT, tree_states=["failed"])
    assert job in [item["id"] for item in failed]


def test_reassigned_slots_are_named_on_the_job(client, outbox, store):
    # Given: the approver role's stage (alice, bob, carol)
    execution_id = run_for(client, outbox, workflow(client, [approval()]))
    job = parked_job(store, execution_id)
    # When: bob leaves and erin joins the role
    save_user(TENANT, "erin", name="Erin", email="erin@example.org", roles=["approver"])
    save_user(TENANT, "bob", name="Bob", roles=["approver"], active=False)
    assert reassign.reassign_departed(outbox, client.engine.resume)
    # Then: the job waits for alice, carol and erin
    approvers = store.get(job)["tree_cause"]["waiting"]["approvers"]
    assert sorted(approvers) == ["alice", "carol", "erin"]
