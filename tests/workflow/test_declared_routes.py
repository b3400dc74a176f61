"""Every route of the workflow service's admin web declares who may call it once, and
that declaration is what the server enforces and what its /openapi.json says.

The routes are read from the app's own router (as for the api), so a new route that is
neither declared nor listed in :data:`UNDECLARED` with its reason fails.
"""

from __future__ import annotations

import uuid

import falcon.testing
import pytest

from shared.auth import ROLES, SERVICE_ROLE, issue_service_token, issue_token
from tests.api.test_declared_routes import _PATH_PARAM, STANDARD, _responders
from tests.conftest import JWT_SECRET
from tests.workflow.conftest import Outbox, PolicyApi
from workflow_service.app import Deps, create_app
from workflow_service.db import database

#: Responders the toolkit does not wrap, and why.
UNDECLARED = {
    "GET /console": "the console's page is public; its script calls the declared routes "
    "with the signed-in user's token",
    "GET /console/{name}": "the console's static files are public",
    "GET /console/vendor/{name}": "the console's bundled libraries are public",
}


@pytest.fixture
def client(settings, workflow_db, redis_client):
    from workflow_service.runtime import build_engine

    outbox = Outbox()
    engine = build_engine(settings, database, outbox, redis_client, api=PolicyApi())
    deps = Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    return falcon.testing.TestClient(create_app(settings, deps))


def _headers(settings, role: str) -> dict[str, str]:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    if role == SERVICE_ROLE:
        token = issue_service_token(settings.service_token_secret, tenant)
    else:
        token = issue_token(JWT_SECRET, f"someone-{role}", [role], tenant)
    return {"Authorization": f"Bearer {token}"}


def _routes(client):
    return [r for r in _responders(client.app) if r[0] not in STANDARD]


def _declared(client):
    return [
        r for r in _routes(client) if getattr(getattr(r[2], "operation", None), "declared", False)
    ]


def test_every_route_is_declared_or_listed_with_its_reason(client):
    routes = _routes(client)
    assert len(routes) > 30  # the walk found the app's routes
    undeclared = sorted(
        f"{method} {template}"
        for template, method, responder in routes
        if not getattr(getattr(responder, "operation", None), "declared", False)
    )
    assert undeclared == sorted(UNDECLARED)


def test_every_documented_route_declares_the_roles_the_server_enforces(client):
    spec = client.simulate_get("/openapi.json").json
    undeclared = {tuple(reversed(r.split(" ", 1))) for r in UNDECLARED}
    documented = {
        (path, method.upper()): op
        for path, item in spec["paths"].items()
        if path not in STANDARD
        for method, op in item.items()
        if (path, method.upper()) not in undeclared
    }
    assert documented
    for (path, method), op in documented.items():
        assert op.get("x-roles"), f"{method} {path} declares no roles"
    served = {
        (_PATH_PARAM.sub(r"{\1}", template), method): responder.operation.roles
        for template, method, responder in _declared(client)
    }
    assert set(served) == set(documented)
    for key, roles in served.items():
        assert list(roles) == documented[key]["x-roles"], key


def _refusal(resp, op) -> bool:
    """Whether ``resp`` is the declaration's refusal: require_role's 403, or the 403 of
    the route's own check (which names why, e.g. that a queue is every tenant's)."""
    if resp.status_code != 403 or resp.json.get("title") != "Forbidden":
        return False
    if op.authorize is not None:
        return "needs" in resp.json["description"]
    allowed = ", ".join(sorted({*op.roles, "admin"}))
    return resp.json["description"] == f"This action needs one of the roles: {allowed}."


@pytest.mark.parametrize("body", [None, {"not": "a valid body"}])
def test_a_role_outside_the_declaration_is_refused_before_anything_else(client, settings, body):
    # Given every declared route, a made-up id and a body that fails validation
    # When each role calls it
    # Then a role the route does not name gets its refusal, and each role it names
    # gets past it (admin passes require_role, not a route's own operator check)
    for template, method, responder in _declared(client):
        op = responder.operation
        path = _PATH_PARAM.sub(lambda _m: str(uuid.uuid4()), template)
        for role in ROLES:
            resp = client.simulate_request(
                method, path, json=body, headers=_headers(settings, role)
            )
            allowed = role in op.roles or (role == "admin" and op.authorize is None)
            where = (method, template, role, resp.status_code, resp.text)
            if role == SERVICE_ROLE and resp.status_code == 401:
                # Service tokens are taken only on the paths the api calls; elsewhere
                # the authentication refuses them before any route.
                assert resp.json["description"] == "Service tokens are not accepted here."
                continue
            assert _refusal(resp, op) == (not allowed), where


def test_no_token_is_a_401_on_every_declared_route(client):
    for template, method, _responder in _declared(client):
        path = _PATH_PARAM.sub(lambda _m: str(uuid.uuid4()), template)
        resp = client.simulate_request(method, path)
        assert resp.status_code == 401, (method, template)
        assert resp.json["title"] == "Authentication required"
