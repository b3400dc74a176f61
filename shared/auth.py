"""Bearer-token authentication both web services share.

Two kinds of JWTs, told apart by their key and audience:

* **User tokens** carry ``sub``, ``roles`` and ``tenant``. They are HS256 tokens checked
  against ``JWT_SECRET``, or, when ``JWT_PUBLIC_KEY`` is configured, RS256 tokens checked
  against it and nothing else (HS256 user tokens are then refused). A user token never
  carries the ``service`` role.
* **Service tokens** are what the workflow service sends when it acts on the api: HS256
  with ``SERVICE_TOKEN_SECRET``, audience :data:`SERVICE_AUDIENCE`, roles exactly
  ``["service"]``. Only a decoder given the service secret accepts them, so ``service``
  is honoured only from a token signed with that key.

Every token needs ``iat`` and ``exp`` and may live at most ``max_lifetime`` seconds;
a configured issuer is required in user tokens. The algorithm list is fixed per key,
so a token cannot pick which key verifies it (no HS256-signed-with-the-public-key
confusion).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import falcon
import jwt

from shared.settings import CommonSettings

#: ``admin`` manages its own tenant; ``operator`` is platform staff, the only role that
#: sees across tenants (queues, every tenant's jobs), and holds no tenant role.
#: ``auditor`` reads everything in its tenant (the audit trail too) and changes nothing.
ROLES = ("viewer", "editor", "approver", "auditor", "admin", "operator", "service")
#: Routes every service serves without a token (probes, the API description). /metrics
#: spans every tenant: its resource decides (an operator token unless METRICS_PUBLIC).
DEFAULT_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
#: Clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds.
LEEWAY_SECONDS = 30
#: ``aud`` of service-to-service tokens; user tokens never carry it.
SERVICE_AUDIENCE = "governance-service"
SERVICE_ROLE = "service"
#: Longest lifetime (``exp - iat``) accepted unless the decoder is told otherwise.
DEFAULT_MAX_LIFETIME_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, roles and tenant."""

    sub: str
    roles: frozenset[str]
    tenant: str

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds one of ``roles``; ``admin`` holds them all."""
        return "admin" in self.roles or bool(self.roles.intersection(roles))


class TokenError(Exception):
    """A token that is missing, malformed, badly signed, expired or lacks claims."""


class TokenDecoder:
    """Verifies tokens and turns their claims into a :class:`Principal`.

    ``secret`` verifies HS256 user tokens, unless ``public_key`` is given: then user
    tokens must be RS256 and verify with it. ``service_secret`` verifies service tokens;
    without it (the workflow web) service tokens are refused.
    """

    #: Verified tokens remembered per process (clients resend the same token).
    CACHE_SIZE = 1024

    def __init__(
        self,
        secret: str | None,
        public_key: str | None = None,
        *,
        service_secret: str | None = None,
        max_lifetime: int = DEFAULT_MAX_LIFETIME_SECONDS,
        issuer: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if not secret and not public_key:
            raise ValueError("a JWT secret or public key is required")
        self.secret = secret
        self.public_key = public_key
        self.service_secret = service_secret
        self.max_lifetime = max_lifetime
        self.issuer = issuer
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.clock = clock

    def decode(self, token: str) -> Principal:
        """The token's principal; a token verified before is only checked for expiry.

        Verifying a signature costs more than the rest of a small request, and the
        cache key is the whole token, signature included, so a cached entry can only
        answer for exactly the token that was verified.
        """
        with self._lock:
            hit = self._verified.get(token)
            if hit is not None:
                self._verified.move_to_end(token)
        if hit is not None:
            principal, expires = hit
            if self.clock() <= expires + LEEWAY_SECONDS:
                return principal
            raise TokenError("token has expired")
        principal, expires = self._verify(token)
        with self._lock:
            self._verified[token] = (principal, expires)
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        # The audience only routes the token to a key; the signature then decides.
        if _is_service_audience(unverified.get("aud")):
            return self._verify_service(token, alg)
        if self.public_key:
            key, expected = self.public_key, "RS256"
        else:
            key, expected = self.secret or "", "HS256"
        if alg != expected:
            raise TokenError(f"token algorithm {alg!r} is not accepted (user tokens: {expected})")
        require = ["sub", "exp", "iat"] + (["iss"] if self.issuer else [])
        claims = self._decode(token, key, expected, require=require, issuer=self.issuer)
        principal = principal_from_claims(claims)
        if SERVICE_ROLE in principal.roles:
            raise TokenError(f"the {SERVICE_ROLE!r} role is only accepted from a service token")
        return principal, float(claims["exp"])

    def _verify_service(self, token: str, alg: object) -> tuple[Principal, float]:
        if not self.service_secret:
            raise TokenError("service tokens are not accepted here")
        if alg != "HS256":
            raise TokenError(f"token algorithm {alg!r} is not accepted (service tokens: HS256)")
        claims = self._decode(
            token,
            self.service_secret,
            "HS256",
            require=["sub", "exp", "iat", "aud"],
            audience=SERVICE_AUDIENCE,
        )
        principal = principal_from_claims(claims)
        if principal.roles != {SERVICE_ROLE}:
            raise TokenError(f"a service token carries exactly the role {SERVICE_ROLE!r}")
        return principal, float(claims["exp"])

    def _decode(
        self,
        token: str,
        key: str,
        algorithm: str,
        *,
        require: list[str],
        audience: str | None = None,
        issuer: str | None = None,
    ) -> dict:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": require},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenError("token claim 'exp' must be a number")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise TokenError("token claim 'iat' must be a number")
        if exp - iat > self.max_lifetime:
            raise TokenError(
                f"token lifetime (exp - iat) exceeds the allowed {self.max_lifetime} seconds"
            )
        return claims


def _is_service_audience(aud: object) -> bool:
    if isinstance(aud, str):
        return aud == SERVICE_AUDIENCE
    return isinstance(aud, list) and SERVICE_AUDIENCE in aud


def decoder_for(settings: CommonSettings, *, accept_service_tokens: bool) -> TokenDecoder:
    """The token decoder a service's settings describe.

    Only the api accepts service tokens; the workflow web has no use for them.
    """
    return TokenDecoder(
        settings.jwt_secret,
        settings.jwt_public_key,
        service_secret=settings.service_token_secret if accept_service_tokens else None,
        max_lifetime=settings.jwt_max_lifetime_s,
        issuer=settings.jwt_issuer,
    )


#: What a ``sub`` or ``tenant`` claim may look like: both end up in database columns
#: and Redis keys, so a token cannot smuggle in control characters or huge values.
CLAIM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def _claim_id(claims: dict, name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not CLAIM_ID.fullmatch(value):
        raise TokenError(f"token claim {name!r} must be 1-64 letters, digits or . _ @ + -")
    return value


def principal_from_claims(claims: dict) -> Principal:
    sub, tenant, roles = _claim_id(claims, "sub"), _claim_id(claims, "tenant"), claims.get("roles")
    if isinstance(roles, str):
        roles = roles.replace(",", " ").split()
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenError("token claim 'roles' must be a list of strings")
    return Principal(sub=sub, roles=frozenset(roles), tenant=tenant)


def issue_token(
    secret: str,
    sub: str,
    roles: Iterable[str],
    tenant: str,
    ttl: int = 3600,
    *,
    now: float | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 user token (development, tests). The ``service`` role is refused here:
    mint those with :func:`issue_service_token`."""
    roles = list(roles)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}; known roles: {', '.join(ROLES)}")
    if SERVICE_ROLE in roles:
        raise ValueError(
            f"the {SERVICE_ROLE!r} role belongs to service tokens (SERVICE_TOKEN_SECRET), "
            "not user tokens"
        )
    issued = int(time.time() if now is None else now)
    claims = {"sub": sub, "roles": roles, "tenant": tenant, "iat": issued, "exp": issued + ttl}
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_service_token(
    service_secret: str,
    tenant: str,
    sub: str = "workflow-service",
    ttl: int = 300,
    *,
    now: float | None = None,
) -> str:
    """A service-to-service token: HS256 with the service key, audience
    :data:`SERVICE_AUDIENCE`, role ``service`` for ``tenant``."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": sub,
        "roles": [SERVICE_ROLE],
        "tenant": tenant,
        "aud": SERVICE_AUDIENCE,
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, service_secret, algorithm="HS256")


def _unauthorized(description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(
        title="Authentication required",
        description=description,
        challenges=['Bearer realm="governance"'],
    )


class AuthMiddleware:
    """Falcon middleware: every request needs a valid bearer token, except public routes.

    A route is public when its path is in ``public_paths`` or its resource has
    ``auth_public = True`` (e.g. a console page that asks for the token itself).
    The caller is put on ``req.context.principal``.
    """

    def __init__(self, decoder: TokenDecoder, public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS):
        self.decoder = decoder
        self.public_paths = frozenset(public_paths)

    def process_resource(self, req, resp, resource, params):
        req.context.principal = None
        if resource is None or req.method == "OPTIONS":
            return
        if req.path in self.public_paths or getattr(resource, "auth_public", False):
            return
        header = req.get_header("Authorization")
        if not header:
            raise _unauthorized("Send an 'Authorization: Bearer <token>' header.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
        try:
            req.context.principal = self.decoder.decode(token.strip())
        except TokenError as exc:
            message = str(exc)  # not capitalize(): it would lower-case names like RS256
            raise _unauthorized(message[:1].upper() + message[1:] + ".") from None


def principal_of(req) -> Principal:
    """The authenticated caller; a route without one is a programming error."""
    principal = getattr(req.context, "principal", None)
    if principal is None:
        raise _unauthorized("Send an 'Authorization: Bearer <token>' header.")
    return principal


def require_role(req, *roles: str) -> Principal:
    """The caller if it holds one of ``roles`` (``admin`` always does); 403 otherwise."""
    principal = principal_of(req)
    if not principal.has_role(*roles):
        allowed = ", ".join(sorted({*roles, "admin"}))
        raise falcon.HTTPForbidden(
            title="Forbidden",
            description=f"This action needs one of the roles: {allowed}.",
        )
    return principal
