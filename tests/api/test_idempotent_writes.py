"""Idempotency-Key on creates and PATCH (policies, assessments, evidence): the first
answer is replayed to a repeat by the same caller, a different request with the key is
refused, and concurrent repeats never write twice."""

from __future__ import annotations

import threading

import pytest

from api_service.models import Assessment, IdempotencyRecord, Policy


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
        t.join(60)
    return answers


def _count(model, tenant, title):
    with model._meta.database.connection_context():
        return model.select().where((model.tenant == tenant) & (model.title == title)).count()


COLLECTIONS = {
    "policies": (Policy, {"policy_type": "security"}),
    "assessments": (Assessment, {"scope": "IAM"}),
}


@pytest.mark.parametrize("collection", ["policies", "assessments", "evidence"])
def test_a_repeated_create_replays_the_first_answer(client, collection):
    extra = {"policy_type": "security"} if collection == "policies" else {}
    if collection == "evidence":
        extra = {"kind": "log"}
    body = {"title": "Imported row 7", **extra}
    key = {"Idempotency-Key": "import-42:row-7"}

    first = client.post(f"/{collection}", body, headers=key)
    again = client.post(f"/{collection}", body, headers=key)

    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json == first.json
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == '"1"'
    items = client.read(f"/{collection}").json["items"]
    assert [i["id"] for i in items] == [first.json["id"]]

    # The same key with another body, or by another caller, is not a replay.
    resp = client.post(f"/{collection}", {**body, "title": "Other"}, headers=key)
    assert resp.status_code == 422, resp.text
    assert "Idempotency-Key" in resp.json["description"]
    resp = client.post(f"/{collection}", body, sub="bob", headers=key)
    assert resp.status_code == 201 and resp.json["id"] != first.json["id"]
    # Without a key every request creates.
    assert client.post(f"/{collection}", body).json["id"] != first.json["id"]


@pytest.mark.parametrize("collection", ["policies", "assessments"])
def test_a_repeated_patch_replays_and_changes_once(client, collection):
    created = client.policy() if collection == "policies" else client.assessment()
    path = f"/{collection}/{created['id']}"
    key = {"Idempotency-Key": "fix-title-1"}

    first = client.edit(path, {"title": "Renamed"}, 1, headers=key)
    again = client.edit(path, {"title": "Renamed"}, 1, headers=key)

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json == first.json and first.json["version"] == 2
    assert again.headers["etag"] == '"2"'
    versions = client.read(f"{path}/versions").json["items"]
    assert len(versions) == 2
    # Same key, another change: refused; a stale version without the key: 412.
    assert client.edit(path, {"title": "Other"}, 2, headers=key).status_code == 422
    assert client.edit(path, {"title": "Renamed again"}, 1).status_code == 412


def test_a_refused_write_stores_nothing_and_its_key_may_be_sent_again(client):
    policy = client.policy()
    key = {"Idempotency-Key": "retry-me"}
    path = f"/policies/{policy['id']}"
    assert client.edit(path, {"title": "x"}, 7, headers=key).status_code == 412
    with IdempotencyRecord._meta.database.connection_context():
        stored = IdempotencyRecord.select().where(IdempotencyRecord.tenant == client.tenant)
        assert stored.count() == 0
    # The key was not used up: the corrected request goes through with it.
    resp = client.edit(path, {"title": "x"}, 1, headers=key)
    assert resp.status_code == 200, resp.text
    assert client.edit(path, {"title": "x"}, 1, headers=key).json == resp.json


@pytest.mark.parametrize("collection", ["policies", "assessments"])
def test_concurrent_repeats_of_a_create_make_one_row(client, collection):
    model, extra = COLLECTIONS[collection]
    for attempt in range(5):
        title = f"Bulk row {attempt}"
        key = {"Idempotency-Key": f"bulk:{collection}:{attempt}"}
        answers = _race(
            *[
                lambda: client.post(f"/{collection}", {"title": title, **extra}, headers=key)
                for _ in range(6)
            ]
        )
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json["id"] for a in answers}) == 1, attempt
        assert _count(model, client.tenant, title) == 1, attempt


def test_concurrent_repeats_of_a_patch_change_once(client):
    for attempt in range(5):
        policy = client.policy()
        path = f"/policies/{policy['id']}"
        key = {"Idempotency-Key": f"rename:{attempt}"}
        answers = _race(
            *[lambda: client.edit(path, {"title": "Renamed"}, 1, headers=key) for _ in range(4)]
        )
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        assert len({a.json["jobs"][0]["id"] for a in answers}) == 1
        assert len(client.read(f"{path}/versions").json["items"]) == 2
