"""Optimistic concurrency and idempotent transitions."""

from __future__ import annotations

import threading

from tests.api.helpers import published_events


def _race(*calls):
    """Run ``calls`` at the same moment in threads; their answers in call order."""
    barrier = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_two_concurrent_patches_on_the_same_version_one_wins(api):
    for attempt in range(5):
        policy = api.create()
        a, b = _race(
            lambda p=policy: api.patch(p["id"], {"title": "from A"}, version=1),
            lambda p=policy: api.patch(p["id"], {"title": "from B"}, version=1),
        )
        codes = sorted([a.status_code, b.status_code])
        assert codes == [200, 412], (attempt, a.text, b.text)
        winner = a if a.status_code == 200 else b
        current = api.get(policy["id"]).json
        assert current["version"] == 2
        assert current["title"] == winner.json["title"]


def test_patch_needs_a_version_and_refuses_a_stale_one(api):
    policy = api.create()
    assert api.patch(policy["id"], {"title": "x"}).status_code == 428
    assert api.patch(policy["id"], {"title": "x"}, version=1).status_code == 200
    stale = api.patch(policy["id"], {"title": "y"}, version=1)
    assert stale.status_code == 412
    assert stale.json["current_version"] == 2
    # The body's version works like If-Match.
    assert api.patch(policy["id"], {"title": "y", "version": 1}).status_code == 412
    assert api.patch(policy["id"], {"title": "y", "version": 2}).status_code == 200
    assert api.get(policy["id"]).json["title"] == "y"


def test_an_idempotent_transition_replays_the_first_answer(api, redis_client, namespace):
    policy = api.create()
    key = {"Idempotency-Key": "exec-1:step-2"}

    first = api.transition(policy["id"], "in_review", roles=("service",), headers=key)
    again = api.transition(policy["id"], "in_review", roles=("service",), headers=key)

    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert api.get(policy["id"]).json["version"] == 2
    events = published_events(redis_client, namespace)
    assert [e["event_type"] for e in events] == ["policy.created", "policy.status_changed"]


def test_an_idempotency_key_reused_for_another_request_is_refused(api):
    policy = api.create()
    key = {"Idempotency-Key": "k-1"}
    assert api.transition(policy["id"], "in_review", headers=key).status_code == 200

    resp = api.transition(policy["id"], "draft", headers=key)

    assert resp.status_code == 422
    assert "Idempotency-Key" in resp.json["description"]
    assert api.get(policy["id"]).json["status"] == "in_review"


def test_idempotency_keys_are_per_tenant(api):
    mine = api.create()
    other_tenant = api.headers("editor", tenant="other-" + api.tenant)
    theirs = api.client.simulate_post(
        "/policies", json={"title": "t", "policy_type": "p"}, headers=other_tenant
    ).json
    key = {"Idempotency-Key": "shared-key"}
    assert api.transition(mine["id"], "in_review", headers=key).status_code == 200

    resp = api.client.simulate_post(
        f"/policies/{theirs['id']}/transitions",
        json={"to": "in_review"},
        headers={**other_tenant, **key},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["id"] == theirs["id"]


def test_an_idempotency_key_is_never_another_callers_answer(api):
    policy = api.create()
    key = {"Idempotency-Key": "alice-key"}
    assert (
        api.transition(policy["id"], "in_review", roles=("editor",), headers=key).status_code == 200
    )

    # Keys belong to their caller: bob's use of alice's key is his own request, neither
    # refused nor answered with alice's answer
    bob = {**api.headers("approver", sub="bob"), **key}
    resp = api.client.simulate_post(
        f"/policies/{policy['id']}/transitions", json={"to": "approved"}, headers=bob
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "approved" and resp.json["updated_by"] == "bob"
    # and a repeat of bob's request replays bob's answer, not alice's
    again = api.client.simulate_post(
        f"/policies/{policy['id']}/transitions", json={"to": "approved"}, headers=bob
    )
    assert again.status_code == 200 and again.json == resp.json
    # while alice's key, sent by alice with a different request, is still hers
    reused = api.transition(policy["id"], "draft", roles=("editor",), headers=key)
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json["description"]


def test_a_refused_move_stores_nothing_under_its_key(api):
    policy = api.create()
    key = {"Idempotency-Key": "early"}
    bob = {**api.headers("approver", sub="bob"), **key}
    refused = api.transition(policy["id"], "approved", headers=bob)
    assert refused.status_code == 409, refused.text
    assert api.transition(policy["id"], "in_review").status_code == 200

    # the same key and request, now that the move is allowed
    resp = api.transition(policy["id"], "approved", headers=bob)
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "approved"


def test_concurrent_requests_with_one_idempotency_key_move_once(api, redis_client, namespace):
    policy = api.create()
    key = {"Idempotency-Key": "race"}
    answers = _race(
        *[
            (lambda: api.transition(policy["id"], "in_review", roles=("service",), headers=key))
            for _ in range(4)
        ]
    )
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json["jobs"][0]["id"] for a in answers}) == 1
    assert api.get(policy["id"]).json["version"] == 2
    assert len(published_events(redis_client, namespace)) == 2
