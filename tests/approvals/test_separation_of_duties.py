"""Separation of duties where approvals are decided: a slot and a role that may approve;
the entity's creator, owner and initiator never decide an approval that approves it;
only an admin allows self-approval; every refusal is recorded."""

from __future__ import annotations

import falcon.testing
import httpx
import pytest
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

from shared.db import migrate
from tests.approvals.conftest import auth
from tests.approvals.test_decisions import decide, only_approval, run_pending, status_of
from workflow_service.app import Deps, create_app
from workflow_service.approvals.models import ApprovalRefusal
from workflow_service.db import database
from workflow_service.migrations import all_migrations
from workflow_service.models import Execution
from workflow_service.runtime import build_engine

EDITOR = "erin"  # an editor who writes policies (not an approver)
APPROVE = [{"kind": "change_status", "to": "approved"}]


class PolicyApi:
    """The policy api as the workflow service sees it: a policy to read, and the
    transitions asked of it (with their headers)."""

    def __init__(self, policy: dict | None = None):
        self.policy = policy
        self.moves: list[tuple[str, dict, dict]] = []

    def request(self, method, path, tenant_id, *, json=None, headers=None, **kwargs):
        if method == "GET":
            if self.policy is None:  # a policy with no fields of its own: the run's data
                return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1]})
            return httpx.Response(200, json=self.policy)
        self.moves.append((path, json or {}, dict(headers or {})))
        return httpx.Response(200, json={"status": (json or {}).get("to"), "version": 9})

    def close(self) -> None:
        pass


@pytest.fixture
def api():
    return PolicyApi()


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox, api):
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    test_client = falcon.testing.TestClient(app)
    test_client.engine = engine
    return test_client


def workflow(step: dict) -> dict:
    return {
        "name": "review",
        "entity_type": "policy",
        "trigger": "manual",
        "status": "active",
        "steps": [step],
        # erin signs in with a token but is not in the directory
        "allow_unknown_users": True,
    }


def approval(approvers=None, on_approve=APPROVE, **options) -> dict:
    step = {"kind": "require_approval", "on_approve": on_approve, **options}
    if "stages" not in options:
        step["approvers"] = approvers or ["role:approver"]
    return step


def create(client, step: dict, author=("root", ["admin"])):
    return client.simulate_post("/workflows", json=workflow(step), headers=auth(*author))


def run_for(client, outbox, step, data, runner=(EDITOR, ["editor"]), author=("root", ["admin"])):
    """Create ``step``'s workflow as ``author``, run it as ``runner`` for policy p-1."""
    created = create(client, step, author)
    assert created.status_code == 201, created.json
    entity = {"title": "Access control", "version": 3, "status": "in_review", **data}
    ran = client.simulate_post(
        f"/workflows/{created.json['id']}/run",
        json={"entity_id": "p-1", "data": entity},
        headers=auth(*runner),
    )
    assert ran.status_code == 202, ran.json
    run_pending(client.engine, outbox)
    return ran.json["execution_id"]


def refusals(client, approval_id) -> list[dict]:
    detail = client.simulate_get(f"/approvals/{approval_id}", headers=auth("root"))
    assert detail.status_code == 200, detail.json
    return detail.json["refusals"]


def test_reproduction_2_an_editor_cannot_approve_her_own_policy_through_a_workflow(
    client, outbox, api
):
    # Given: erin, an editor, wrote the policy, owns it and sent it to review
    mine = {"owner": EDITOR, "created_by": EDITOR}
    step = approval(["user:erin", "user:bob"], allow_self_approval=True)
    # When: she writes a workflow that lets her approve it herself
    refused = create(client, step, author=(EDITOR, ["editor"]))
    # Then: only an admin may set that option
    assert refused.status_code == 403, refused.json
    assert "allow_self_approval" in refused.json["description"]
    # nor may she add it to a workflow by editing one
    plain = create(client, approval(["user:bob"]), author=(EDITOR, ["editor"]))
    assert plain.status_code == 201, plain.json
    patched = client.simulate_patch(
        f"/workflows/{plain.json['id']}",
        json={"steps": [step], "version": 1},
        headers=auth(EDITOR, ["editor"]),
    )
    assert patched.status_code == 403 and "allow_self_approval" in patched.json["description"]

    # Given: an admin set it on a workflow that she runs
    execution_id = run_for(client, outbox, step, mine)
    request = only_approval(execution_id)
    assert request.approves_entity and request.creator == EDITOR
    # she gets no slot, and her decision is refused and recorded
    assert {s.approver for s in request.slots} == {"bob"}
    answer = decide(client, request.id, EDITOR, roles=["editor", "approver"])
    assert answer.status_code == 403 and answer.json["title"] == "Self-approval refused"
    assert "allow_self_approval" in answer.json["description"]
    assert status_of(execution_id) == "waiting_approval"
    (refusal,) = refusals(client, request.id)
    assert refusal["user"] == EDITOR and refusal["reason"] == "self_approval"
    assert refusal["decision"] == "approve" and refusal["at"].endswith("Z")
    assert api.moves == []
    # bob decides; the api is told he approved
    assert decide(client, request.id, "bob").json["outcome"] == "approved"
    run_pending(client.engine, outbox)
    assert status_of(execution_id) == "completed"
    ((path, body, headers),) = api.moves
    assert path == "/policies/p-1/transitions" and body == {"to": "approved"}
    assert headers["X-Decided-By"] == "bob" and headers["X-Initiator"] == EDITOR


