"""The admin API through falcon's TestClient, on a real database and Redis."""

from __future__ import annotations

import dataclasses
import logging
import threading

import falcon.testing
import pytest

from shared.auth import issue_token
from shared.broker import create_broker
from tests.conftest import JWT_SECRET
from tests.workflow.conftest import Outbox, PolicyApi
from workflow_service.app import Deps, create_app
from workflow_service.db import database
from workflow_service.definitions import validate_definition
from workflow_service.models import Execution, Task, Workflow
from workflow_service.workflows import StaleVersion, WorkflowArchived, WorkflowStore

#: Nothing listens here: a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"

NOTIFY = {
    "kind": "notify",
    "recipients": ["owner", "role:approver"],
    "subject": "Hi {{ entity.title }}",
}
DEFINITION = {
    "name": "welcome",
    "entity_type": "policy",
    "trigger": "on_create",
    "conditions": [{"field": "policy_type", "op": "in", "value": ["security", "hr"]}],
    "steps": [NOTIFY],
}


def auth(sub="alice", roles=("editor",), tenant="acme"):
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}


@pytest.fixture
def outbox():
    return Outbox()


@pytest.fixture
def api():
    """The api's policies: p-1, p-9 and p exist; others are a 404."""
    fake = PolicyApi()
    for policy_id in ("p-1", "p-9", "p"):
        fake.add(policy_id)
    return fake


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox, api):
    from workflow_service.runtime import build_engine

    engine = build_engine(settings, database, outbox, redis_client, api=api)
    deps = Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    return falcon.testing.TestClient(create_app(settings, deps))


@pytest.fixture
def engine_for_runs(client, settings, redis_client, outbox, api):
    from workflow_service.runtime import build_engine

    return build_engine(settings, database, outbox, redis_client, api=api)


def create(client, body=None, **headers):
    return client.simulate_post("/workflows", json=body or DEFINITION, headers=headers or auth())


def test_auth_rules(client):
    assert client.simulate_get("/workflows").status_code == 401
    assert (
        client.simulate_get("/workflows", headers={"Authorization": "Bearer x"}).status_code == 401
    )
    assert create(client, **auth(roles=["viewer"])).status_code == 403
    created = create(client).json
    other = auth(tenant="globex", roles=["admin"])
    assert client.simulate_get(f"/workflows/{created['id']}", headers=other).status_code == 404
    assert (
        client.simulate_get(
            f"/workflows/{created['id']}", headers=auth(roles=["viewer"])
        ).status_code
        == 200
    )
    assert client.simulate_get("/workflows/not-a-uuid", headers=auth()).status_code == 400
    # The delivery log names recipients and holds outside receivers' answers.
    for role, status in (("viewer", 403), ("approver", 403), ("editor", 200), ("admin", 200)):
        assert client.simulate_get("/deliveries", headers=auth(roles=[role])).status_code == status


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trigger": "on_whim"}, "trigger"),
        ({"conditions": [{"field": "status", "op": "like", "value": 1}]}, "conditions.0.op"),
        ({"conditions": [{"field": "status", "op": "in", "value": "draft"}]}, "conditions.0"),
        ({"steps": [{"kind": "teleport"}]}, "steps.0.kind"),
        ({"steps": [{"kind": "notify", "subject": "x"}]}, "steps.0.recipients"),
        (
            {"steps": [{"kind": "notify", "recipients": ["role:king"], "subject": "x"}]},
            "steps.0.recipients.0",
        ),
        ({"steps": [{**NOTIFY, "colour": "red"}]}, "steps.0.colour"),
        ({"steps": ["notify"]}, "steps.0"),
        ({"steps": []}, "steps"),
        (
            {"trigger": "scheduled", "trigger_config": {"cron": "not a cron", "entity_id": "p"}},
            "trigger_config",
        ),
        (
            {"trigger": "scheduled", "trigger_config": {"cron": "0 9 * * 8", "entity_id": "p"}},
            "trigger_config",
        ),
        (
            {"trigger": "scheduled", "trigger_config": {"cron": "0 9 * * 5-2", "entity_id": "p"}},
            "trigger_config",
        ),
        (
            {
                "trigger": "scheduled",
                "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p", "timezone": ""},
            },
            "trigger_config.timezone",
        ),
        # A scheduled run is for an entity id alone: no data to match, no owner
        (
            {
                "trigger": "scheduled",
                "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p"},
                "conditions": [{"field": "status", "op": "eq", "value": "draft"}],
            },
            "conditions",
        ),
        (
            {
                "trigger": "scheduled",
                "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p"},
                "steps": [{**NOTIFY, "recipients": ["role:approver", "owner"]}],
            },
            "steps.0.recipients.1",
        ),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
        # Approving is a person's decision: only after a require_approval step approves
        ({"steps": [{"kind": "change_status", "to": "approved"}]}, "steps.0.to"),
        (
            {
                "steps": [
                    {
                        "kind": "require_approval",
                        "approvers": ["role:approver"],
                        "on_reject": [{"kind": "change_status", "to": "approved"}],
                    }
                ]
            },
            "steps.0.on_reject.0.to",
        ),
    ],
)
def test_invalid_definitions_get_a_422_naming_the_field(client, change, field):
    response = create(client, {**DEFINITION, **change})
    assert response.status_code == 422, response.text
    assert response.json["title"] == "Invalid workflow"
    assert field in [e["field"] for e in response.json["errors"]], response.json
    assert field in response.json["description"]


