"""POST /{collection}/{id}/assignment: policies, assessments and evidence change hands in
any status but deleted and awaiting a decision, as a version of their own, with a
<type>.assigned event."""

from __future__ import annotations

import pytest
import redis

from tests.api.helpers import published

#: collection -> (entity type, field the assignment sets, queue)
TYPES = {
    "policies": ("policy", "owner", "governance.policy"),
    "assessments": ("assessment", "assessor", "governance.assessment"),
    "evidence": ("evidence", "collector", "governance.evidence"),
}


def _make(client, collection) -> dict:
    return {
        "policies": client.policy,
        "assessments": client.assessment,
        "evidence": client.evidence,
    }[collection]()


@pytest.mark.parametrize("collection", TYPES)
def test_assignment_sets_the_owner_and_publishes_assigned(client, collection, redis_url, namespace):
    entity_type, field, queue = TYPES[collection]
    entity = _make(client, collection)
    path = f"/{collection}/{entity['id']}"

    resp = client.post(f"{path}/assignment", {"assignee": "dave", "comment": "on leave"})

    assert resp.status_code == 200, resp.text
    assert resp.json[field] == "dave"
    assert resp.json["version"] == 2 and resp.headers["etag"] == '"2"'
    assert client.read(path).json[field] == "dave"
    versions = client.read(f"{path}/versions").json["items"]
    assert versions[-1]["change"] == f"{entity_type}.assigned"
    assert versions[-1]["snapshot"][field] == "dave"
    events = [
        m["args"][0]
        for m in published(redis.Redis.from_url(redis_url), namespace, queue)
        if m["args"][0]["entity_id"] == entity["id"]
    ]
    assert [e["event_type"] for e in events] == [
        f"{entity_type}.created",
        f"{entity_type}.assigned",
    ]
    data = events[-1]["data"]
    assert (data["assignee"], data["previous_assignee"], data["comment"]) == (
        "dave",
        "alice",
        "on leave",
    )
    assert data[field] == "dave" and events[-1]["actor"] == "alice"
    assert resp.json["jobs"][0]["id"] == events[-1]["event_id"]

    # The same assignee again changes nothing.
    again = client.post(f"{path}/assignment", {"assignee": "dave"})
    assert again.status_code == 200 and again.json["version"] == 2 and again.json["jobs"] == []


@pytest.mark.parametrize(
    ("collection", "status", "steps"),
    [
        ("policies", "in_review", ["in_review"]),
        ("assessments", "under_review", ["in_progress", "under_review"]),
        ("evidence", "submitted", ["submitted"]),
    ],
)
def test_no_assignment_while_a_decision_is_awaited(client, collection, status, steps):
    # Given an entity owned by alice, awaiting a decision
    entity = _make(client, collection)
    for step in steps:
        assert client.move(collection, entity["id"], step).status_code == 200
    path = f"/{collection}/{entity['id']}"

    # When it is handed to erin, the owner would no longer be barred from deciding it
    resp = client.post(f"{path}/assignment", {"assignee": "erin"})

    # Then the hand-over is refused, naming the status, and nothing changed
    assert resp.status_code == 409, resp.text
    assert resp.json["title"] == "Awaiting a decision"
    assert status in resp.json["description"]
    after = client.read(path).json
    assert after["status"] == status and after[TYPES[collection][1]] == "alice"
    assert after["version"] == len(steps) + 1


@pytest.mark.parametrize("collection", TYPES)
def test_who_may_assign(client, collection):
    entity = _make(client, collection)
    path = f"/{collection}/{entity['id']}/assignment"
    for role in ("viewer", "approver", "auditor"):
        resp = client.post(path, {"assignee": "x"}, role)
        assert resp.status_code == 403, (role, resp.text)
    for role in ("editor", "admin", "service"):
        resp = client.post(path, {"assignee": f"by-{role}"}, role)
        assert resp.status_code == 200, (role, resp.text)
    other = client.client.simulate_post(
        path, json={"assignee": "x"}, headers=client.headers("admin", tenant="someone-else")
    )
    assert other.status_code == 404


@pytest.mark.parametrize("collection", TYPES)
def test_a_workflow_step_assigns_idempotently(client, collection):
    entity_type = TYPES[collection][0]
    entity = _make(client, collection)
    path = f"/{collection}/{entity['id']}/assignment"
    headers = {
        "Idempotency-Key": "exec-9:step-1",
        "X-Causation": "evt-1",
        "X-Initiator": "carol",
    }
    first = client.post(
        path, {"assignee": "dave"}, "service", sub="workflow-service", headers=headers
    )
    again = client.post(
        path, {"assignee": "dave"}, "service", sub="workflow-service", headers=headers
    )
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json == first.json
    changes = [
        v["change"] for v in client.read(f"/{collection}/{entity['id']}/versions").json["items"]
    ]
    assert changes.count(f"{entity_type}.assigned") == 1
    # The same key for another assignee is refused.
    resp = client.post(
        path, {"assignee": "erin"}, "service", sub="workflow-service", headers=headers
    )
    assert resp.status_code == 422, resp.text
    # People may not send the workflow's headers.
    resp = client.post(path, {"assignee": "erin"}, headers={"X-Initiator": "carol"})
    assert resp.status_code == 403, resp.text
    resp = client.post(path, {"assignee": "erin"}, headers={"X-Causation": "evt-1"})
    assert resp.status_code == 403, resp.text


@pytest.mark.parametrize("collection", TYPES)
def test_assignment_refusals(client, collection):
    entity = _make(client, collection)
    path = f"/{collection}/{entity['id']}/assignment"
    for body in (
        {},
        {"assignee": ""},
        {"assignee": "x" * 129},
        {"assignee": "x", "extra": 1},
        # One person, by user id: never a role or a recipient form.
        {"assignee": "role:approver"},
        {"assignee": "two words"},
    ):
        resp = client.post(path, body)
        assert resp.status_code == 422, (body, resp.text)
    resp = client.post(path, {"assignee": "dave"}, headers={"If-Match": '"9"'})
    assert resp.status_code == 412, resp.text
    client.client.simulate_delete(f"/{collection}/{entity['id']}", headers=client.headers())
    assert client.post(path, {"assignee": "dave"}).status_code == 404
