"""Tokens: the published development secret, RS256-only user tokens with a public key,
service tokens apart from user tokens, ``iat``, maximum lifetime and issuer."""

from __future__ import annotations

import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import (
    SERVICE_AUDIENCE,
    TokenDecoder,
    TokenError,
    issue_service_token,
    issue_token,
)
from shared.settings import DEV_JWT_SECRET, DEV_SERVICE_TOKEN_SECRET
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from tests.security.secure_apps import bearer, user_token
from tests.support import ServiceProcess, python_module

GLOBEX_ADMIN = {"sub": "x", "roles": ["admin"], "tenant": "globex"}


def _rsa() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, public_pem


def _create_policy(client, headers) -> dict:
    resp = client.simulate_post(
        "/policies", json={"title": "Access", "policy_type": "security"}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json


# ------------------------------------------------------------- the development secret


def test_a_token_signed_with_the_development_secret_is_refused_by_both_services(
    api_app, workflow_app
):
    # Given both services configured with real secrets
    api, workflow = api_app(), workflow_app()
    forged = bearer(user_token(GLOBEX_ADMIN, key=DEV_JWT_SECRET))
    # Then the published development secret signs nothing they accept
    assert api.simulate_get("/policies", headers=forged).status_code == 401
    assert workflow.simulate_get("/workflows", headers=forged).status_code == 401
    # while a token signed with the configured secret works
    real = bearer(user_token(GLOBEX_ADMIN))
    assert api.simulate_get("/policies", headers=real).status_code == 200
    assert workflow.simulate_get("/workflows", headers=real).status_code == 200


def test_a_service_token_signed_with_the_development_service_secret_is_refused(api_app):
    api = api_app()
    forged = bearer(issue_service_token(DEV_SERVICE_TOKEN_SECRET, "globex"))
    assert api.simulate_get("/policies", headers=forged).status_code == 401


# ----------------------------------------------------------------- RS256 with a key


def test_with_a_public_key_user_tokens_must_be_rs256(api_app, workflow_app):
    key, public_pem = _rsa()
    api, workflow = api_app(jwt_public_key=public_pem), workflow_app(jwt_public_key=public_pem)
    hs256 = bearer(user_token(GLOBEX_ADMIN))  # signed with the (still set) JWT_SECRET
    rs256 = bearer(user_token(GLOBEX_ADMIN, key=key, algorithm="RS256"))
    for client, path in ((api, "/policies"), (workflow, "/workflows")):
        resp = client.simulate_get(path, headers=hs256)
        assert resp.status_code == 401, resp.text
        assert "RS256" in resp.json["description"]
        assert client.simulate_get(path, headers=rs256).status_code == 200


def test_with_a_public_key_the_decoder_refuses_hs256():
    _, public_pem = _rsa()
    with pytest.raises(TokenError, match="algorithm"):
        TokenDecoder(JWT_SECRET, public_pem).decode(user_token(GLOBEX_ADMIN))


# ----------------------------------------------------------- service vs user tokens


def test_a_user_token_claiming_the_service_role_is_refused(api_app):
    api = api_app()
    editor = bearer(issue_token(JWT_SECRET, "alice", ["editor"], "acme"))
    policy = _create_policy(api, editor)
    api.simulate_post(
        f"/policies/{policy['id']}/transitions", json={"to": "in_review"}, headers=editor
    )
    forged = [
        # signed with JWT_SECRET, claiming the service role
        user_token({"sub": "alice", "roles": ["service"], "tenant": "acme"}),
        user_token({"sub": "alice", "roles": ["service", "editor"], "tenant": "acme"}),
        # signed with JWT_SECRET, dressed as a service token
        user_token(
            {"sub": "workflow-service", "roles": ["service"], "tenant": "acme"},
            aud=SERVICE_AUDIENCE,
        ),
    ]
    for token in forged:
        resp = api.simulate_post(
            f"/policies/{policy['id']}/transitions", json={"to": "approved"}, headers=bearer(token)
        )
        assert resp.status_code == 401, resp.text
    # The real service token (the service key and audience) still moves it, for the
    # person who approved it in a workflow
    service = {
        **bearer(issue_service_token(SERVICE_TOKEN_SECRET, "acme")),
        "X-Decided-By": "bob",
    }
    resp = api.simulate_post(
        f"/policies/{policy['id']}/transitions", json={"to": "approved"}, headers=service
    )
    assert resp.status_code == 200, resp.text


def test_a_service_token_carries_only_the_service_role():
    decoder = TokenDecoder(JWT_SECRET, service_secret=SERVICE_TOKEN_SECRET)
    token = user_token(
        {"roles": ["service", "admin"], "aud": SERVICE_AUDIENCE}, key=SERVICE_TOKEN_SECRET
    )
    with pytest.raises(TokenError, match="exactly the role"):
        decoder.decode(token)
    # and a token signed with the service key but no service audience is not one
    with pytest.raises(TokenError):
        decoder.decode(user_token({"roles": ["service"]}, key=SERVICE_TOKEN_SECRET))


def test_the_workflow_web_accepts_no_service_tokens(workflow_app):
    workflow = workflow_app()
    service = bearer(issue_service_token(SERVICE_TOKEN_SECRET, "acme"))
    resp = workflow.simulate_get("/workflows", headers=service)
    assert resp.status_code == 401 and "Service tokens" in resp.json["description"]


def test_user_tokens_cannot_be_minted_with_the_service_role():
    with pytest.raises(ValueError, match="service"):
        issue_token(JWT_SECRET, "alice", ["service"], "acme")


# ------------------------------------------------------- iat, lifetime and issuer


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iat": None}, "iat"),
        ({"iat": int(time.time()), "exp": int(time.time()) + 86400 + 60}, "lifetime"),
        ({"iat": int(time.time()) - 10, "exp": int(time.time()) + 365 * 86400}, "lifetime"),
    ],
    ids=["no-iat", "just-over-a-day", "a-year"],
)
def test_tokens_need_iat_and_a_bounded_lifetime(api_app, workflow_app, claims, reason):
    token = bearer(user_token({**GLOBEX_ADMIN, **claims}))
    for client, path in ((api_app(), "/policies"), (workflow_app(), "/workflows")):
        resp = client.simulate_get(path, headers=token)
        assert resp.status_code == 401, resp.text
        assert reason in resp.json["description"]