def test_a_workflow_may_approve_only_after_an_approval(client):
    approve_then_move = {
        "kind": "require_approval",
        "approvers": ["role:approver"],
        "on_approve": [{"kind": "change_status", "to": "approved"}],
    }
    assert create(client, {**DEFINITION, "steps": [approve_then_move]}).status_code == 201


def test_bad_bodies_are_4xx(client):
    assert (
        client.simulate_post(
            "/workflows", body="{", headers={**auth(), "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert create(client, [1, 2]).status_code == 422


def test_every_edit_is_a_new_version(client):
    created = create(client).json
    assert created["version"] == 1 and created["status"] == "inactive"
    url = f"/workflows/{created['id']}"
    patched = client.simulate_patch(url, json={"name": "renamed", "version": 1}, headers=auth())
    assert patched.status_code == 200 and patched.json["version"] == 2
    stale = client.simulate_patch(url, json={"name": "again", "version": 1}, headers=auth())
    assert stale.status_code == 412
    bad = client.simulate_patch(
        url, json={"steps": [{"kind": "nope"}], "version": 2}, headers=auth()
    )
    assert bad.status_code == 422
    active = client.simulate_post(f"{url}/activate", headers=auth())
    assert active.json["status"] == "active" and active.json["version"] == 3
    versions = client.simulate_get(f"{url}/versions", headers=auth()).json["items"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[1]["definition"]["name"] == "renamed"
    listed = client.simulate_get("/workflows?status=active", headers=auth()).json["items"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert client.simulate_post(f"{url}/archive", headers=auth()).json["status"] == "archived"
    assert client.simulate_post(f"{url}/activate", headers=auth()).status_code == 409
    archived = client.simulate_patch(url, json={"name": "x", "version": 4}, headers=auth())
    assert archived.status_code == 409
    assert client.simulate_delete(url, headers=auth()).status_code == 204
    assert client.simulate_get(url, headers=auth()).status_code == 404


def test_the_store_refuses_an_edit_based_on_a_stale_version(workflow_db):
    # Given: a workflow at version 1, and two edits both based on version 1
    store = WorkflowStore(database)
    workflow = store.create("acme", "alice", validate_definition(DEFINITION), "inactive")
    first = store.update("acme", workflow.id, "alice", {"name": "first"}, expected_version=1)
    assert first.version == 2
    # When: the second is applied after the first
    with pytest.raises(StaleVersion) as info:
        store.update("acme", workflow.id, "bob", {"name": "second"}, expected_version=1)
    # Then: it is refused, and the first edit stands
    assert (info.value.expected, info.value.current) == (1, 2)
    stored = Workflow.get_by_id(workflow.id)
    assert (stored.version, stored.name) == (2, "first")
    assert [v.version for v in store.versions(stored)] == [2, 1]
    # An edit without an expected version is not checked
    assert store.update("acme", workflow.id, "bob", {"name": "third"}).version == 3
    # Once archived, no edit lands, with or without a version
    store.set_status("acme", workflow.id, "alice", "archived")
    with pytest.raises(WorkflowArchived):
        store.update("acme", workflow.id, "bob", {"name": "fourth"})


def test_concurrent_patches_of_the_same_version_one_wins(client):
    for round_ in range(5):
        # Given: a workflow at version 1, and two editors who both loaded it
        url = f"/workflows/{create(client).json['id']}"
        start = threading.Barrier(2)
        answers = {}

        def patch(name):
            start.wait(5)
            answers[name] = client.simulate_patch(
                url, json={"name": name, "version": 1}, headers=auth(name)
            )

        # When: both send their edit at the same moment
        threads = [threading.Thread(target=patch, args=(n,)) for n in ("ann", "ben")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # Then: one edit becomes version 2; the other is told its version is stale
        statuses = sorted(a.status_code for a in answers.values())
        assert statuses == [200, 412], (round_, statuses)
        winner = next(n for n, a in answers.items() if a.status_code == 200)
        loser = next(a for a in answers.values() if a.status_code == 412)
        assert loser.json["current_version"] == 2
        current = client.simulate_get(url, headers=auth()).json
        assert (current["version"], current["name"]) == (2, winner)


def test_a_manual_run_is_accepted_while_redis_is_down(
    settings, workflow_db, engine_for_runs, outbox, caplog, api, redis_client
):
    from workflow_service.runtime import build_engine

    # Given: the admin web, with Redis down
    dead_broker = create_broker(dataclasses.replace(settings, redis_url=DEAD_REDIS_URL))
    engine = build_engine(settings, database, dead_broker, dead_broker.client, api=api)
    deps = Deps(db=workflow_db, broker=dead_broker, redis=dead_broker.client, engine=engine)
    app = create_app(settings, deps)
    client = falcon.testing.TestClient(app)
    workflow = create(client).json
    # When: a manual run is asked for
    with caplog.at_level(logging.WARNING, logger="workflow_service.engine"):
        run = client.simulate_post(
            f"/workflows/{workflow['id']}/run", json={"entity_id": "p-1"}, headers=auth()
        )
    # Then: it is accepted with its job, the execution is recorded pending, and the
    # unsent message is logged
    assert run.status_code == 202, run.text
    execution = Execution.get_by_id(run.json["execution_id"])
    assert execution.status == "pending"
    assert run.json["job"]["id"] == execution.job_id
    assert any(execution.id in r.getMessage() and "sweep" in r.getMessage() for r in caplog.records)
    # And: the scheduler's sweep sends its run message later, under that job id
    assert engine_for_runs.sweep(older_than_s=0) == [execution.id]
    assert [m.message_id for m in outbox.messages] == [execution.job_id]
    dead_broker.close()


def test_manual_run_executions_inbox_and_tasks(client, engine_for_runs, outbox, api):
    api.add("p-9", title="Travel", owner="bob")
    body = {
        **DEFINITION,
        "steps": [NOTIFY, {"kind": "create_task", "role": "approver", "title": "Check"}],
    }
    workflow = create(client, body).json
    run = client.simulate_post(
        f"/workflows/{workflow['id']}/run",
        json={"entity_id": "p-9"},
        headers=auth(),
    )
    assert run.status_code == 202, run.text
    assert run.json["job"]["id"] == outbox.messages[-1].message_id
    execution_id = run.json["execution_id"]

    assert engine_for_runs.run(execution_id) == "completed"

    detail = client.simulate_get(f"/executions/{execution_id}", headers=auth()).json
    assert [(s["kind"], s["status"]) for s in detail["steps"]] == [
        ("notify", "completed"),
        ("create_task", "completed"),
    ]
    listed = client.simulate_get("/executions?entity_id=p-9&status=completed", headers=auth()).json
    assert [e["id"] for e in listed["items"]] == [execution_id]
    assert client.simulate_get("/executions?status=bogus", headers=auth()).status_code == 400
    assert (
        client.simulate_get(
            f"/executions/{execution_id}", headers=auth(tenant="globex")
        ).status_code
        == 404
    )

    bob = auth("bob", ["viewer"])
    inbox = client.simulate_get("/notifications", headers=bob).json
    assert [n["subject"] for n in inbox["items"]] == ["Hi Travel"] and inbox["unread"] == 1
    note_id = inbox["items"][0]["id"]
    assert client.simulate_post(f"/notifications/{note_id}/read", headers=bob).json["read_at"]
    assert client.simulate_get("/notifications?unread=true", headers=bob).json["items"] == []
    carol = auth("carol", ["approver"])
    assert client.simulate_post(f"/notifications/{note_id}/read", headers=carol).status_code == 404
    tasks = client.simulate_get("/tasks", headers=carol).json["items"]
    assert [t["title"] for t in tasks] == ["Check"]
    assert client.simulate_get("/tasks", headers=bob).json["items"] == []
    done = client.simulate_post(f"/tasks/{tasks[0]['id']}/complete", headers=carol)
    assert done.json["status"] == "completed" and done.json["completed_by"] == "carol"
    assert (
        client.simulate_post(f"/tasks/{tasks[0]['id']}/complete", headers=carol).status_code == 409
    )

    cancel = client.simulate_post(f"/executions/{execution_id}/cancel", headers=auth())
    assert cancel.status_code == 409


def test_cancel_a_pending_execution(client):
    workflow = create(client).json
    run = client.simulate_post(
        f"/workflows/{workflow['id']}/run", json={"entity_id": "p"}, headers=auth()
    )
    url = f"/executions/{run.json['execution_id']}/cancel"
    assert client.simulate_post(url, headers=auth(roles=["viewer"])).status_code == 403
    assert client.simulate_post(url, headers=auth()).json["status"] == "cancelled"
    assert Execution.get_by_id(run.json["execution_id"]).status == "cancelled"


def test_probes_and_openapi(client, workflow_db):
    assert client.simulate_get("/healthz").json == {"status": "ok"}
    assert client.simulate_get("/readyz").status_code == 200
    metrics = client.simulate_get("/metrics", headers=auth(roles=["operator"]))
    assert "workflow_http_requests" in metrics.text
    paths = client.simulate_get("/openapi.json").json["paths"]
    for path in (
        "/workflows",
        "/workflows/{workflow_id}/run",
        "/executions/{execution_id}",
        "/executions/{execution_id}/cancel",
        "/tasks",
        "/notifications",
    ):
        assert path in paths


def test_deeply_nested_definitions_are_refused_not_stored(client):
    # A template Jinja parses but Python cannot compile: refused when it is written,
    # not failing every run
    deep_template = "{% if 1 %}" * 100 + "x" + "{% endif %}" * 100
    body = {**DEFINITION, "steps": [{**NOTIFY, "body": deep_template}]}
    resp = create(client, body)
    assert resp.status_code == 422, resp.text
    assert "nested too deeply" in resp.json["description"]
    # JSON nested past what can be stored and read back
    value: list = []
    for _ in range(40):
        value = [value]
    body = {**DEFINITION, "conditions": [{"field": "a", "op": "eq", "value": value}]}
    resp = create(client, body)
    assert resp.status_code == 400, resp.text
    assert "nested more than 32 levels" in resp.json["description"]


def test_executions_name_their_workflow_and_entity(client, engine_for_runs):
    from workflow_service.steps import Trigger

    workflow = create(client, {**DEFINITION, "name": "Travel review"}).json
    trigger = Trigger(
        event_id="e-7",
        event_type="policy.created",
        entity_type="policy",
        entity_id="p-7",
        tenant_id="acme",
        data={"title": "Travel", "owner": "bob"},
    )
    execution = engine_for_runs.create_execution(workflow["id"], workflow["version"], trigger)
    detail = client.simulate_get(f"/executions/{execution.id}", headers=auth()).json
    listed = client.simulate_get("/executions?entity_id=p-7", headers=auth()).json["items"]
    assert [e["id"] for e in listed] == [execution.id]
    for body in (detail, *listed):
        assert body["workflow_name"] == "Travel review"
        assert body["entity_title"] == "Travel"


# ------------------------------------------- refused at save what fails at run time


def _approval(**options):
    return {"kind": "require_approval", "approvers": ["role:approver"], **options}


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        # Templates: names a render is not given, refused attributes, unlisted methods
        ([{**NOTIFY, "subject": "Hi {{ user.name }}"}], "steps.0.subject", "unknown name"),
        ([{**NOTIFY, "body": "{{ entity.__class__ }}"}], "steps.0.body", "__class__"),
        ([{**NOTIFY, "subject": "{{ entity.title.format(1) }}"}], "steps.0.subject", "format"),
        (
            [{"kind": "create_task", "role": "approver", "title": "{{ entity.pop('x') }}"}],
            "steps.0.title",
            "pop",
        ),
        ([_approval(title="{{ approval.status }}")], "steps.0.title", "approval"),
        (
            [{"kind": "change_status", "to": "in_review", "comment": "{{ secrets }}"}],
            "steps.0.comment",
            "secrets",
        ),
        (
            [_approval(on_approve=[{**NOTIFY, "subject": "{{ entity.tags.append }}"}])],
            "steps.0.on_approve",
            "append",
        ),
        # change_status to a status the policy lifecycle does not have
        ([{"kind": "change_status", "to": "done"}], "steps.0.to", "no status 'done'"),
        (
            [_approval(on_reject=[{"kind": "change_status", "to": "rejected"}])],
            "steps.0.on_reject.0.to",
            "statuses: draft, in_review",
        ),
        # a quorum more than the people it can ever have
        (
            [_approval(approvers=["user:bob", "bob", "owner"], mode="quorum", quorum=3)],
            "steps.0.quorum",
            "quorum of 3",
        ),
        (
            [
                {
                    "kind": "require_approval",
                    "stages": [{"approvers": ["user:bob"], "mode": "quorum", "quorum": 2}],
                }
            ],
            "steps.0.stages.0.quorum",
            "quorum of 2",
        ),
        # recipients in no known form, in every step that names people
        ([{**NOTIFY, "recipients": ["team:x"]}], "steps.0.recipients.0", "no known form"),
        (
            [{"kind": "create_task", "assignee": "team:x", "title": "t"}],
            "steps.0.assignee",
            "no known form",
        ),
        ([{"kind": "assign", "assignee": "team:x"}], "steps.0.assignee", "no known form"),
        ([{"kind": "assign", "assignee": "role:approver"}], "steps.0.assignee", "names a role"),
        ([_approval(approvers=["team:x"])], "steps.0.approvers.0", "no known form"),
        ([_approval(escalate_to=["user:"])], "steps.0.escalate_to.0", "user id"),
        # a policy's events name no linked policies' owners
        (
            [{**NOTIFY, "recipients": ["owner", "policy_owners"]}],
            "steps.0.recipients.1",
            "'policy_owners' is for assessment and evidence workflows",
        ),
    ],
)
def test_what_would_fail_at_every_run_is_refused_at_save(client, steps, field, words):
    response = create(client, {**DEFINITION, "steps": steps})
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json["errors"]}
    assert field in errors, errors
    assert words in errors[field], errors
    # and the same when a workflow is edited into it
    created = create(client).json
    patched = client.simulate_patch(
        f"/workflows/{created['id']}", json={"steps": steps, "version": 1}, headers=auth()
    )
    assert patched.status_code == 422 and field in patched.text, patched.text


def test_what_the_sandbox_allows_is_saved(client):
    steps = [
        {
            **NOTIFY,
            "recipients": ["owner", "initiator", "bob", "user:carol", "role:approver"],
            "subject": "{{ entity.title | upper }} {{ entity.get('owner') }} {{ execution.id }}",
            "body": "{% for t in entity.tags %}{{ loop.index }} {{ t.strip() }}{% endfor %}",
        },
        _approval(
            mode="quorum",
            quorum=5,  # a role: people may be given it later
            on_approve=[{**NOTIFY, "subject": "{{ approval.status }} {{ entity.title }}"}],
        ),
        _approval(approvers=["user:bob", "carol"], mode="quorum", quorum=2),
        {"kind": "create_task", "assignee": "role:approver", "title": "{{ event.event_type }}"},
        {"kind": "assign", "assignee": "initiator"},
        {"kind": "change_status", "to": "in_review", "comment": "by {{ event.actor }}"},
    ]
    response = create(client, {**DEFINITION, "steps": steps})
    assert response.status_code == 201, response.text


def test_users_missing_from_the_directory_are_refused_unless_allowed(client):
    from workflow_service.users.directory import save_user

    # Given: acme keeps a directory with bob in it
    with database.connection_context():
        save_user("acme", "bob", roles=["approver"])
    steps = [{**NOTIFY, "recipients": ["bob", "user:ghost"]}, _approval(approvers=["ghost"])]
    # When / Then: ghost, named twice, is refused where named; bob is known
    refused = create(client, {**DEFINITION, "steps": steps})
    assert refused.status_code == 422, refused.text
    fields = [e["field"] for e in refused.json["errors"]]
    assert fields == ["steps.0.recipients.1", "steps.1.approvers.0"], fields
    assert "allow_unknown_users" in refused.json["description"]
    # unless the workflow allows users created later
    allowed = create(client, {**DEFINITION, "steps": steps, "allow_unknown_users": True})
    assert allowed.status_code == 201, allowed.text
    assert allowed.json["allow_unknown_users"] is True
    # an edit that takes the flag away is refused too
    url = f"/workflows/{allowed.json['id']}"
    patched = client.simulate_patch(
        url, json={"allow_unknown_users": False, "version": 1}, headers=auth()
    )
    assert patched.status_code == 422 and "steps.0.recipients.1" in patched.text
    # Given: another tenant without a directory: people are not checked there
    globex = create(client, {**DEFINITION, "steps": steps}, **auth(tenant="globex"))
    assert globex.status_code == 201, globex.text


def test_a_patch_without_a_version_is_428(client):
    created = create(client).json
    url = f"/workflows/{created['id']}"
    missing = client.simulate_patch(url, json={"name": "renamed"}, headers=auth())
    assert missing.status_code == 428, missing.text
    assert missing.json["title"] == "Version required"
    assert "If-Match" in missing.json["description"]
    assert client.simulate_get(url, headers=auth()).json["version"] == 1
    # If-Match names it as well as the body does
    by_header = client.simulate_patch(
        url, json={"name": "renamed"}, headers={**auth(), "If-Match": '"1"'}
    )
    assert by_header.status_code == 200 and by_header.json["version"] == 2
    stale = client.simulate_patch(url, json={"name": "x"}, headers={**auth(), "If-Match": '"1"'})
    assert stale.status_code == 412
    both = client.simulate_patch(
        url, json={"name": "x", "version": 2}, headers={**auth(), "If-Match": '"1"'}
    )
    assert both.status_code == 412
    odd = client.simulate_patch(url, json={"name": "x"}, headers={**auth(), "If-Match": "v2"})
    assert odd.status_code == 400


def test_a_manual_run_for_an_entity_the_api_does_not_have_is_404(client, outbox, api):
    workflow = create(client).json
    run = client.simulate_post(
        f"/workflows/{workflow['id']}/run", json={"entity_id": "p-404"}, headers=auth()
    )
    assert run.status_code == 404, run.text
    assert run.json["title"] == "Policy not found" and "p-404" in run.json["description"]
    # (the audit chain builder was sent for the workflow's creation)
    sent = [m for m in outbox.messages if m.actor_name != "append_audit"]
    assert Execution.select().count() == 0 and sent == []
    assert ("GET", "/policies/p-404", "acme") in api.requests


def test_a_manual_run_sees_the_entity_as_the_api_shows_it(client, engine_for_runs, api):
    # Given: the api's policy, owned by bob
    api.add("p-1", title="Travel", owner="bob", created_by="carol", version=4)
    steps = [
        {**NOTIFY, "recipients": ["owner"], "subject": "{{ entity.title }} v{{ entity.version }}"},
        {"kind": "create_task", "assignee": "owner", "title": "Review {{ entity.title }}"},
    ]
    workflow = create(client, {**DEFINITION, "steps": steps}).json
    # When: a caller runs it, claiming other values for the entity's own fields
    run = client.simulate_post(
        f"/workflows/{workflow['id']}/run",
        json={"entity_id": "p-1", "data": {"owner": "mallory", "title": "Fake", "why": "audit"}},
        headers=auth(),
    )
    assert run.status_code == 202, run.text
    # Then: the run's entity is the api's (and keeps only values the api has not)
    execution = Execution.get_by_id(run.json["execution_id"])
    data = execution.event["data"]
    assert (data["owner"], data["title"], data["created_by"], data["version"]) == (
        "bob",
        "Travel",
        "carol",
        4,
    )
    assert data["why"] == "audit" and "content" not in data
    assert engine_for_runs.run(execution.id) == "completed"
    bob = auth("bob", ["viewer"])
    inbox = client.simulate_get("/notifications", headers=bob).json["items"]
    assert [n["subject"] for n in inbox] == ["Travel v4"]
    assert [t.assignee for t in Task.select()] == ["bob"]


def test_a_manual_run_when_the_api_cannot_answer_is_503(client, api):
    workflow = create(client).json

    def down(*args, **kwargs):
        import httpx

        raise httpx.ConnectError("refused")

    api.request = down
    run = client.simulate_post(
        f"/workflows/{workflow['id']}/run", json={"entity_id": "p-1"}, headers=auth()
    )
    assert run.status_code == 503, run.text
    assert run.json["title"] == "Api unavailable"
    assert Execution.select().count() == 0
