"""Token decoding (shared/auth.py) with keys made for the test: which tokens each
decoder accepts, and what it says about the ones it refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import (
    SERVICE_AUDIENCE,
    Principal,
    TokenDecoder,
    TokenError,
    issue_service_token,
    issue_token,
)

SECRET = "unit-test-secret-of-at-least-32-characters-0123"
SERVICE_SECRET = "unit-test-service-secret-of-32-characters-456"
#: PyJWT checks iat and exp against the real time; the decoder's clock decides only
#: how long a verified token stays remembered. Set afresh for every test (below): the
#: module is imported when the whole suite is collected, maybe minutes before it runs.
NOW = int(time.time())


@pytest.fixture(autouse=True)
def _now() -> None:
    global NOW
    NOW = int(time.time())


class Clock:
    def __init__(self, now: float | None = None):
        self.now = NOW if now is None else now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    """(private PEM, public PEM) of a key made for this module."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def claims() -> dict:
    return {"sub": "alice", "roles": ["editor"], "tenant": "acme", "iat": NOW, "exp": NOW + 60}


def test_an_hs256_user_token_gives_its_principal():
    token = issue_token(SECRET, "alice", ["editor", "viewer"], "acme", now=NOW)
    principal = TokenDecoder(SECRET, clock=Clock()).decode(token)
    assert principal == Principal("alice", frozenset({"editor", "viewer"}), "acme")
    assert principal.has_role("viewer") and not principal.has_role("approver")


def test_admin_holds_every_role():
    assert Principal("root", frozenset({"admin"}), "acme").has_role("approver", "editor")


def test_a_token_signed_with_another_secret_is_refused():
    token = issue_token("another-secret-of-at-least-32-characters-789", "a", ["viewer"], "t")
    with pytest.raises(TokenError, match="invalid token"):
        TokenDecoder(SECRET).decode(token)


def test_an_rs256_token_verifies_with_the_public_key(rsa_keys):
    private, public = rsa_keys
    token = jwt.encode(claims(), private, algorithm="RS256")
    principal = TokenDecoder(None, public, clock=Clock()).decode(token)
    assert principal.sub == "alice" and principal.tenant == "acme"


def test_with_a_public_key_an_hs256_token_signed_with_that_key_is_refused(rsa_keys):
    _, public = rsa_keys

    # The old algorithm confusion: an HS256 token whose "secret" is the public key.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({**claims(), "sub": "mallory", "roles": ["admin"]}).encode())
    signature = hmac.new(public.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{b64(signature)}"
    with pytest.raises(TokenError, match="not accepted"):
        TokenDecoder(None, public, clock=Clock()).decode(forged)


def test_an_expired_token_is_refused_and_a_cached_one_expires_too():
    clock = Clock()
    decoder = TokenDecoder(SECRET, clock=clock)
    token = issue_token(SECRET, "alice", ["viewer"], "acme", ttl=60, now=NOW)
    decoder.decode(token)  # verified and remembered
    clock.now = NOW + 60 + 31  # past exp and the 30 s leeway
    with pytest.raises(TokenError, match="expired"):
        decoder.decode(token)
    with pytest.raises(TokenError, match="expired"):
        TokenDecoder(SECRET).decode(issue_token(SECRET, "a", ["viewer"], "t", ttl=1, now=1))


def test_a_token_living_longer_than_the_maximum_is_refused():
    token = issue_token(SECRET, "alice", ["viewer"], "acme", ttl=7200, now=NOW)
    decoder = TokenDecoder(SECRET, max_lifetime=3600, clock=Clock())
    with pytest.raises(TokenError, match="lifetime"):
        decoder.decode(token)


def test_a_configured_issuer_is_required():
    decoder = TokenDecoder(SECRET, issuer="https://idp.example", clock=Clock())
    with pytest.raises(TokenError):
        decoder.decode(issue_token(SECRET, "alice", ["viewer"], "acme", now=NOW))
    token = issue_token(SECRET, "alice", ["viewer"], "acme", now=NOW, issuer="https://idp.example")
    assert decoder.decode(token).sub == "alice"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", "a b"), ("sub", ""), ("tenant", "x" * 65), ("tenant", "acme\n"), ("roles", 3)],
)
def test_claims_are_ids_and_roles_a_list(claim, value):
    token = jwt.encode({**claims(), claim: value}, SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match=claim):
        TokenDecoder(SECRET, clock=Clock()).decode(token)


def test_roles_may_be_a_space_or_comma_separated_string():
    token = jwt.encode({**claims(), "roles": "editor, approver"}, SECRET, algorithm="HS256")
    assert TokenDecoder(SECRET, clock=Clock()).decode(token).roles == {"editor", "approver"}


def test_a_service_token_needs_the_service_secret():
    token = issue_service_token(SERVICE_SECRET, "acme", now=NOW)
    with pytest.raises(TokenError, match="not accepted here"):
        TokenDecoder(SECRET, clock=Clock()).decode(token)
    decoder = TokenDecoder(SECRET, service_secret=SERVICE_SECRET, clock=Clock())
    assert decoder.decode(token) == Principal("workflow-service", frozenset({"service"}), "acme")


def test_a_service_token_signed_with_the_user_secret_is_refused():
    token = issue_service_token(SECRET, "acme", now=NOW)
    decoder = TokenDecoder(SECRET, service_secret=SERVICE_SECRET, clock=Clock())
    with pytest.raises(TokenError, match="invalid token"):
        decoder.decode(token)


def test_a_service_token_with_more_roles_is_refused():
    body = {**claims(), "roles": ["service", "admin"], "aud": SERVICE_AUDIENCE}
    token = jwt.encode(body, SERVICE_SECRET, algorithm="HS256")
    decoder = TokenDecoder(SECRET, service_secret=SERVICE_SECRET, clock=Clock())
    with pytest.raises(TokenError, match="exactly the role"):
        decoder.decode(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c"])
def test_garbage_is_a_malformed_token(token):
    with pytest.raises(TokenError, match="malformed"):
        TokenDecoder(SECRET).decode(token)
