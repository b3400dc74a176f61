"""Ready-made workflows for assessments and evidence: listed, made once per tenant, and
run through the engine against an api that records what it is asked."""

from __future__ import annotations

import contextlib

import falcon.testing
import httpx
import pytest

from shared.events import DECIDED_BY_HEADER, Event
from tests.approvals.conftest import TENANT, auth
from workflow_service.app import Deps, create_app
from workflow_service.db import database
from workflow_service.engine import ExecutionFailed, run_actor_name
from workflow_service.models import Execution, Notification, Task, Workflow
from workflow_service.runtime import build_engine


class EntityApi:
    """Assessments and evidence by collection and id; the moves asked of them."""

    def __init__(self):
        self.entities: dict[tuple[str, str], dict] = {}
        self.moves: list[tuple[str, dict, dict]] = []

    def request(self, method, path, tenant_id, *, json=None, headers=None, **kwargs):
        _, collection, entity_id, *rest = path.split("/")
        entity = self.entities.get((collection, entity_id))
        if entity is None:
            return httpx.Response(404, json={"title": "Not found"})
        if method == "GET":
            return httpx.Response(200, json=entity)
        self.moves.append((path, json or {}, dict(headers or {})))
        entity["status"], entity["version"] = (json or {})["to"], entity["version"] + 1
        return httpx.Response(200, json=entity)

    def close(self) -> None:
        pass


@pytest.fixture
def api():
    return EntityApi()


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox, api):
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    test_client = falcon.testing.TestClient(app)
    test_client.engine = engine
    return test_client


def run_pending(client, outbox, entity_type) -> int:
    messages = outbox.take(run_actor_name(entity_type))
    for message in messages:
        with contextlib.suppress(ExecutionFailed):
            client.engine.run(message.args[0])
    return len(messages)


def from_template(client, template, user="olivia", **body):
    return client.simulate_post(
        f"/workflows/from-template/{template}", json=body, headers=auth(user, ["editor"])
    )


def test_every_template_is_listed_with_what_it_does(client):
    answer = client.simulate_get("/workflows/templates", headers=auth("dave"))
    assert answer.status_code == 200, answer.json
    listed = {t["name"]: t for t in answer.json["items"]}
    assert set(listed) == {"policy-approval", "assessment-completion", "evidence-expiry"}
    assert listed["assessment-completion"]["entity_type"] == "assessment"
    assert "under_review" in listed["assessment-completion"]["description"]
    expiry = listed["evidence-expiry"]
    assert expiry["href"] == "/workflows/from-template/evidence-expiry"
    assert [w["trigger"] for w in expiry["workflows"]] == ["on_expiring", "on_expired"]
    assert "collector" in expiry["description"]


@pytest.mark.parametrize("template", ["assessment-completion", "evidence-expiry"])
def test_a_template_makes_its_workflows_once_per_tenant(client, template):
    first = from_template(client, template)
    assert first.status_code == 201, first.json
    ids = [w["id"] for w in first.json["workflows"]]
    assert first.json["id"] == ids[0]
    second = from_template(client, template, name="Another")
    assert second.status_code == 200, second.json
    assert [w["id"] for w in second.json["workflows"]] == ids
    assert Workflow.select().where(Workflow.tenant_id == TENANT).count() == len(ids)
    # another tenant has its own
    theirs = client.simulate_post(
        f"/workflows/from-template/{template}", json={}, headers=auth("gina", ["admin"], "globex")
    )
    assert theirs.status_code == 201 and theirs.json["id"] not in ids


def test_evidence_expiry_is_two_workflows_and_one_comes_back_when_archived(client):
    first = from_template(client, "evidence-expiry")
    expiring, expired = first.json["workflows"]
    assert (expiring["trigger"], expired["trigger"]) == ("on_expiring", "on_expired")
    archived = client.simulate_post(
        f"/workflows/{expired['id']}/archive", headers=auth("root", ["admin"])
    )
    assert archived.status_code == 200, archived.json
    again = from_template(client, "evidence-expiry")
    assert again.status_code == 201, again.json
    assert again.json["workflows"][0]["id"] == expiring["id"]
    assert again.json["workflows"][1]["id"] != expired["id"]


