"""Separation of duties in the api: whoever created, owns or sent a policy to review
never approves it, by a direct move or through the workflow service; a tenant may
require the approval workflow; every refusal is recorded."""

from __future__ import annotations

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

from api_service.migrations import MIGRATIONS
from shared.db import migrate, open_database
from tests.api.helpers import auth, error_names


def as_user(api, sub: str, *roles: str) -> dict:
    return auth(*roles, sub=sub, tenant=api.tenant)


def service_for(api, *deciders: str, initiator: str | None = None) -> dict:
    headers = auth("service", sub="workflow-service", tenant=api.tenant)
    if deciders:
        headers["X-Decided-By"] = ",".join(deciders)
    if initiator:
        headers["X-Initiator"] = initiator
    return headers


def move(api, policy: dict, to: str, headers: dict):
    return api.client.simulate_post(
        f"/policies/{policy['id']}/transitions", json={"to": to}, headers=headers
    )


def create(api, sub: str = "alice", **fields) -> dict:
    body = {"title": "Access control", "policy_type": "security", **fields}
    resp = api.client.simulate_post(
        "/policies", json=body, headers=as_user(api, sub, "editor", "approver")
    )
    assert resp.status_code == 201, resp.text
    return resp.json


def refusals(api, policy: dict) -> list[dict]:
    resp = api.client.simulate_get(
        f"/policies/{policy['id']}/refusals", headers=as_user(api, "vera", "viewer")
    )
    assert resp.status_code == 200, resp.text
    return resp.json["items"]


def status_of(api, policy: dict) -> str:
    return api.get(policy["id"]).json["status"]


def test_reproduction_3_an_editor_approver_cannot_approve_her_own_policy(api):
    # Given: alice, editor and approver, writes a policy and sends it to review
    policy = create(api, "alice")
    alice = as_user(api, "alice", "editor", "approver")
    assert move(api, policy, "in_review", alice).status_code == 200
    # When: she approves it
    resp = move(api, policy, "approved", alice)
    # Then: refused, saying why, and the policy is still in review
    assert resp.status_code == 403, resp.text
    assert resp.json["title"] == "Separation of duties"
    assert error_names(resp, "alice created, owns and sent to review")
    assert status_of(api, policy) == "in_review"
    (refusal,) = refusals(api, policy)
    assert refusal["refused_by"] == "alice" and refusal["on_behalf_of"] == []
    assert (refusal["from_status"], refusal["to_status"]) == ("in_review", "approved")
    assert "sent to review" in refusal["reason"] and refusal["refused_at"].endswith("Z")
    # An admin is a person too
    assert move(api, policy, "approved", as_user(api, "alice", "admin")).status_code == 403
    # Someone else approves it
    assert move(api, policy, "approved", as_user(api, "bob", "approver")).status_code == 200


def test_the_owner_and_the_submitter_may_not_approve(api):
    # Given: alice wrote it for olga (the owner) and sam sent it to review
    policy = create(api, "alice", owner="olga")
    submitted = move(api, policy, "in_review", as_user(api, "sam", "editor"))
    assert submitted.status_code == 200 and submitted.json["submitted_by"] == "sam"
    for person, duty in (("olga", "owns"), ("sam", "sent to review"), ("alice", "created")):
        resp = move(api, policy, "approved", as_user(api, person, "approver"))
        assert resp.status_code == 403, resp.text
        assert error_names(resp, person, duty)
    assert [r["refused_by"] for r in refusals(api, policy)] == ["alice", "sam", "olga"]
    assert move(api, policy, "approved", as_user(api, "bob", "approver")).status_code == 200


def test_a_lack_of_role_is_refused_and_recorded(api):
    policy = create(api, "alice")
    assert move(api, policy, "in_review", as_user(api, "alice", "editor")).status_code == 200
    resp = move(api, policy, "approved", as_user(api, "ed", "editor"))
    assert resp.status_code == 403
    (refusal,) = refusals(api, policy)
    assert refusal["refused_by"] == "ed" and "roles" in refusal["reason"]


def test_the_service_approves_only_for_deciders_who_may(api):
    policy = create(api, "alice")
    # Given: a workflow sent it to review for sam (the person it acted for)
    sent = move(api, policy, "in_review", service_for(api, initiator="sam"))
    assert sent.status_code == 200 and sent.json["submitted_by"] == "sam"
    # When: the service moves it to approved without naming who approved
    anonymous = move(api, policy, "approved", service_for(api, initiator="sam"))
    # Then: refused; only an approval's deciders approve
    assert anonymous.status_code == 403 and error_names(anonymous, "X-Decided-By")
    # nor for deciders among the creator and the submitter
    for decider in ("alice", "sam"):
        resp = move(api, policy, "approved", service_for(api, "bob", decider, initiator="sam"))
        assert resp.status_code == 403 and error_names(resp, decider), resp.text
    assert status_of(api, policy) == "in_review"
    recorded = refusals(api, policy)
    assert recorded[0]["refused_by"] == "workflow-service"
    assert recorded[0]["on_behalf_of"] == ["bob", "sam"]
    # For someone else it goes through
    resp = move(api, policy, "approved", service_for(api, "bob", "carol", initiator="sam"))
    assert resp.status_code == 200, resp.text


def test_only_the_service_names_deciders(api):
    policy = create(api, "alice")
    assert move(api, policy, "in_review", as_user(api, "alice", "editor")).status_code == 200
    forged = {**as_user(api, "bob", "approver"), "X-Decided-By": "carol"}
    resp = move(api, policy, "approved", forged)
    assert resp.status_code == 403 and error_names(resp, "X-Decided-By")
    for bad in (",", "a" * 129, ",".join(f"u{i}" for i in range(51))):
        headers = {**service_for(api), "X-Decided-By": bad}
        resp = move(api, policy, "approved", headers)
        assert resp.status_code == 400 and error_names(resp, "X-Decided-By"), bad
    assert status_of(api, policy) == "in_review"


