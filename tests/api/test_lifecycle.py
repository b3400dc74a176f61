"""The lifecycle matrix: every (from, to) pair is either allowed or a 409 listing the
allowed targets."""

from __future__ import annotations

import pytest

from api_service.lifecycle import STATUSES

ALLOWED = {
    ("draft", "in_review"),
    ("in_review", "approved"),
    ("in_review", "draft"),
    ("approved", "published"),
    ("approved", "draft"),
    ("published", "archived"),
    ("published", "in_review"),
}
#: A path from draft to each status, through allowed moves.
PATH = {
    "draft": [],
    "in_review": ["in_review"],
    "approved": ["in_review", "approved"],
    "published": ["in_review", "approved", "published"],
    "archived": ["in_review", "approved", "published", "archived"],
}


def _move(api, policy_id: str, to: str):
    # alice created and submits the policy; bob approves (separation of duties)
    if to == "approved":
        return api.transition(policy_id, to, headers=api.headers("admin", sub="bob"))
    return api.transition(policy_id, to)


def _policy_in(api, status: str) -> dict:
    policy = api.create()
    for step in PATH[status]:
        resp = _move(api, policy["id"], step)
        assert resp.status_code == 200, resp.text
    return policy


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_lifecycle_matrix(api, old, new):
    policy = _policy_in(api, old)
    version = len(PATH[old]) + 1

    resp = _move(api, policy["id"], new)

    if (old, new) in ALLOWED:
        assert resp.status_code == 200, resp.text
        assert resp.json["status"] == new
        assert resp.json["version"] == version + 1
        assert resp.headers["etag"] == f'"{version + 1}"'
    else:
        assert resp.status_code == 409, resp.text
        allowed = sorted(n for o, n in ALLOWED if o == old)
        assert sorted(resp.json["allowed"]) == allowed
        assert resp.json["title"] == "Transition not allowed"
        assert f"'{old}'" in resp.json["description"] and f"'{new}'" in resp.json["description"]
        # Nothing changed.
        assert api.get(policy["id"]).json["status"] == old
        assert api.get(policy["id"]).json["version"] == version


def test_a_transition_with_a_stale_version_is_412(api):
    policy = api.create()
    api.patch(policy["id"], {"title": "v2"}, version=1)

    resp = api.transition(policy["id"], "in_review", version=1)
    assert resp.status_code == 412, resp.text
    assert api.get(policy["id"]).json["status"] == "draft"

    resp = api.transition(policy["id"], "in_review", version=2)
    assert resp.status_code == 200, resp.text


def test_every_change_keeps_a_version_snapshot(api):
    policy = api.create(content="one")
    api.patch(policy["id"], {"content": "two"}, version=1)
    api.transition(policy["id"], "in_review")

    resp = api.client.simulate_get(
        f"/policies/{policy['id']}/versions", headers=api.headers("viewer")
    )
    assert resp.status_code == 200
    items = resp.json["items"]
    assert [(v["version"], v["change"]) for v in items] == [
        (1, "policy.created"),
        (2, "policy.updated"),
        (3, "policy.status_changed"),
    ]
    assert [v["snapshot"]["content"] for v in items] == ["one", "two", "two"]
    assert items[2]["snapshot"]["status"] == "in_review"