def assessment_under_review(api, assessor="carol"):
    entity = {
        "id": "a-1",
        "title": "Q3 access review",
        "assessor": assessor,
        "created_by": "olivia",
        "submitted_by": "olivia",
        "status": "under_review",
        "version": 4,
    }
    api.entities[("assessments", "a-1")] = entity
    return Event(
        event_type="assessment.status_changed",
        entity_type="assessment",
        entity_id="a-1",
        tenant_id=TENANT,
        actor="olivia",
        data={k: v for k, v in entity.items() if k != "id"},
    )


def pending(client, user):
    listed = client.simulate_get("/approvals", params={"status": "pending"}, headers=auth(user))
    assert listed.status_code == 200, listed.json
    return listed.json["items"]


def decide(client, user, approval_id, decision="approve"):
    return client.simulate_post(
        f"/approvals/{approval_id}/decision", json={"decision": decision}, headers=auth(user)
    )


def test_assessment_completion_completes_for_an_approver_never_the_assessor(client, outbox, api):
    # Given: the template, and carol's assessment sent to review by olivia
    assert from_template(client, "assessment-completion").status_code == 201
    [execution] = client.engine.dispatch(assessment_under_review(api, assessor="carol"))
    run_pending(client, outbox, "assessment")
    assert Execution.get_by_id(execution.id).status == "waiting_approval"
    [approval] = pending(client, "bob")
    assert approval["approves_entity"] is True
    # When: the assessor tries to decide, then bob approves
    refused = decide(client, "carol", approval["id"])
    assert refused.status_code == 403, refused.json
    assert decide(client, "bob", approval["id"]).status_code == 200
    run_pending(client, outbox, "assessment")
    # Then: the assessment moved to completed, as bob's decision
    assert Execution.get_by_id(execution.id).status == "completed"
    [(path, body, headers)] = api.moves
    assert path == "/assessments/a-1/transitions" and body["to"] == "completed"
    assert headers[DECIDED_BY_HEADER] == "bob"
    # And the assessor is told
    notes = Notification.select().where(Notification.subject.startswith("Assessment completed"))
    assert [n.recipient for n in notes] == ["carol"]


def test_a_rejected_assessment_goes_back_in_progress_without_naming_deciders(client, outbox, api):
    from_template(client, "assessment-completion")
    client.engine.dispatch(assessment_under_review(api))
    run_pending(client, outbox, "assessment")
    [approval] = pending(client, "bob")
    assert decide(client, "bob", approval["id"], "reject").status_code == 200
    run_pending(client, outbox, "assessment")
    [(path, body, headers)] = api.moves
    assert body["to"] == "in_progress" and DECIDED_BY_HEADER not in headers


def test_a_move_to_evidence_rejected_names_who_rejected(client, outbox, api):
    # Given: a workflow that accepts or rejects submitted evidence
    body = {
        "name": "evidence review",
        "entity_type": "evidence",
        "trigger": "on_status_change",
        "status": "active",
        "steps": [
            {
                "kind": "require_approval",
                "approvers": ["role:approver"],
                "on_approve": [{"kind": "change_status", "to": "accepted"}],
                "on_reject": [{"kind": "change_status", "to": "rejected"}],
            }
        ],
    }
    created = client.simulate_post("/workflows", json=body, headers=auth("olivia"))
    assert created.status_code == 201, created.json
    entity = {"title": "Firewall export", "collector": "carol", "status": "submitted"}
    api.entities[("evidence", "e-1")] = {"id": "e-1", "version": 2, **entity}
    client.engine.dispatch(
        Event(
            event_type="evidence.status_changed",
            entity_type="evidence",
            entity_id="e-1",
            tenant_id=TENANT,
            actor="carol",
            data={**entity, "version": 2},
        )
    )
    run_pending(client, outbox, "evidence")
    [approval] = pending(client, "alice")
    # When: alice rejects it
    assert decide(client, "alice", approval["id"], "reject").status_code == 200
    run_pending(client, outbox, "evidence")
    # Then: the move to rejected is made for alice
    [(path, body, headers)] = api.moves
    assert (path, body["to"]) == ("/evidence/e-1/transitions", "rejected")
    assert headers[DECIDED_BY_HEADER] == "alice"


def evidence_event(kind, event_id, **data):
    return Event(
        event_id=event_id,
        event_type=f"evidence.{kind}",
        entity_type="evidence",
        entity_id="e-9",
        tenant_id=TENANT,
        data={
            "title": "SOC 2 report",
            "collector": "carol",
            "status": "accepted",
            "valid_until": "2026-12-31",
            "policies": ["p-1", "p-2"],
            **data,
        },
    )


