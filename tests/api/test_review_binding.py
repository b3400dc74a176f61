"""A policy in review is the content its reviewers decide on: it is not edited until it
is withdrawn to draft, and a move to approved the workflow service makes records the
person who approved it (the service kept as ``via``)."""

from __future__ import annotations

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

from api_service.migrations import MIGRATIONS
from shared.db import migrate, open_database
from tests.api.helpers import error_names, published_events
from tests.api.test_separation_of_duties import as_user, create, move, service_for


def test_a_policy_in_review_is_not_edited(api):
    # Given: alice's policy, sent to review at version 2
    policy = create(api, "alice", content="v1 text")
    alice = as_user(api, "alice", "editor")
    sent = move(api, policy, "in_review", alice)
    assert sent.status_code == 200 and sent.json["version"] == 2
    # When: she edits its content while it is in review
    edited = api.client.simulate_patch(
        f"/policies/{policy['id']}", json={"content": "v3 text", "version": 2}, headers=alice
    )
    # Then: refused, naming the review and how to edit; nothing changed
    assert edited.status_code == 409, edited.text
    assert edited.json["title"] == "Policy in review"
    assert error_names(edited, "in review", "withdraw it to draft first")
    assert edited.json["version"] == 2 and edited.json["status"] == "in_review"
    now = api.get(policy["id"]).json
    assert (now["version"], now["content"]) == (2, "v1 text")
    # A PATCH that changes nothing is still a no-op, not an error
    same = api.client.simulate_patch(
        f"/policies/{policy['id']}", json={"content": "v1 text", "version": 2}, headers=alice
    )
    assert same.status_code == 200 and same.json["version"] == 2
    # Moves still work (the workflow's metadata is the status): withdrawn, it is edited
    assert move(api, policy, "draft", alice).status_code == 200
    edited = api.client.simulate_patch(
        f"/policies/{policy['id']}", json={"content": "v4 text", "version": 3}, headers=alice
    )
    assert edited.status_code == 200 and edited.json["version"] == 4, edited.text
    # and deleting one in review is allowed (its approvals close in the workflow service)
    assert move(api, policy, "in_review", alice).status_code == 200
    assert api.delete(policy["id"]).status_code == 200


def test_the_approver_is_recorded_as_who_approved(api, redis_client, namespace):
    # Given: alice's policy in review
    policy = create(api, "alice")
    assert move(api, policy, "in_review", as_user(api, "alice", "editor")).status_code == 200
    # When: the workflow service moves it to approved for bob (who settled it) and carol
    resp = move(api, policy, "approved", service_for(api, "bob", "carol", initiator="alice"))
    assert resp.status_code == 200, resp.text
    # Then: the version history names bob, via the workflow service
    versions = api.client.simulate_get(
        f"/policies/{policy['id']}/versions", headers=as_user(api, "vera", "viewer")
    ).json["items"]
    approved = versions[-1]
    assert approved["snapshot"]["status"] == "approved"
    assert (approved["changed_by"], approved["via"]) == ("bob", "workflow-service")
    assert approved["snapshot"]["updated_by"] == "bob"
    # a person's own change has no via
    assert (versions[0]["changed_by"], versions[0]["via"]) == ("alice", None)
    # and so does the event: bob is its actor, the service and every decider in its data
    (event,) = [
        e
        for e in published_events(redis_client, namespace)
        if e["entity_id"] == policy["id"] and e["data"].get("status") == "approved"
    ]
    assert event["actor"] == "bob"
    assert event["data"]["via"] == "workflow-service"
    assert event["data"]["decided_by"] == ["bob", "carol"]
    assert event["initiator"] == "alice"


def test_migration_4_adds_via_to_an_older_schema(make_database_url):
    db = open_database(make_database_url("api-via"))
    with db.connection_context():
        migrate(db, MIGRATIONS)
        run(SchemaMigrator.from_database(db).drop_column("policy_version", "via"))
        db.execute_sql("DELETE FROM schema_history WHERE service = 'api_service' AND version = 4")
        assert [m.version for m in migrate(db, MIGRATIONS)] == [4]
        assert "via" in {c.name for c in db.get_columns("policy_version")}
    db.close()
