"""Every write puts exactly one message with the right event on governance.policy."""

from __future__ import annotations

from api_service.models import Outbox
from tests.api.helpers import published, published_events, queue_counts
from tests.support import poll


def _only_new(redis_client, namespace, before: int) -> dict:
    messages = published(redis_client, namespace)
    assert len(messages) == before + 1, [m["args"][0]["event_type"] for m in messages]
    assert queue_counts(redis_client, namespace) == (before + 1, before + 1)
    return messages[-1]


def test_create_publishes_policy_created(api, redis_client, namespace):
    body = api.create(title="Acceptable use", tags=["it"], owner="carol")

    message = _only_new(redis_client, namespace, 0)
    event = message["args"][0]
    # The message id is the event id, and the response's job points at it.
    assert message["message_id"] == event["event_id"] == body["jobs"][0]["id"]
    assert body["jobs"] == [{"id": event["event_id"], "href": f"/jobs/{event['event_id']}"}]
    assert message["queue_name"] == "governance.policy"
    assert message["actor_name"] == "dispatch_event"
    assert message["options"]["tenant_id"] == api.tenant
    assert event["event_type"] == "policy.created"
    assert event["entity_type"] == "policy"
    assert event["entity_id"] == body["id"]
    assert event["tenant_id"] == api.tenant
    assert event["actor"] == "alice"
    assert event["causation"] == []
    data = event["data"]
    assert data["status"] == "draft"
    assert data["title"] == "Acceptable use"
    assert data["owner"] == "carol"
    assert data["policy_type"] == "security"
    assert data["tags"] == ["it"]
    assert data["version"] == 1
    # The outbox row is marked sent by the process that published it.
    poll(
        lambda: Outbox.get(Outbox.event_id == event["event_id"]).sent_at is not None,
        message="the outbox row to be marked sent",
    )


def test_update_publishes_changed_fields(api, redis_client, namespace):
    policy = api.create()
    resp = api.patch(policy["id"], {"title": "New title", "tags": ["x"]}, version=1)
    assert resp.status_code == 200, resp.text

    event = _only_new(redis_client, namespace, 1)["args"][0]
    assert event["event_type"] == "policy.updated"
    assert event["data"]["changed_fields"] == ["tags", "title"]
    assert event["data"]["title"] == "New title"
    assert event["data"]["version"] == 2
    assert resp.json["jobs"][0]["id"] == event["event_id"]


def test_a_patch_that_changes_nothing_publishes_nothing(api, redis_client, namespace):
    policy = api.create(title="Same")
    resp = api.patch(policy["id"], {"title": "Same"}, version=1)

    assert resp.status_code == 200
    assert resp.json["version"] == 1 and resp.json["jobs"] == []
    assert queue_counts(redis_client, namespace) == (1, 1)


def test_transition_publishes_old_and_new_status(api, redis_client, namespace):
    policy = api.create()
    resp = api.transition(policy["id"], "in_review", roles=("editor",), comment="please")
    assert resp.status_code == 200, resp.text

    event = _only_new(redis_client, namespace, 1)["args"][0]
    assert event["event_type"] == "policy.status_changed"
    assert event["data"]["old_status"] == "draft"
    assert event["data"]["status"] == "in_review"
    assert event["data"]["comment"] == "please"
    assert event["actor"] == "alice"


def test_transition_carries_the_causation_chain(api, redis_client, namespace):
    policy = api.create()
    resp = api.transition(
        policy["id"], "in_review", roles=("service",), headers={"X-Causation": "e-1, e-2"}
    )
    assert resp.status_code == 200, resp.text

    event = _only_new(redis_client, namespace, 1)["args"][0]
    assert event["causation"] == ["e-1", "e-2"]
    assert "initiator" not in event  # the actor started it (and older workers read it)


def test_a_workflow_change_names_who_started_its_chain(api, redis_client, namespace):
    policy = api.create()
    headers = {"X-Causation": "e-1", "X-Initiator": "olivia"}
    resp = api.transition(policy["id"], "in_review", roles=("service",), headers=headers)
    assert resp.status_code == 200, resp.text

    event = _only_new(redis_client, namespace, 1)["args"][0]
    assert (event["actor"], event["initiator"]) == ("alice", "olivia")


def test_delete_publishes_policy_deleted(api, redis_client, namespace):
    policy = api.create()
    resp = api.delete(policy["id"])
    assert resp.status_code == 200, resp.text

    event = _only_new(redis_client, namespace, 1)["args"][0]
    assert event["event_type"] == "policy.deleted"
    assert event["entity_id"] == policy["id"]
    assert resp.json == {"id": policy["id"], "deleted": True, "jobs": resp.json["jobs"]}
    assert resp.json["jobs"][0]["id"] == event["event_id"]


def test_each_write_has_its_own_event(api, redis_client, namespace):
    policy = api.create()
    api.patch(policy["id"], {"content": "v2"}, version=1)
    api.transition(policy["id"], "in_review")
    api.delete(policy["id"])

    events = published_events(redis_client, namespace)
    assert [e["event_type"] for e in events] == [
        "policy.created",
        "policy.updated",
        "policy.status_changed",
        "policy.deleted",
    ]
    assert len({e["event_id"] for e in events}) == 4
