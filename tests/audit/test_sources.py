"""What the sources record: one entry per change, whoever or whatever made it."""

from __future__ import annotations

from shared.events import Event
from tests.audit.conftest import TENANT, auth, chain_all
from workflow_service.audit import chain
from workflow_service.audit.models import AuditEntry, AuditPending
from workflow_service.models import Execution, Task


def actions(tenant: str = TENANT) -> list[tuple[str, str, str]]:
    chain_all(tenant)
    rows = AuditEntry.select().where(AuditEntry.tenant_id == tenant).order_by(AuditEntry.seq)
    return [(e.action, e.actor, e.entity_type) for e in rows]


def workflow_body(**changes) -> dict:
    return {
        "name": "Review new policies",
        "entity_type": "policy",
        "trigger": "on_create",
        "status": "active",
        "steps": [
            {"kind": "create_task", "role": "approver", "title": "Review {{ entity.title }}"}
        ],
        **changes,
    }


def test_workflow_changes_are_recorded_with_who_made_them(client):
    created = client.simulate_post("/workflows", json=workflow_body(), headers=auth("olivia"))
    assert created.status_code == 201, created.text
    wid = created.json["id"]
    headers = auth("olivia")
    edited = client.simulate_patch(
        f"/workflows/{wid}", json={"name": "Renamed", "version": 1}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    assert client.simulate_post(f"/workflows/{wid}/deactivate", headers=headers).status_code == 200
    assert client.simulate_post(f"/workflows/{wid}/archive", headers=headers).status_code == 200
    assert actions() == [
        ("workflow.created", "olivia", "workflow"),
        ("workflow.updated", "olivia", "workflow"),
        ("workflow.deactivated", "olivia", "workflow"),
        ("workflow.archived", "olivia", "workflow"),
    ]
    updated = AuditEntry.get(AuditEntry.action == "workflow.updated")
    assert updated.entity_id == wid
    assert updated.digest["version"] == 2 and updated.digest["changed"] == ["name"]


def test_a_deleted_workflow_is_recorded(client):
    wid = client.simulate_post(
        "/workflows", json=workflow_body(status="inactive"), headers=auth("olivia")
    ).json["id"]
    assert client.simulate_delete(f"/workflows/{wid}", headers=auth("olivia")).status_code == 204
    assert actions()[-1] == ("workflow.deleted", "olivia", "workflow")


def test_a_request_that_records_sends_the_chain_builder_once(client, outbox):
    client.simulate_post("/workflows", json=workflow_body(), headers=auth("olivia"))
    client.simulate_post("/workflows", json=workflow_body(), headers=auth("olivia"))
    # One builder message for the burst: the second request found one queued
    builders = outbox.take("append_audit")
    assert [m.args for m in builders] == [(TENANT,)]
    assert builders[0].queue_name == "governance.audit"
    # A request that changes nothing sends none
    client.simulate_get("/workflows", headers=auth("olivia"))
    assert outbox.take("append_audit") == []


def test_an_event_and_its_execution_are_recorded_once_however_often_delivered(client, engine):
    client.simulate_post("/workflows", json=workflow_body(), headers=auth("olivia"))
    event = Event(
        event_type="policy.created",
        entity_type="policy",
        entity_id="p-1",
        tenant_id=TENANT,
        actor="olivia",
        data={"title": "Travel", "status": "draft", "owner": "olivia"},
    )
    # Given the event delivered twice, and its execution run twice (a redelivery)
    [execution] = engine.dispatch(event)
    engine.dispatch(event)
    engine.run(execution.id)
    engine.run(execution.id)
    recorded = actions()
    # Then one entry for the event, and one for each thing the execution did
    assert recorded[1:] == [
        ("policy.created", "olivia", "policy"),
        ("execution.started", "system", "execution"),
        ("task.created", "system", "task"),
        ("step.completed", "system", "execution"),
        ("execution.completed", "system", "execution"),
    ]
    entry = AuditEntry.get(AuditEntry.action == "policy.created")
    assert entry.source_id == f"event:{event.event_id}"
    assert entry.digest["status"] == "draft" and entry.digest["title"] == "Travel"
    assert Execution.get_by_id(execution.id).status == "completed"
    # A third delivery after the chain was built adds nothing either
    engine.dispatch(event)
    assert chain_all() == 0
    assert AuditPending.select().count() == 0
    assert chain.verify(TENANT)["intact"] is True


def test_task_completion_user_edits_and_a_cancel_are_recorded(client, engine):
    client.simulate_post("/workflows", json=workflow_body(), headers=auth("olivia"))
    event = Event(
        event_type="policy.created",
        entity_type="policy",
        entity_id="p-2",
        tenant_id=TENANT,
        actor="olivia",
        data={"title": "Travel"},
    )
    [execution] = engine.dispatch(event)
    engine.run(execution.id)
    task = Task.get()
    done = client.simulate_post(f"/tasks/{task.id}/complete", headers=auth("bob", ["approver"]))
    assert done.status_code == 200, done.text
    put = client.simulate_put(
        "/users/zoe", json={"name": "Zoe", "roles": ["viewer"]}, headers=auth("root", ["admin"])
    )
    assert put.status_code in (200, 201), put.text
    # A manual run, cancelled before it runs
    wid = client.simulate_post(
        "/workflows", json=workflow_body(trigger="manual"), headers=auth("olivia")
    ).json["id"]
    run = client.simulate_post(
        f"/workflows/{wid}/run", json={"entity_id": "p-3"}, headers=auth("olivia")
    )
    assert run.status_code == 202, run.text
    cancel = client.simulate_post(
        f"/executions/{run.json['execution_id']}/cancel", headers=auth("olivia")
    )
    assert cancel.status_code == 200, cancel.text
    recorded = actions()
    assert ("task.completed", "bob", "task") in recorded
    assert ("user.created", "root", "user") in recorded
    assert ("execution.cancelled", "olivia", "execution") in recorded
    # The run itself is a person's act, in the same commit as its execution
    requested = AuditEntry.get(AuditEntry.action == "execution.requested")
    assert (requested.actor, requested.entity_id) == ("olivia", run.json["execution_id"])
    assert requested.digest["workflow_id"] == wid and requested.digest["entity"] == "policy:p-3"


def test_an_operators_queue_pause_is_recorded(client):
    headers = auth("opal", ["operator"])
    paused = client.simulate_post("/queues/governance.export/pause", headers=headers)
    assert paused.status_code == 200, paused.text
    client.simulate_post("/queues/governance.export/resume", headers=headers)
    recorded = actions()
    assert recorded == [
        ("queue.paused", "opal", "queue"),
        ("queue.resumed", "opal", "queue"),
    ]
    entry = AuditEntry.get(AuditEntry.action == "queue.paused")
    assert entry.entity_id == "governance.export"


def test_a_refused_request_records_nothing(client):
    refused = client.simulate_post(
        "/queues/governance.export/pause", headers=auth("dave", ["viewer"])
    )
    assert refused.status_code == 403
    assert actions() == []


def test_a_user_import_is_recorded_with_its_file_as_actor(workflow_db):
    from workflow_service.audit.record import act_as
    from workflow_service.users.importing import import_records
    from workflow_service.users.schemas import UserRecord

    act_as("import:people.csv")
    try:
        import_records(
            [UserRecord(id="zoe", name="Zoe", roles=["viewer"])],
            TENANT,
        )
    finally:
        act_as(None)
    assert actions() == [("user.created", "import:people.csv", "user")]
