"""Every api route declares who may call it once, and that declaration is what the
server enforces and what /openapi.json says.

The routes are read from the app's own router, not from a list kept here, so a new
route that is not declared fails :func:`test_every_route_is_declared`.
"""

from __future__ import annotations

import re
import uuid

import pytest

from shared.auth import ROLES

#: Served beside every service's routes: public probes, the API description, and
#: /metrics, which checks its operator role itself (its refusal names why).
STANDARD = {"/healthz", "/readyz", "/openapi.json", "/metrics"}
_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _responders(app):
    """(path template, METHOD, responder) of every responder the app routes to."""
    for node in _walk(app._router._roots):
        if node.resource is None:
            continue
        for method, responder in node.method_map.items():
            if getattr(responder, "__name__", "").startswith("on_"):
                yield node.uri_template, method, responder


def _api_routes(api):
    return [r for r in _responders(api.client.app) if r[0] not in STANDARD]


def test_every_route_is_declared(api):
    routes = _api_routes(api)
    assert len(routes) > 20  # the walk found the app's routes
    undeclared = [
        f"{method} {template}"
        for template, method, responder in routes
        if not getattr(getattr(responder, "operation", None), "declared", False)
    ]
    assert undeclared == []


def test_every_documented_route_declares_the_roles_the_server_enforces(api):
    spec = api.client.simulate_get("/openapi.json").json
    documented = {
        (path, method.upper()): op
        for path, item in spec["paths"].items()
        if path not in STANDARD
        for method, op in item.items()
    }
    assert documented
    for (path, method), op in documented.items():
        assert op.get("x-roles"), f"{method} {path} declares no roles"
    served = {
        (_PATH_PARAM.sub(r"{\1}", template), method): responder.operation.roles
        for template, method, responder in _api_routes(api)
    }
    assert set(served) == set(documented)
    for key, roles in served.items():
        assert list(roles) == documented[key]["x-roles"], key


@pytest.mark.parametrize("body", [None, {"not": "a valid body"}])
def test_a_role_outside_the_declaration_is_refused_before_anything_else(api, body):
    # Given every declared route, a made-up id and a body that fails validation
    # When each role the route does not name calls it
    # Then the answer is require_role's 403, and each role it names gets past it
    for template, method, responder in _api_routes(api):
        declared = set(responder.operation.roles)
        path = _PATH_PARAM.sub(lambda _m: str(uuid.uuid4()), template)
        allowed = ", ".join(sorted({*declared, "admin"}))
        for role in ROLES:
            resp = api.client.simulate_request(method, path, json=body, headers=api.headers(role))
            refused = resp.status_code == 403 and resp.json == {
                "title": "Forbidden",
                "description": f"This action needs one of the roles: {allowed}.",
            }
            should_refuse = role not in declared and role != "admin"
            assert refused == should_refuse, (method, template, role, resp.status_code, resp.text)


def test_no_token_is_a_401_on_every_declared_route(api):
    for template, method, _responder in _api_routes(api):
        path = _PATH_PARAM.sub(lambda _m: str(uuid.uuid4()), template)
        resp = api.client.simulate_request(method, path)
        assert resp.status_code == 401, (method, template)
        assert resp.json["title"] == "Authentication required"