def test_the_maximum_lifetime_is_configurable(api_app):
    now = int(time.time())
    token = bearer(user_token({**GLOBEX_ADMIN, "iat": now, "exp": now + 600}))
    assert api_app().simulate_get("/policies", headers=token).status_code == 200
    resp = api_app(jwt_max_lifetime_s=300).simulate_get("/policies", headers=token)
    assert resp.status_code == 401 and "lifetime" in resp.json["description"]


def test_a_configured_issuer_is_checked(api_app, workflow_app):
    for client, path in (
        (api_app(jwt_issuer="https://id.example.org"), "/policies"),
        (workflow_app(jwt_issuer="https://id.example.org"), "/workflows"),
    ):
        right = user_token({**GLOBEX_ADMIN, "iss": "https://id.example.org"})
        wrong = user_token({**GLOBEX_ADMIN, "iss": "https://evil.example.org"})
        missing = user_token(GLOBEX_ADMIN)
        assert client.simulate_get(path, headers=bearer(right)).status_code == 200
        for token in (wrong, missing):
            resp = client.simulate_get(path, headers=bearer(token))
            assert resp.status_code == 401, resp.text
            assert "iss" in resp.json["description"]


def test_the_workflow_services_api_client_sends_a_service_token():
    from workflow_service.apiclient import ApiClient

    client = ApiClient("http://127.0.0.1:1", SERVICE_TOKEN_SECRET)
    try:
        token = client.service_token("acme")
    finally:
        client.close()
    principal = TokenDecoder(JWT_SECRET, service_secret=SERVICE_TOKEN_SECRET).decode(token)
    assert principal.roles == {"service"} and principal.tenant == "acme"
    # A decoder without the service key (or with only JWT_SECRET) refuses it
    with pytest.raises(TokenError):
        TokenDecoder(JWT_SECRET).decode(token)


# ------------------------------------------------------------ the dev token command


def test_the_token_command_works_from_a_shell_without_app_env(tmp_path):
    # The README's walk mints tokens from a second shell, where APP_ENV is not set
    env = {k: v for k, v in os.environ.items() if k not in {"APP_ENV", "JWT_SECRET"}}
    argv = python_module(
        "api_service", "token", "--sub", "olga", "--roles", "admin", "--tenant", "acme"
    )
    proc = ServiceProcess("token", argv, {}, tmp_path)
    proc.env = env
    proc.start()
    assert proc.proc.wait(30) == 0, proc.log()
    proc.stop()
    token = proc.log().strip().splitlines()[-1]
    principal = TokenDecoder(DEV_JWT_SECRET).decode(token)
    assert principal.sub == "olga" and principal.roles == {"admin"}
    assert "iat" in jwt.decode(token, options={"verify_signature": False})
