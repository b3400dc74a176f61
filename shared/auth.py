"""Bearer-token authentication both web services share.

Tokens are JWTs carrying ``sub``, ``roles`` and ``tenant``. HS256 tokens are checked
against ``JWT_SECRET``; when ``JWT_PUBLIC_KEY`` is configured, RS256 tokens are checked
against it as well. The algorithm list is fixed per key, so a token cannot pick which
key verifies it (no HS256-signed-with-the-public-key confusion).
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

#: ``admin`` manages its own tenant; ``operator`` is platform staff, the only role that
#: sees across tenants (queues, every tenant's jobs), and holds no tenant role.
ROLES = ("viewer", "editor", "approver", "admin", "operator", "service")
#: Routes every service serves without a token (probes, metrics, the API description).
DEFAULT_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
#: Clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds.
LEEWAY_SECONDS = 30


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
    """Verifies tokens and turns their claims into a :class:`Principal`."""

    #: Verified tokens remembered per process (clients resend the same token).
    CACHE_SIZE = 1024

    def __init__(
        self,
        secret: str,
        public_key: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        if not secret and not public_key:
            raise ValueError("a JWT secret or public key is required")
        self.secret = secret
        self.public_key = public_key
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
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg == "HS256" and self.secret:
            key, algorithms = self.secret, ["HS256"]
        elif alg == "RS256" and self.public_key:
            key, algorithms = self.public_key, ["RS256"]
        else:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        if not isinstance(claims.get("exp"), int | float):
            raise TokenError("token claim 'exp' must be a number")
        return principal_from_claims(claims), float(claims["exp"])


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
) -> str:
    """An HS256 token for development and service-to-service calls."""
    roles = list(roles)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}; known roles: {', '.join(ROLES)}")
    issued = int(time.time() if now is None else now)
    claims = {"sub": sub, "roles": roles, "tenant": tenant, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


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
            raise _unauthorized(str(exc).capitalize() + ".") from None


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