def test_tenant_settings_are_read_by_its_people_and_changed_by_its_admin(api):
    path = "/tenant-settings"
    read = api.client.simulate_get(path, headers=as_user(api, "vera", "viewer"))
    assert read.status_code == 200, read.text
    assert read.json == {
        "tenant": api.tenant,
        "approval_requires_workflow": False,
        "updated_by": None,
        "updated_at": None,
    }
    body = {"approval_requires_workflow": True}
    for role in ("editor", "approver", "viewer"):
        resp = api.client.simulate_patch(path, json=body, headers=as_user(api, "x", role))
        assert resp.status_code == 403, role
    for roles in (("operator",), ("service",)):
        resp = api.client.simulate_get(path, headers=auth(*roles, tenant=api.tenant))
        assert resp.status_code == 403, roles
    for bad in ({"approval_requires_workflow": "yes"}, {}, {"colour": "red"}):
        resp = api.client.simulate_patch(path, json=bad, headers=as_user(api, "root", "admin"))
        assert resp.status_code in (400, 422) and resp.json["title"], bad
    changed = api.client.simulate_patch(path, json=body, headers=as_user(api, "root", "admin"))
    assert changed.status_code == 200, changed.text
    assert changed.json["approval_requires_workflow"] is True
    assert changed.json["updated_by"] == "root" and changed.json["updated_at"]
    # another tenant keeps its own settings
    other = api.client.simulate_get(path, headers=auth("viewer", tenant=api.tenant + "-other"))
    assert other.json["approval_requires_workflow"] is False


def test_a_tenant_that_requires_the_workflow_is_approved_only_by_it(api):
    # Given: the tenant's admin requires the approval workflow
    resp = api.client.simulate_patch(
        "/tenant-settings",
        json={"approval_requires_workflow": True},
        headers=as_user(api, "root", "admin"),
    )
    assert resp.status_code == 200, resp.text
    policy = create(api, "alice")
    assert move(api, policy, "in_review", as_user(api, "alice", "editor")).status_code == 200
    # When: an approver (or an admin) approves directly
    for person, role in (("bob", "approver"), ("root", "admin")):
        direct = move(api, policy, "approved", as_user(api, person, role))
        # Then: refused, naming the setting
        assert direct.status_code == 403, direct.text
        assert direct.json["title"] == "Approval workflow required"
        assert error_names(direct, "requires the approval workflow")
    assert [r["refused_by"] for r in refusals(api, policy)] == ["root", "bob"]
    # Other moves stay open to people
    assert move(api, policy, "draft", as_user(api, "bob", "approver")).status_code == 200
    assert move(api, policy, "in_review", as_user(api, "alice", "editor")).status_code == 200
    # The workflow service approves for bob
    resp = move(api, policy, "approved", service_for(api, "bob"))
    assert resp.status_code == 200, resp.text


def test_refusals_are_tenant_scoped(api):
    policy = create(api, "alice")
    stranger = auth("viewer", tenant=api.tenant + "-other")
    resp = api.client.simulate_get(f"/policies/{policy['id']}/refusals", headers=stranger)
    assert resp.status_code == 404
    resp = api.client.simulate_get("/policies/nope/refusals", headers=as_user(api, "v", "viewer"))
    assert resp.status_code == 400


def test_the_openapi_document_lists_the_new_routes(api):
    paths = api.client.simulate_get("/openapi.json").json["paths"]
    assert {"get", "patch"} <= set(paths["/tenant-settings"])
    assert "get" in paths["/policies/{policy_id}/refusals"]


def test_migration_3_upgrades_an_older_schema(make_database_url):
    # Given: an api database as it was after migration 2, with an idempotency record
    db = open_database(make_database_url("api-sod"))
    with db.connection_context():
        migrate(db, MIGRATIONS)
        migrator = SchemaMigrator.from_database(db)
        run(
            migrator.drop_index("idempotency_record", "idempotency_record_tenant_caller_key"),
            migrator.drop_column("idempotency_record", "caller"),
            migrator.drop_column("policy", "submitted_by"),
            migrator.add_index("idempotency_record", ("tenant", "key"), unique=True),
        )
        db.execute_sql("DROP TABLE tenant_settings")
        db.execute_sql("DROP TABLE policy_refusal")
        db.execute_sql("DELETE FROM schema_history WHERE service = 'api_service' AND version = 3")
        db.execute_sql(
            "INSERT INTO idempotency_record (tenant, key, request_hash, status, body, "
            "created_at) VALUES ('acme', 'k', 'h', 200, '{}', '2030-01-01 00:00:00')"
        )
        # When: it is migrated
        applied = migrate(db, MIGRATIONS)
        # Then: 3 ran; keys are unique per tenant, caller and key; the old row is kept
        assert [m.version for m in applied] == [3]
        assert "submitted_by" in {c.name for c in db.get_columns("policy")}
        indexes = {i.name: i for i in db.get_indexes("idempotency_record")}
        assert "idempotency_record_tenant_key" not in indexes
        assert indexes["idempotency_record_tenant_caller_key"].unique
        assert {"tenant_settings", "policy_refusal"} <= set(db.get_tables())
        assert db.execute_sql("SELECT caller FROM idempotency_record").fetchall() == [("",)]
        # two callers may now use one key
        db.execute_sql(
            "INSERT INTO idempotency_record (tenant, caller, key, request_hash, status, body, "
            "created_at) VALUES ('acme', 'bob', 'k', 'h', 200, '{}', '2030-01-01 00:00:00')"
        )
    db.close()