def test_an_approval_nobody_else_may_decide_fails(client, outbox):
    # Given: the only approver named is the policy's creator
    step = approval(["user:erin"], allow_self_approval=True)
    execution_id = run_for(client, outbox, step, {"owner": "olivia", "created_by": EDITOR})
    execution = Execution.get_by_id(execution_id)
    assert execution.status == "failed" and "excluded erin" in execution.error


def test_creator_owner_and_initiator_never_decide_whatever_the_option(client, outbox):
    # Given: carol (an approver) wrote the policy, olivia owns it, bob ran the workflow
    data = {"owner": "olivia", "created_by": "carol"}
    step = approval(["role:approver"], allow_self_approval=True, mode="all")
    execution_id = run_for(client, outbox, step, data, runner=("bob", ["editor", "approver"]))
    request = only_approval(execution_id)
    # Then: only alice was asked; each of them is refused
    assert {s.approver for s in request.slots} == {"alice"}
    for person in ("carol", "olivia", "bob"):
        answer = decide(client, request.id, person)
        assert answer.status_code == 403, (person, answer.json)
        assert answer.json["title"] == "Self-approval refused"
    assert [r["user"] for r in refusals(client, request.id)] == ["carol", "olivia", "bob"]
    assert decide(client, request.id, "alice").json["outcome"] == "approved"


def test_a_slot_needs_a_role_that_may_approve(client, outbox):
    # Given: dave (a viewer) and root (an admin) are named by user
    step = approval(["user:dave", "user:root"], on_approve=[])
    execution_id = run_for(client, outbox, step, {"owner": "olivia"})
    request = only_approval(execution_id)
    # When: dave decides
    answer = decide(client, request.id, "dave")
    # Then: a slot is not enough without the approver role
    assert answer.status_code == 403 and answer.json["title"] == "Approver role required"
    assert "approver" in answer.json["description"]
    (refusal,) = refusals(client, request.id)
    assert refusal["user"] == "dave" and refusal["reason"] == "role_required"
    assert ApprovalRefusal.select().count() == 1
    # an admin holds every role
    assert decide(client, request.id, "root").json["outcome"] == "approved"


def test_a_stage_that_names_a_role_may_be_decided_by_it(client, outbox):
    step = approval(stages=[{"approvers": ["role:viewer"]}], on_approve=[])
    request = only_approval(run_for(client, outbox, step, {"owner": "olivia"}))
    assert decide(client, request.id, "dave").json["outcome"] == "approved"


def test_the_api_view_of_the_policy_counts_too(client, outbox, api):
    # Given: the api says bob sent the policy to review (the run's data does not)
    api.policy = {"id": "p-1", "version": 3, "created_by": "olivia", "owner": "olivia"}
    api.policy["submitted_by"] = "bob"
    request = only_approval(run_for(client, outbox, approval(["role:approver"]), {}))
    # When: bob decides
    answer = decide(client, request.id, "bob")
    # Then: refused
    assert answer.status_code == 403 and answer.json["title"] == "Self-approval refused"
    assert decide(client, request.id, "alice").json["outcome"] == "approved"
    detail = client.simulate_get(f"/approvals/{request.id}", headers=auth("alice")).json
    assert next(d for d in detail["decisions"] if d["approver"] == "alice")["entity_version"] == 3


def test_migrations_172_and_173_upgrade_an_older_schema(workflow_db):
    # Given: a database as it was after migration 171
    migrator = SchemaMigrator.from_database(workflow_db)
    run(
        migrator.drop_column("approval_request", "creator"),
        migrator.drop_column("approval_request", "approves_entity"),
    )
    workflow_db.execute_sql("DROP TABLE approval_refusal")
    workflow_db.execute_sql(
        "DELETE FROM schema_history WHERE service = 'workflow_service' AND version IN (172, 173)"
    )
    # When: it is migrated
    applied = migrate(workflow_db, all_migrations())
    # Then: both ran
    assert [m.version for m in applied] == [172, 173]
    columns = {c.name for c in workflow_db.get_columns("approval_request")}
    assert {"creator", "approves_entity"} <= columns
    assert "approval_refusal" in workflow_db.get_tables()


def test_a_manual_run_sees_the_creator_and_owner_the_api_has(client, outbox, api):
    # Given: the api says carol wrote the policy and olivia owns it
    api.policy = {"id": "p-1", "version": 3, "status": "in_review"}
    api.policy.update(created_by="carol", owner="olivia", submitted_by=None)
    # When: bob runs an approval workflow, claiming bob wrote and owns it
    step = approval(["role:approver"], mode="all")
    data = {"created_by": "bob", "owner": "bob"}
    execution_id = run_for(client, outbox, step, data, runner=("dave", ["editor"]))
    request = only_approval(execution_id)
    # Then: the request excludes the real creator and owner, not the claimed ones
    assert (request.creator, request.owner) == ("carol", "olivia")
    assert {s.approver for s in request.slots} == {"alice", "bob"}
    answer = decide(client, request.id, "carol")
    assert answer.status_code == 403 and answer.json["title"] == "Self-approval refused"
    assert decide(client, request.id, "bob").status_code == 200
