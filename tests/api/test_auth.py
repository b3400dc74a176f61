"""The auth matrix: no or bad token, each role on each operation, another tenant."""

from __future__ import annotations

import base64
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import TokenDecoder, TokenError
from tests.api.helpers import auth
from tests.conftest import JWT_SECRET

ROLES = ("viewer", "editor", "approver", "admin", "service")


def _call(api, operation: str, policy_id: str, headers: dict):
    c = api.client
    match operation:
        case "list":
            return c.simulate_get("/policies", headers=headers)
        case "get":
            return c.simulate_get(f"/policies/{policy_id}", headers=headers)
        case "versions":
            return c.simulate_get(f"/policies/{policy_id}/versions", headers=headers)
        case "create":
            return c.simulate_post(
                "/policies", json={"title": "t", "policy_type": "p"}, headers=headers
            )
        case "update":
            return c.simulate_patch(
                f"/policies/{policy_id}", json={"title": "t2", "version": 1}, headers=headers
            )
        case "delete":
            return c.simulate_delete(f"/policies/{policy_id}", headers=headers)
        case "submit":  # draft -> in_review
            return c.simulate_post(
                f"/policies/{policy_id}/transitions", json={"to": "in_review"}, headers=headers
            )
    raise AssertionError(operation)


#: Which roles may do what (admin may do everything).
MAY = {
    "list": {"viewer", "editor", "approver", "admin", "service"},
    "get": {"viewer", "editor", "approver", "admin", "service"},
    "versions": {"viewer", "editor", "approver", "admin", "service"},
    "create": {"editor", "admin"},
    "update": {"editor", "admin"},
    "delete": {"editor", "admin"},
    "submit": {"editor", "admin", "service"},
}
SUCCESS = {"create": 201}
#: The workflow service creates and edits only for a person it names in X-Initiator
#: (imports; see tests/batch/test_api_service_writes.py): without one, a 400.
NEEDS_PERSON = {("service", "create"), ("service", "update")}


@pytest.mark.parametrize("operation", sorted(MAY))
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(api, role, operation):
    policy = api.create()
    resp = _call(api, operation, policy["id"], api.headers(role))
    if (role, operation) in NEEDS_PERSON:
        assert resp.status_code == 400 and "X-Initiator" in resp.json["description"]
    elif role in MAY[operation]:
        assert resp.status_code == SUCCESS.get(operation, 200), resp.text
    else:
        assert resp.status_code == 403, resp.text
        assert resp.json["title"] == "Forbidden" and "roles" in resp.json["description"]


@pytest.mark.parametrize("operation", sorted(MAY))
def test_no_token_is_401_with_a_challenge(api, operation):
    policy = api.create()
    resp = _call(api, operation, policy["id"], {})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json["title"] and resp.json["description"]


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-jwt",
        "Bearer "
        + jwt.encode(
            {"sub": "a", "roles": ["admin"], "tenant": "t", "exp": int(time.time()) + 60},
            "wrong-secret-but-long-enough-0123",
        ),
        "Bearer "
        + jwt.encode(
            {
                "sub": "a",
                "roles": ["admin"],
                "tenant": "t",
                "iat": int(time.time()) - 3660,
                "exp": int(time.time()) - 3600,
            },
            JWT_SECRET,
        ),
        "Bearer "
        + jwt.encode(
            {"sub": "a", "roles": ["admin"], "iat": int(time.time()), "exp": int(time.time()) + 60},
            JWT_SECRET,
        ),
        "Bearer "
        + jwt.encode(
            {"sub": "a", "roles": ["admin"], "tenant": "t", "exp": int(time.time()) + 60},
            None,
            algorithm="none",
        ),
    ],
    ids=["basic", "empty", "garbage", "bad-signature", "expired", "no-tenant", "alg-none"],
)
def test_invalid_tokens_are_401(api, header):
    resp = api.client.simulate_get("/policies", headers={"Authorization": header})
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_expired_token_says_so(api):
    resp = api.client.simulate_get("/policies", headers=auth("viewer", ttl=-3600))
    assert resp.status_code == 401
    assert "expired" in resp.json["description"]


@pytest.mark.parametrize("operation", ["get", "versions", "update", "delete", "submit"])
def test_another_tenants_policy_is_404(api, operation):
    policy = api.create()
    stranger = auth("admin", tenant="someone-else")
    resp = _call(api, operation, policy["id"], stranger)
    assert resp.status_code == 404, resp.text
    assert api.get(policy["id"]).json["version"] == 1


def test_lists_show_only_the_callers_tenant(api):
    api.create(title="mine")
    resp = api.client.simulate_get("/policies", headers=auth("admin", tenant="someone-else"))
    assert resp.status_code == 200
    assert resp.json["items"] == []


def _in_review(api) -> dict:
    policy = api.create()
    assert api.transition(policy["id"], "in_review", roles=("editor",)).status_code == 200
    return policy


@pytest.mark.parametrize(
    ("role", "target", "expected"),
    [
        ("approver", "approved", 200),
        ("approver", "draft", 200),
        ("editor", "approved", 403),
        ("editor", "draft", 200),
        ("service", "approved", 200),
        ("viewer", "approved", 403),
        ("admin", "approved", 200),
    ],
)
def test_who_may_decide_a_review(api, role, target, expected):
    policy = _in_review(api)
    # bob decides: alice created and submitted it (separation of duties)
    bob = auth(role, sub="bob", tenant=api.tenant)
    if role == "service":
        bob["X-Decided-By"] = "bob"  # the approver the workflow service acts for
    resp = api.transition(policy["id"], target, headers=bob)
    assert resp.status_code == expected, resp.text


def test_an_approver_may_not_publish(api):
    policy = _in_review(api)
    bob = auth("approver", sub="bob", tenant=api.tenant)
    assert api.transition(policy["id"], "approved", headers=bob).status_code == 200
    resp = api.transition(policy["id"], "published", roles=("approver",))
    assert resp.status_code == 403


def test_probes_and_docs_need_no_token(api):
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert api.client.simulate_get(path).status_code == 200, path


def test_rs256_tokens_verify_with_the_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    decoder = TokenDecoder(JWT_SECRET, public_pem)
    now = int(time.time())
    claims = {"sub": "ann", "roles": ["viewer"], "tenant": "acme", "iat": now, "exp": now + 60}

    principal = decoder.decode(jwt.encode(claims, key, algorithm="RS256"))
    assert principal.sub == "ann" and principal.roles == {"viewer"}

    # Without a configured public key RS256 is refused, and the public key can never
    # be used as an HMAC secret.
    with pytest.raises(TokenError):
        TokenDecoder(JWT_SECRET).decode(jwt.encode(claims, key, algorithm="RS256"))
    # A token "signed" with HS256 using the public key as the secret is refused.
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(public_pem.encode(), f"{header}.{payload}".encode(), "sha256")
    with pytest.raises(TokenError):
        decoder.decode(f"{header}.{payload}.{_b64(signature.digest())}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cached_token_still_expires():
    now = time.time()
    decoder = TokenDecoder(JWT_SECRET, clock=lambda: now)
    token = jwt.encode(
        {"sub": "a", "roles": ["viewer"], "tenant": "t", "iat": int(now), "exp": int(now) + 60},
        JWT_SECRET,
    )
    assert decoder.decode(token).sub == "a"
    assert decoder.decode(token).sub == "a"  # answered from the cache

    decoder.clock = lambda: now + 3600
    with pytest.raises(TokenError, match="expired"):
        decoder.decode(token)
