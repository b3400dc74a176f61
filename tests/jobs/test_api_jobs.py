"""The api's /jobs: records written by the broker's middleware when a policy write
publishes its event, read back through the real app (real Redis, real database)."""

from __future__ import annotations

import contextlib
import json

import pytest
import redis
from falcon import testing

from api_service.app import Deps, create_app
from api_service.migrations import MIGRATIONS
from api_service.settings import ApiSettings
from shared.auth import issue_token
from shared.broker import create_broker
from shared.db import migrate, open_database
from shared.jobstatus import JobStatusStore
from tests.conftest import JWT_SECRET

POLICY = {"title": "Access control", "policy_type": "security"}


@contextlib.contextmanager
def api_client(redis_url, namespace, database_url, job_store=None):
    """The real app on a migrated database; ``job_store`` replaces the Redis one."""
    settings = ApiSettings(
        redis_url=redis_url, namespace=namespace, jwt_secret=JWT_SECRET, database_url=database_url
    )
    db = open_database(settings.database_url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    broker = create_broker(settings)
    deps = Deps(db=db, broker=broker, job_store=job_store)
    try:
        yield testing.TestClient(create_app(settings, deps))
    finally:
        deps.outbox.close()
        broker.close()
        db.close()


@pytest.fixture
def api(redis_url, namespace, make_database_url):
    with api_client(redis_url, namespace, make_database_url("jobsapi")) as client:
        yield client


def auth(tenant, roles=("editor",), sub="alice"):
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, roles, tenant)}"}


def create_policy(api, tenant):
    resp = api.simulate_post("/policies", json=POLICY, headers=auth(tenant))
    assert resp.status_code == 201, resp.text
    return resp.json["jobs"][0]["id"]


def test_a_write_response_links_to_its_queued_job(api):
    job_id = create_policy(api, "acme")

    resp = api.simulate_get(f"/jobs/{job_id}", headers=auth("acme", ("viewer",)))

    assert resp.status_code == 200, resp.text
    job = resp.json
    assert job["id"] == job_id and job["href"] == f"/jobs/{job_id}"
    assert job["state"] == "queued" and job["queue"] == "governance.policy"
    assert job["tenant_id"] == "acme" and job["attempt"] == 0 and job["max_attempts"] == 5
    assert [e["state"] for e in job["timeline"]] == ["queued"]
    assert job["children"] == {"total": 0, "by_state": {}, "items": []}


def test_another_tenants_job_is_not_found(api):
    job_id = create_policy(api, "acme")

    resp = api.simulate_get(f"/jobs/{job_id}", headers=auth("globex", ("admin",)))

    assert resp.status_code == 404
    assert resp.json["title"] == "Job not found"
    unknown = api.simulate_get("/jobs/6f1c1f9e-0000-4000-8000-000000000000", headers=auth("acme"))
    assert unknown.status_code == 404


def test_bad_input_is_a_400_naming_the_parameter(api):
    headers = auth("acme")
    for path, params, name in [
        ("/jobs/not-a-uuid", None, "job_id"),
        ("/jobs", {"state": "sleeping"}, "state"),
        ("/jobs", {"queue": "governance:policy"}, "queue"),
        ("/jobs", {"limit": "0"}, "limit"),
        ("/jobs", {"cursor": "%%%"}, "cursor"),
        ("/jobs", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ]:
        resp = api.simulate_get(path, params=params, headers=headers)
        assert resp.status_code == 400, (path, params, resp.text)
        assert name in resp.json["title"], resp.json
    assert api.simulate_get("/jobs").status_code == 401


def test_reading_jobs_takes_a_role_that_reads_policies(api):
    job_id = create_policy(api, "acme")
    for roles, status in [((), 403), (("viewer",), 200), (("admin",), 200)]:
        for path in (f"/jobs/{job_id}", "/jobs"):
            resp = api.simulate_get(path, headers=auth("acme", roles))
            assert resp.status_code == status, (roles, path, resp.text)


def test_an_unreachable_redis_is_a_503(redis_url, namespace, make_database_url):
    # Nothing listens on port 1: the store's client cannot connect.
    dead = JobStatusStore(redis.Redis.from_url("redis://127.0.0.1:1/0"), namespace)
    with api_client(redis_url, namespace, make_database_url("jobsdown"), dead) as client:
        for path in ("/jobs/6f1c1f9e-0000-4000-8000-000000000000", "/jobs"):
            resp = client.simulate_get(path, headers=auth("acme", ("viewer",)))
            assert resp.status_code == 503, resp.text
            assert resp.json["title"] == "Redis unavailable"


def test_the_list_is_tenant_scoped_filtered_and_paginated(api):
    mine = {create_policy(api, "acme") for _ in range(5)}
    theirs = create_policy(api, "globex")

    seen, cursor = [], None
    while True:
        params = {"queue": "governance.policy", "state": "queued", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        resp = api.simulate_get("/jobs", params=params, headers=auth("acme"))
        assert resp.status_code == 200, resp.text
        assert len(resp.json["items"]) <= 2
        seen.extend(item["id"] for item in resp.json["items"])
        cursor = resp.json["next_cursor"]
        if not cursor:
            break

    assert len(seen) == 5 and set(seen) == mine and theirs not in seen
    empty = api.simulate_get("/jobs", params={"state": "failed"}, headers=auth("acme"))
    assert empty.json == {"items": [], "next_cursor": None}


def test_the_openapi_document_describes_jobs(api):
    doc = api.simulate_get("/openapi.json").json
    assert "/jobs" in doc["paths"] and "/jobs/{job_id}" in doc["paths"]
    assert "JobDetailOut" in doc["components"]["schemas"]


def test_a_tenant_searches_its_jobs_by_actor_and_entity(api, namespace, redis_client):
    # Given three writes of acme and one of globex
    mine = [create_policy(api, "acme") for _ in range(3)]
    create_policy(api, "globex")
    # and one of acme's jobs names the entity it is about (as a worker would)
    store = JobStatusStore(redis_client, namespace)
    subject = json.dumps({"entity_type": "policy", "entity_id": "pol-42"})
    store.transition(mine[1], "governance.policy", fields={"subject": subject}, must_exist=True)

    def search(**params):
        resp = api.simulate_get("/jobs", params={**params, "limit": 2}, headers=auth("acme"))
        assert resp.status_code == 200, resp.text
        return resp.json

    # When acme searches by actor: its three jobs, over two pages
    first = search(actor="dispatch_event")
    assert first["next_cursor"]
    rest = search(actor="dispatch_event", cursor=first["next_cursor"])
    found = [j["id"] for j in first["items"] + rest["items"]]
    assert sorted(found) == sorted(mine) and rest["next_cursor"] is None
    # by entity id: the one job about it
    assert [j["id"] for j in search(entity_id="pol-42")["items"]] == [mine[1]]
    # globex finds none of acme's
    resp = api.simulate_get("/jobs", params={"entity_id": "pol-42"}, headers=auth("globex"))
    assert resp.json["items"] == []
