"""Approvals are bound to what was reviewed: the entity's version and status they were
asked for. A decision on anything else changes nothing and closes the approval as
stale; an entity's deletion or archiving closes its approvals and stops its executions;
a person who left the directory no longer decides, and their slots go to others; the
templates make one workflow per tenant."""

from __future__ import annotations

import threading

import falcon.testing
import httpx
import pytest
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

from shared.db import migrate
from shared.events import Event
from tests.approvals.conftest import TENANT, auth
from tests.approvals.test_decisions import run_pending
from workflow_service.app import Deps, create_app
from workflow_service.approvals import reassign
from workflow_service.approvals.models import ApprovalRefusal, ApprovalRequest, ApprovalSlot
from workflow_service.db import database
from workflow_service.migrations import all_migrations
from workflow_service.models import Execution, Notification, Workflow
from workflow_service.runtime import build_engine
from workflow_service.users.directory import delete_user, save_user

POLICY = "p-1"


class PolicyApi:
    """The policy api as the workflow service sees it: policies by id (absent: 404),
    and the transitions asked of it, which move the policy as the api would."""

    def __init__(self):
        self.policies: dict[str, dict] = {}
        self.moves: list[tuple[str, dict, dict]] = []

    def request(self, method, path, tenant_id, *, json=None, headers=None, **kwargs):
        policy_id = path.split("/")[2]
        policy = self.policies.get(policy_id)
        if method == "GET":
            if policy is None:
                return httpx.Response(404, json={"title": "Policy not found"})
            return httpx.Response(200, json=policy)
        self.moves.append((path, json or {}, dict(headers or {})))
        policy["status"], policy["version"] = (json or {})["to"], policy["version"] + 1
        return httpx.Response(200, json=policy)

    def close(self) -> None:
        pass


@pytest.fixture
def api():
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


def workflow(client, steps, **fields) -> str:
    body = {
        "name": "review",
        "entity_type": "policy",
        "trigger": "manual",
        "status": "active",
        "steps": steps,
        **fields,
    }
    created = client.simulate_post("/workflows", json=body, headers=auth("root", ["admin"]))
    assert created.status_code == 201, created.json
    return created.json["id"]


def approval(approvers=("role:approver",), on_approve=None, **options) -> dict:
    move = [{"kind": "change_status", "to": "approved"}]
    return {
        "kind": "require_approval",
        "approvers": list(approvers),
        "on_approve": move if on_approve is None else on_approve,
        "on_reject": [{"kind": "change_status", "to": "draft"}],
        **options,
    }


def run_for(client, outbox, workflow_id, data=None) -> str:
    """A manual run for the policy (its data: the api's policy, or ``data``)."""
    entity = {k: v for k, v in client.engine.api.policies[POLICY].items() if k != "id"}
    ran = client.simulate_post(
        f"/workflows/{workflow_id}/run",
        json={"entity_id": POLICY, "data": {**entity, **(data or {})}},
        headers=auth("ed", ["editor"]),
    )
    assert ran.status_code == 202, ran.json
    run_pending(client.engine, outbox)
    return ran.json["execution_id"]


def request_of(execution_id) -> ApprovalRequest:
    return ApprovalRequest.get(ApprovalRequest.execution == execution_id)


def decide(client, approval_id, user, decision="approve", roles=None, **body):
    return client.simulate_post(
        f"/approvals/{approval_id}/decision",
        json={"decision": decision, **body},
        headers=auth(user, roles),
    )


def event(event_type, data, entity_id=POLICY) -> Event:
    return Event(
        event_type=event_type,
        entity_type="policy",
        entity_id=entity_id,
        tenant_id=TENANT,
        actor="ed",
        data=data,
    )


# ------------------------------------------------------------------- bound to a version


def test_a_decision_names_the_version_it_reviewed(client, outbox, api):
    # Given: an approval asked for version 3, in review
    request = request_of(run_for(client, outbox, workflow(client, [approval()])))
    assert (request.entity_version, request.entity_status) == (3, "in_review")
    shown = client.simulate_get(f"/approvals/{request.id}", headers=auth("bob")).json
    assert (shown["entity_version"], shown["entity_status"]) == (3, "in_review")
    # When: bob approves naming version 2 (what he read earlier)
    answer = decide(client, request.id, "bob", version=2)
    # Then: refused, naming the version the approval is for; nothing decided
    assert answer.status_code == 409, answer.json
    assert answer.json["title"] == "Stale version"
    assert "version 3" in answer.json["description"]
    assert ApprovalRequest.get_by_id(request.id).status == "pending"
    # a version that is not a whole number is bad input, not a 500
    assert decide(client, request.id, "bob", version="3").status_code in (400, 422)
    # naming version 3 decides
    answer = decide(client, request.id, "bob", version=3)
    assert answer.status_code == 200 and answer.json["outcome"] == "approved", answer.json


