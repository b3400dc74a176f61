"""Listing: filters, text search, cursor pagination."""

from __future__ import annotations

from shared.http import encode_cursor


def _list(api, **params):
    resp = api.client.simulate_get("/policies", params=params, headers=api.headers("viewer"))
    assert resp.status_code == 200, resp.text
    return resp.json


def test_cursor_pagination_walks_every_policy_once_newest_first(api):
    created = [api.create(title=f"policy {i}")["id"] for i in range(7)]

    seen, cursor, pages = [], None, 0
    while True:
        page = _list(api, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(created))


def test_filters_combine(api):
    a = api.create(title="Passwords", policy_type="security", owner="carol")
    api.create(title="Travel", policy_type="hr", owner="carol")
    api.create(title="Backups", policy_type="security", owner="dave")
    api.transition(a["id"], "in_review")

    assert {p["title"] for p in _list(api, policy_type="security")["items"]} == {
        "Passwords",
        "Backups",
    }
    assert [p["title"] for p in _list(api, owner="carol", policy_type="security")["items"]] == [
        "Passwords"
    ]
    assert [p["title"] for p in _list(api, status="in_review")["items"]] == ["Passwords"]
    assert _list(api, status="published")["items"] == []


def test_text_search_looks_at_title_and_content_case_insensitively(api):
    api.create(title="Encryption at rest", content="Use AES-256.")
    api.create(title="Clean desk", content="Lock screens; 100% of the time.")
    api.create(title="Other", content="nothing here")

    assert [p["title"] for p in _list(api, q="ENCRYPTION")["items"]] == ["Encryption at rest"]
    assert [p["title"] for p in _list(api, q="aes-256")["items"]] == ["Encryption at rest"]
    # LIKE wildcards are plain characters here.
    assert [p["title"] for p in _list(api, q="100%")["items"]] == ["Clean desk"]
    assert _list(api, q="%")["items"][0]["title"] == "Clean desk"
    assert _list(api, q="_")["items"] == []


def test_deleted_policies_are_not_listed_or_served(api):
    policy = api.create()
    api.delete(policy["id"])
    assert _list(api)["items"] == []
    assert api.get(policy["id"]).status_code == 404
    assert api.delete(policy["id"]).status_code == 404
    # Its history stays readable.
    versions = api.client.simulate_get(
        f"/policies/{policy['id']}/versions", headers=api.headers("viewer")
    )
    assert [v["change"] for v in versions.json["items"]] == ["policy.created", "policy.deleted"]


def test_get_answers_the_version_as_etag(api):
    policy = api.create()
    resp = api.get(policy["id"])
    assert resp.headers["etag"] == '"1"'
    assert resp.json == {k: v for k, v in policy.items() if k != "jobs"}


def test_timestamps_say_they_are_utc(api):
    policy = api.create()
    assert policy["created_at"].endswith("Z") and policy["updated_at"].endswith("Z")
    versions = api.client.simulate_get(
        f"/policies/{policy['id']}/versions", headers=api.headers("viewer")
    ).json["items"]
    assert versions[0]["changed_at"].endswith("Z")


def test_version_history_is_paged_oldest_first(api):
    policy = api.create(title="v1")
    version = policy["version"]
    for i in range(4):
        resp = api.patch(policy["id"], {"title": f"v{i + 2}"}, version=version)
        assert resp.status_code == 200, resp.text
        version = resp.json["version"]
    path = f"/policies/{policy['id']}/versions"

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = api.client.simulate_get(path, params=params, headers=api.headers("viewer"))
        assert resp.status_code == 200, resp.text
        assert len(resp.json["items"]) <= 2
        seen += [v["version"] for v in resp.json["items"]]
        pages += 1
        cursor = resp.json["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [1, 2, 3, 4, 5]
    too_far = encode_cursor({"v": 10**30})  # beyond a 64-bit integer (SQLite: 500)
    for params in (
        {"cursor": "nope"},
        {"cursor": "eyJ2IjoiMSJ9"},
        {"cursor": too_far},
        {"limit": "0"},
    ):
        resp = api.client.simulate_get(path, params=params, headers=api.headers("viewer"))
        assert resp.status_code == 400, resp.text
        assert {"title", "description"} <= set(resp.json)
