"""Configuration read once from the environment, with defaults that work locally.

Each service builds its own settings object (``api_service.settings``,
``workflow_service.settings``) on top of :class:`CommonSettings`; no other module
reads ``os.environ``.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NAMESPACE = "governance"
DEFAULT_VAR_DIR = "var"
#: Published development secrets: they sign tokens only where ``APP_ENV=development``.
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me"
DEV_SERVICE_TOKEN_SECRET = "dev-only-service-token-secret-change-me"
DEVELOPMENT = "development"
PRODUCTION = "production"
#: Shortest secret a production process accepts, in bytes (HS256 wants 256 bits).
MIN_SECRET_BYTES = 32
DEFAULT_JWT_MAX_LIFETIME_SECONDS = 24 * 3600


class ConfigError(ValueError):
    """A configuration value is present but unusable."""


class Env:
    """Typed access to one mapping of environment variables."""

    def __init__(self, environ: Mapping[builtins.str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def str(self, name: builtins.str, default: builtins.str = "") -> builtins.str:
        value = self.environ.get(name)
        return default if value is None or value == "" else value

    def first(self, names: list[builtins.str], default: builtins.str) -> builtins.str:
        for name in names:
            value = self.environ.get(name)
            if value:
                return value
        return default

    def int(self, name: builtins.str, default: builtins.int) -> builtins.int:
        raw = self.environ.get(name)
        if not raw:
            return default
        try:
            return builtins.int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def float(self, name: builtins.str, default: builtins.float) -> builtins.float:
        raw = self.environ.get(name)
        if not raw:
            return default
        try:
            return builtins.float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self.environ.get(name)
        if not raw:
            return default
        return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, repr=False)
class CommonSettings:
    """Settings both services need to share the broker, job records and tokens.

    Subclasses are declared with ``repr=False`` so they keep this class's ``__repr__``,
    which hides secrets and the passwords in URLs (settings end up in logs).
    """

    #: ``production`` unless APP_ENV is ``development``: production refuses to start
    #: without real secrets (:func:`check_production`).
    app_env: str = PRODUCTION
    redis_url: str = DEFAULT_REDIS_URL
    #: Prefix of every Redis key the system writes (broker queues, job records, results).
    namespace: str = DEFAULT_NAMESPACE
    var_dir: Path = Path(DEFAULT_VAR_DIR)
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    #: HS256 key of service-to-service tokens (the workflow service acting on the api);
    #: only a token verified with it may carry the ``service`` role.
    service_token_secret: str = DEV_SERVICE_TOKEN_SECRET
    #: Longest lifetime (``exp - iat``) of a token accepted.
    jwt_max_lifetime_s: int = DEFAULT_JWT_MAX_LIFETIME_SECONDS
    #: When set, user tokens must carry this ``iss``.
    jwt_issuer: str | None = None
    #: Serve /metrics without a token (only where the port is unreachable from outside);
    #: otherwise /metrics needs an ``operator`` token, since it spans every tenant.
    metrics_public: bool = False
    #: Multiplies every retry delay of the queue catalog; tests shorten delays with it.
    retry_delay_scale: float = 1.0
    #: Per-queue overrides of the catalog's job retention (None keeps the catalog's value).
    keep_succeeded: int | None = None
    keep_failed: int | None = None
    #: Job records younger than this are kept whatever the retention counts.
    job_min_age_s: float = 3600.0
    #: Succeeded, held and failed job records kept per queue at most (a safety valve).
    job_max_records: int = 10_000
    #: Deepest causation chain an event may carry before workflows stop reacting.
    max_causation_depth: int = 5
    #: Record every message's life in the job-status store (JOB_STATUS=off to measure
    #: or run without it).
    job_status: bool = True

    @property
    def development(self) -> bool:
        return self.app_env == DEVELOPMENT

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={_shown(f.name, getattr(self, f.name))}" for f in fields(self) if f.repr
        )
        return f"{type(self).__name__}({shown})"

    @classmethod
    def common_from_env(cls, env: Env) -> dict:
        """The keyword arguments of the common fields, read from ``env``."""
        keep_succeeded = env.str("JOB_KEEP_SUCCEEDED")
        keep_failed = env.str("JOB_KEEP_FAILED")
        return {
            "app_env": app_env_from(env),
            "redis_url": env.str("REDIS_URL", DEFAULT_REDIS_URL),
            "namespace": env.str("REDIS_NAMESPACE", DEFAULT_NAMESPACE),
            "var_dir": Path(env.str("VAR_DIR", DEFAULT_VAR_DIR)),
            "jwt_secret": env.str("JWT_SECRET", DEV_JWT_SECRET),
            "jwt_public_key": env.str("JWT_PUBLIC_KEY") or None,
            "service_token_secret": env.str("SERVICE_TOKEN_SECRET", DEV_SERVICE_TOKEN_SECRET),
            "jwt_max_lifetime_s": env.int(
                "JWT_MAX_LIFETIME_SECONDS", DEFAULT_JWT_MAX_LIFETIME_SECONDS
            ),
            "jwt_issuer": env.str("JWT_ISSUER") or None,
            "metrics_public": env.bool("METRICS_PUBLIC", False),
            "retry_delay_scale": env.float("RETRY_DELAY_SCALE", 1.0),
            "keep_succeeded": int(keep_succeeded) if keep_succeeded else None,
            "keep_failed": int(keep_failed) if keep_failed else None,
            "job_min_age_s": env.float("JOB_MIN_AGE_SECONDS", 3600.0),
            "job_max_records": env.int("JOB_MAX_RECORDS", 10_000),
            "max_causation_depth": env.int("MAX_CAUSATION_DEPTH", 5),
            "job_status": env.bool("JOB_STATUS", True),
        }


def sqlite_default(var_dir: Path, name: str) -> str:
    """The default database URL of a service: a SQLite file under ``var_dir``."""
    return f"sqlite:///{var_dir / name}"


def app_env_from(env: Env) -> str:
    """``development`` only when APP_ENV says so; anything else is production."""
    raw = env.str("APP_ENV", PRODUCTION).strip().lower()
    return DEVELOPMENT if raw == DEVELOPMENT else PRODUCTION


def check_production(
    settings: CommonSettings,
    secrets: Mapping[str, str] | None = None,
    published: Iterable[str] = (),
) -> None:
    """Refuse (ConfigError) to run in production on a missing, published or short secret.

    Checks JWT_SECRET (unless JWT_PUBLIC_KEY is set: user tokens are then RS256 only
    and JWT_SECRET is not used), SERVICE_TOKEN_SECRET, and the service's own ``secrets``
    (variable name -> value, e.g. WEBHOOK_SECRET); ``published`` adds development
    values of those. Secrets must also differ from each other, so a key that signs one
    kind of token cannot sign another. Every problem is named in one message, so an
    operator fixes them all at once. Does nothing in development.
    """
    if settings.app_env == DEVELOPMENT:
        return
    named: dict[str, str] = {}
    if not settings.jwt_public_key:
        named["JWT_SECRET"] = settings.jwt_secret
    named["SERVICE_TOKEN_SECRET"] = settings.service_token_secret
    named.update(secrets or {})
    known = {DEV_JWT_SECRET, DEV_SERVICE_TOKEN_SECRET, *published}
    problems = []
    for name, value in named.items():
        if not value:
            problems.append(f"{name} is not set")
        elif value in known:
            problems.append(f"{name} is not set or holds a published development value")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
    names = list(named)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if named[first] and named[first] == named[second] and named[first] not in known:
                problems.append(f"{first} and {second} must be different secrets")
    if problems:
        raise ConfigError(
            "Refusing to start in production (APP_ENV is not 'development'): "
            + "; ".join(problems)
            + f". Set each to a random value of at least {MIN_SECRET_BYTES} bytes, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or set "
            "APP_ENV=development on a developer's machine."
        )


#: Setting names whose values are never shown (tokens' keys, passwords).
_HIDDEN_WORDS = ("secret", "password")


def _shown(name: str, value: object) -> str:
    if any(word in name for word in _HIDDEN_WORDS):
        return "'***'" if value else repr(value)
    if isinstance(value, str) and name.endswith("url"):
        return repr(redact_url(value))
    return repr(value)


def redact_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password`` query parameter)
    replaced by ``***``: database and Redis URLs may carry credentials."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    netloc, query = parts.netloc, parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    hidden_query = any(k.lower() == "password" for k, _ in pairs)
    if password is None and not hidden_query:
        return url  # unchanged: urlunsplit would rewrite "sqlite:///x" as "sqlite:/x"
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    if hidden_query:
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs])
    return urlunsplit(parts._replace(netloc=netloc, query=query))