def test_an_entity_that_moved_on_is_not_approved_and_the_approval_closes(client, outbox, api):
    # Given: an approval for version 3; the policy was withdrawn and edited since
    execution_id = run_for(client, outbox, workflow(client, [approval()]))
    request = request_of(execution_id)
    api.policies[POLICY].update(status="draft", version=5)
    # When: bob approves (not naming a version)
    answer = decide(client, request.id, "bob")
    # Then: nothing changes: 409 naming the current version; the approval is closed as
    # stale, its execution stops, and the api is asked to move nothing
    assert answer.status_code == 409, answer.json
    assert answer.json["title"] == "Approval is stale"
    assert "version 5" in answer.json["description"]
    closed = ApprovalRequest.get_by_id(request.id)
    assert closed.status == "cancelled" and "stale" in closed.closed_reason
    assert Execution.get_by_id(execution_id).status == "cancelled"
    assert run_pending(client.engine, outbox) == 0 and api.moves == []
    # and a later decision says it is closed
    again = decide(client, request.id, "carol", "reject")
    assert again.status_code == 409 and "stale" in again.json["description"]


def test_a_rejection_of_an_entity_that_moved_on_changes_nothing(client, outbox, api):
    request = request_of(run_for(client, outbox, workflow(client, [approval()])))
    api.policies[POLICY]["status"] = "approved"  # decided elsewhere meanwhile
    answer = decide(client, request.id, "bob", "reject")
    assert answer.status_code == 409 and answer.json["title"] == "Approval is stale"
    assert "approved" in answer.json["description"]
    assert ApprovalRequest.get_by_id(request.id).status == "cancelled"
    assert api.moves == []  # not moved back to draft


def test_a_deleted_entity_is_not_decided(client, outbox, api):
    request = request_of(run_for(client, outbox, workflow(client, [approval()])))
    del api.policies[POLICY]
    answer = decide(client, request.id, "bob")
    assert answer.status_code == 409 and "no longer exists" in answer.json["description"]
    assert ApprovalRequest.get_by_id(request.id).closed_reason.startswith("stale")


def test_an_approval_after_a_status_change_is_for_the_version_it_moved_to(client, outbox, api):
    # Given: a workflow that sends a draft (version 1) to review, then asks approval
    api.policies[POLICY].update(status="draft", version=1)
    steps = [{"kind": "change_status", "to": "in_review"}, approval()]
    request = request_of(run_for(client, outbox, workflow(client, steps)))
    # Then: the approval is for the version in review, not the trigger's
    assert (request.entity_version, request.entity_status) == (2, "in_review")
    assert decide(client, request.id, "bob", version=2).json["outcome"] == "approved"


def test_the_approver_who_settled_it_is_named_first(client, outbox, api):
    step = approval(approvers=["user:alice", "user:bob", "user:carol"], mode="quorum", quorum=2)
    request = request_of(run_for(client, outbox, workflow(client, [step])))
    assert decide(client, request.id, "carol").status_code == 200
    assert decide(client, request.id, "alice").json["outcome"] == "approved"
    run_pending(client.engine, outbox)
    ((path, body, headers),) = api.moves
    assert body["to"] == "approved" and headers["X-Decided-By"] == "alice,carol"


# --------------------------------------------------------------------- lifecycle events


