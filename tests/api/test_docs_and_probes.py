"""/openapi.json covers every route; probes and metrics answer."""

from __future__ import annotations

import dataclasses

import peewee

from api_service.migrations import MIGRATIONS
from shared.db import migrate, open_database
from tests.api.helpers import ApiClient, unique_tenant
from tests.support import free_port


def test_openapi_covers_every_route_and_method(api):
    spec = api.client.simulate_get("/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    app = api.client.app
    routes = {}
    for node in _walk(app._router._roots):
        if node.resource is not None:
            methods = {
                m.lower()
                for m in node.method_map
                if getattr(node.method_map[m], "__name__", "").startswith("on_")
            }
            routes[node.uri_template] = methods
    for template, methods in routes.items():
        assert template in spec["paths"], template
        assert set(spec["paths"][template]) == methods, template
    post = spec["paths"]["/policies"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"title", "policy_type"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert set(post["responses"]) >= {"201", "401", "403", "422", "413", "503"}
    assert set(spec["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    transitions = spec["paths"]["/policies/{policy_id}/transitions"]["post"]
    assert {p["name"] for p in transitions["parameters"]} >= {
        "policy_id",
        "Idempotency-Key",
        "If-Match",
        "X-Causation",
    }
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node.children)


def test_metrics_count_requests_per_route_template(api):
    policy = api.create()
    api.get(policy["id"])
    api.get(policy["id"])
    text = api.client.simulate_get("/metrics", headers=api.headers("operator")).text
    assert (
        'api_http_requests_total{method="GET",route="/policies/{policy_id}",status="200"} 2.0'
        in text
    )
    assert 'api_http_request_duration_seconds_count{method="POST",route="/policies"} 1.0' in text


def test_probes(api):
    assert api.client.simulate_get("/healthz").json == {"status": "ok"}
    ready = api.client.simulate_get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_and_requests_are_503_when_the_database_is_gone(
    api_settings, make_app, tmp_path
):
    app, deps = make_app(api_settings)
    api = ApiClient(app, unique_tenant())
    assert api.client.simulate_get("/readyz").status_code == 200

    # When the database becomes unreachable (the pool is pointed somewhere dead)
    deps.db.close_all()
    if isinstance(deps.db, peewee.PostgresqlDatabase):
        deps.db.init("gone", host="127.0.0.1", port=free_port(), connect_timeout=1)
    else:
        deps.db.init(str(tmp_path / "missing-dir" / "api.db"))

    ready = api.client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert "database" in ready.json["description"]
    assert ready.json["checks"]["redis"] == "ok"
    resp = api.client.simulate_get("/policies", headers=api.headers("viewer"))
    assert resp.status_code == 503
    assert resp.json["title"] == "Database unavailable"


def test_a_database_error_that_waiting_cannot_fix_is_a_500(
    api_settings, make_app, make_database_url
):
    # A missing table is a bug (an unmigrated database), not an outage to retry
    url = make_database_url("dropped")
    db = open_database(url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    db.close()
    app, deps = make_app(dataclasses.replace(api_settings, database_url=url))
    api = ApiClient(app, unique_tenant())
    with deps.db.connection_context():
        deps.db.execute_sql("DROP TABLE policy_version")
        deps.db.execute_sql("DROP TABLE policy")
    resp = api.client.simulate_get("/policies", headers=api.headers("viewer"))
    assert resp.status_code == 500, resp.text
    assert resp.json["title"] == "Internal server error"