def test_evidence_expiry_reminds_the_collector_once_per_event(client, outbox):
    # Given: the template, and olivia an editor with an inbox
    from_template(client, "evidence-expiry")
    # When: the same expiring event is delivered twice, and a later one once
    reminder = evidence_event("expiring", "ev-expiring-1", days_left=14, threshold=14)
    client.engine.dispatch(reminder)
    client.engine.dispatch(reminder)
    run_pending(client, outbox, "evidence")
    # Then: carol, the collector, is reminded once
    notes = list(Notification.select().where(Notification.subject.startswith("Evidence expiring")))
    assert [(n.recipient, n.subject) for n in notes] == [
        ("carol", "Evidence expiring in 14 day(s): SOC 2 report")
    ]
    assert "2026-12-31" in notes[0].body


def test_expired_evidence_gives_its_collector_a_task_and_tells_the_policies_owners(client, outbox):
    # Given: the template; the api's expired event names the linked policies' owners
    from_template(client, "evidence-expiry")
    expired = evidence_event(
        "expired", "ev-expired-1", status="expired", policy_owners=["dave", "erin"]
    )
    # When: it is delivered twice
    client.engine.dispatch(expired)
    client.engine.dispatch(expired)
    run_pending(client, outbox, "evidence")
    # Then: carol collects it again, and the owners (not the editors) are told, once
    [task] = Task.select()
    assert task.assignee == "carol" and task.title.endswith("SOC 2 report")
    assert "p-1, p-2" in task.description
    told = Notification.select().where(Notification.subject == "Evidence expired: SOC 2 report")
    assert sorted(n.recipient for n in told) == ["dave", "erin"]


@pytest.mark.parametrize(
    ("event_type", "data", "closes"),
    [
        ("assessment.status_changed", {"status": "cancelled", "version": 5}, True),
        ("assessment.deleted", {"status": "under_review", "version": 4}, True),
        # completed is a decision, not the end of a pending review's life
        ("assessment.updated", {"status": "under_review", "version": 4}, False),
    ],
)
def test_a_cancelled_or_deleted_assessment_closes_its_pending_approval(
    client, outbox, api, event_type, data, closes
):
    # Given: an assessment's pending approval
    from_template(client, "assessment-completion")
    [execution] = client.engine.dispatch(assessment_under_review(api))
    run_pending(client, outbox, "assessment")
    [approval] = pending(client, "bob")
    # When: the assessment is cancelled, deleted, or edited without a new version
    client.engine.dispatch(
        Event(
            event_type=event_type,
            entity_type="assessment",
            entity_id="a-1",
            tenant_id=TENANT,
            data=data,
        )
    )
    # Then: the approval closes and its execution is cancelled (or both stay)
    detail = client.simulate_get(f"/approvals/{approval['id']}", headers=auth("bob")).json
    assert (detail["status"] == "cancelled") is closes
    if closes:  # closed as the end of the assessment's life, not as a stale review
        assert "the assessment a-1 was " in detail["closed_reason"], detail["closed_reason"]
    status = Execution.get_by_id(execution.id).status
    assert status == ("cancelled" if closes else "waiting_approval")


def test_deleted_evidence_closes_its_pending_approval(client, outbox, api):
    body = {
        "name": "evidence review",
        "entity_type": "evidence",
        "trigger": "on_create",
        "status": "active",
        "steps": [{"kind": "require_approval", "approvers": ["role:approver"]}],
    }
    assert client.simulate_post("/workflows", json=body, headers=auth("olivia")).status_code == 201
    created = dict(event_type="evidence.created", entity_type="evidence", entity_id="e-2")
    client.engine.dispatch(Event(**created, tenant_id=TENANT, data={"collector": "carol"}))
    run_pending(client, outbox, "evidence")
    [approval] = pending(client, "bob")
    deleted = {**created, "event_type": "evidence.deleted"}
    client.engine.dispatch(Event(**deleted, tenant_id=TENANT, data={}))
    detail = client.simulate_get(f"/approvals/{approval['id']}", headers=auth("bob")).json
    assert detail["status"] == "cancelled" and "deleted" in detail["closed_reason"]