@pytest.mark.parametrize(
    "event_type, data, why",
    [
        ("policy.deleted", {"status": "in_review", "version": 4}, "was deleted"),
        ("policy.status_changed", {"status": "archived", "version": 4}, "was archived"),
    ],
)
def test_a_deleted_or_archived_entity_closes_its_approvals_and_stops(
    client, outbox, api, event_type, data, why
):
    # Given: an approval waiting, and another run of the policy not started yet
    engine = client.engine
    waiting = run_for(client, outbox, workflow(client, [approval()]))
    # and one for another policy
    api.policies["p-2"] = {**api.policies[POLICY], "id": "p-2"}
    elsewhere = client.simulate_post(
        f"/workflows/{workflow(client, [approval()])}/run",
        json={"entity_id": "p-2", "data": {"status": "in_review", "version": 3}},
        headers=auth("ed", ["editor"]),
    ).json["execution_id"]
    run_pending(engine, outbox)
    tell = {"kind": "notify", "recipients": ["user:bob"], "subject": "hello"}
    queued = client.simulate_post(
        f"/workflows/{workflow(client, [tell])}/run",
        json={"entity_id": POLICY, "data": {"status": "in_review", "version": 3}},
        headers=auth("ed", ["editor"]),
    ).json["execution_id"]
    # When: the event reaches dispatch (no workflow matches it)
    gone = event(event_type, data)
    assert engine.dispatch(gone) == []
    # Then: the approval closed with the reason, and both executions stopped
    request = request_of(waiting)
    assert request.status == "cancelled" and why in request.closed_reason
    assert (
        not ApprovalSlot.select()
        .where((ApprovalSlot.request == request.id) & (ApprovalSlot.status == "pending"))
        .exists()
    )
    assert Execution.get_by_id(waiting).status == "cancelled"
    assert Execution.get_by_id(queued).status == "cancelled"
    assert why in Execution.get_by_id(queued).error
    # the other policy's approval is untouched; nobody can decide the closed one
    assert request_of(elsewhere).status == "pending"
    assert Execution.get_by_id(elsewhere).status == "waiting_approval"
    answer = decide(client, request.id, "bob")
    assert answer.status_code == 409 and why in answer.json["description"]
    # a redelivery closes nothing more
    assert engine.dispatch(gone) == []


def test_a_status_change_away_from_the_review_closes_its_approval(client, outbox, api):
    waiting = run_for(client, outbox, workflow(client, [approval()]))
    engine = client.engine
    # an update of another policy, or an event that changes nothing, closes nothing
    engine.dispatch(event("policy.updated", {"status": "draft", "version": 9}, "p-9"))
    engine.dispatch(event("policy.status_changed", {"status": "in_review", "version": 3}))
    assert request_of(waiting).status == "pending"
    # withdrawn to draft (version 4): stale at once
    engine.dispatch(event("policy.status_changed", {"status": "draft", "version": 4}))
    request = request_of(waiting)
    assert request.status == "cancelled" and request.closed_reason.startswith("stale")
    assert Execution.get_by_id(waiting).status == "cancelled"


# --------------------------------------------------------------------- the directory


def test_a_deactivated_approver_no_longer_decides_and_others_get_the_slot(client, outbox, api):
    # Given: a stage for the approver role (alice, bob, carol)
    request = request_of(run_for(client, outbox, workflow(client, [approval()])))
    # When: bob is deactivated in the directory, and tries to decide with his token
    save_user(TENANT, "bob", name="Bob", roles=["approver"], active=False)
    answer = decide(client, request.id, "bob")
    # Then: refused and recorded; his slot is gone
    assert answer.status_code == 403, answer.json
    assert answer.json["title"] == "Approver not in the directory"
    (refusal,) = ApprovalRefusal.select().where(ApprovalRefusal.request == request.id)
    assert (refusal.user_id, refusal.reason) == ("bob", "not_in_directory")
    slots = {
        s.approver: s.status
        for s in ApprovalSlot.select().where(ApprovalSlot.request == request.id)
    }
    assert slots == {"alice": "pending", "bob": "cancelled", "carol": "pending"}
    # When: a new approver joins and carol is removed from the directory
    save_user(TENANT, "erin", name="Erin", email="erin@example.org", roles=["approver"])
    delete_user(TENANT, "carol")
    assert reassign.reassign_departed(outbox, client.engine.resume) == [request.id]
    # Then: the role's new person has a slot and is told; carol's is cancelled
    slots = {
        s.approver: s.status
        for s in ApprovalSlot.select().where(ApprovalSlot.request == request.id)
    }
    assert slots == {
        "alice": "pending",
        "bob": "cancelled",
        "carol": "cancelled",
        "erin": "pending",
    }
    assert Notification.select().where(Notification.recipient == "erin").exists()
    assert decide(client, request.id, "carol").status_code == 403
    assert decide(client, request.id, "erin", roles=["approver"]).json["outcome"] == "approved"
    # nothing left to reassign
    assert reassign.reassign_departed(outbox, client.engine.resume) == []


def test_a_stage_left_without_approvers_is_escalated(client, outbox, api):
    step = approval(approvers=["user:alice"], escalate_to=["role:admin"])
    request = request_of(run_for(client, outbox, workflow(client, [step])))
    delete_user(TENANT, "alice")
    assert reassign.reassign_departed(outbox, client.engine.resume) == [request.id]
    (note,) = Notification.select().where(
        (Notification.recipient == "root") & (Notification.subject.startswith("Approval lacks"))
    )
    assert "alice" in note.body and request.id in note.body
    assert ApprovalRequest.get_by_id(request.id).status == "pending"


def test_when_the_only_undecided_approver_leaves_an_all_stage_is_decided(client, outbox, api):
    step = approval(approvers=["user:alice", "user:bob"], mode="all")
    execution_id = run_for(client, outbox, workflow(client, [step]))
    request = request_of(execution_id)
    assert decide(client, request.id, "alice").json["outcome"] is None
    save_user(TENANT, "bob", name="Bob", roles=["approver"], active=False)
    reassign.reassign_departed(outbox, client.engine.resume)
    settled = ApprovalRequest.get_by_id(request.id)
    assert (settled.status, settled.decided_by) == ("approved", "alice")
    run_pending(client.engine, outbox)
    assert Execution.get_by_id(execution_id).status == "completed"
    assert api.moves[0][2]["X-Decided-By"] == "alice"


# ----------------------------------------------------------------------- templates


def test_templates_are_listed_with_what_they_do(client):
    answer = client.simulate_get("/workflows/templates", headers=auth("dave"))
    assert answer.status_code == 200, answer.json
    [template] = [t for t in answer.json["items"] if t["name"] == "policy-approval"]
    assert "approver" in template["description"]
    assert template["href"] == "/workflows/from-template/policy-approval"
    assert client.simulate_get("/workflows/templates").status_code == 401


def test_a_template_makes_one_workflow_per_tenant(client):
    admin = auth("root", ["admin"])
    path = "/workflows/from-template/policy-approval"
    first = client.simulate_post(path, json={}, headers=admin)
    assert first.status_code == 201, first.json
    # the second create answers with the first workflow
    second = client.simulate_post(path, json={"name": "Another"}, headers=admin)
    assert second.status_code == 200, second.json
    assert second.json["id"] == first.json["id"] and second.json["name"] == "Policy approval"
    assert second.headers["location"] == f"/workflows/{first.json['id']}"
    # another tenant has its own
    theirs = client.simulate_post(path, json={}, headers=auth("gina", ["admin"], "globex"))
    assert theirs.status_code == 201 and theirs.json["id"] != first.json["id"]
    # once archived, a new one is made
    archived = client.simulate_post(f"/workflows/{first.json['id']}/archive", headers=admin)
    assert archived.status_code == 200, archived.json
    third = client.simulate_post(path, json={}, headers=admin)
    assert third.status_code == 201 and third.json["id"] != first.json["id"]
    assert client.simulate_post(path, json={}, headers=admin).json["id"] == third.json["id"]


def test_concurrent_template_creates_make_one_workflow(client, workflow_db):
    admin = auth("root", ["admin"])
    answers, barrier = [], threading.Barrier(6)

    def create():
        barrier.wait()  # the app opens a connection per request
        answer = client.simulate_post(
            "/workflows/from-template/policy-approval", json={}, headers=admin
        )
        answers.append((answer.status_code, answer.json.get("id")))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in answers) == [200] * 5 + [201], answers
    assert len({workflow_id for _, workflow_id in answers}) == 1
    assert Workflow.select().where(Workflow.tenant_id == TENANT).count() == 1


def test_migrations_174_and_175_upgrade_an_older_schema(workflow_db):
    migrator = SchemaMigrator.from_database(workflow_db)
    run(
        migrator.drop_index(
            "approval_request", "approval_request_tenant_id_entity_type_entity_id_status"
        ),
        migrator.drop_column("approval_request", "entity_status"),
        migrator.drop_column("approval_request", "closed_reason"),
        migrator.drop_column("approval_slot", "known"),
    )
    workflow_db.execute_sql("DROP TABLE template_workflow")
    workflow_db.execute_sql(
        "DELETE FROM schema_history WHERE service = 'workflow_service' AND version IN (174, 175)"
    )
    assert [m.version for m in migrate(workflow_db, all_migrations())] == [174, 175]
    assert {"entity_status", "closed_reason"} <= {
        c.name for c in workflow_db.get_columns("approval_request")
    }
    assert "known" in {c.name for c in workflow_db.get_columns("approval_slot")}
    assert "template_workflow" in workflow_db.get_tables()
