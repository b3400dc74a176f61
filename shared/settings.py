"""Configuration read once from the environment, with defaults that work locally.

Each service builds its own settings object (``api_service.settings``,
``workflow_service.settings``) on top of :class:`CommonSettings`; no other module
reads ``os.environ``.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NAMESPACE = "governance"
DEFAULT_VAR_DIR = "var"
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me"


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


@dataclass(frozen=True)
class CommonSettings:
    """Settings both services need to share the broker, job records and tokens."""

    redis_url: str = DEFAULT_REDIS_URL
    #: Prefix of every Redis key the system writes (broker queues, job records, results).
    namespace: str = DEFAULT_NAMESPACE
    var_dir: Path = Path(DEFAULT_VAR_DIR)
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    #: Multiplies every retry delay of the queue catalog; tests shorten delays with it.
    retry_delay_scale: float = 1.0
    #: Per-queue overrides of the catalog's job retention (None keeps the catalog's value).
    keep_succeeded: int | None = None
    keep_failed: int | None = None
    #: Deepest causation chain an event may carry before workflows stop reacting.
    max_causation_depth: int = 5
    #: Record every message's life in the job-status store (JOB_STATUS=off to measure
    #: or run without it).
    job_status: bool = True

    @classmethod
    def common_from_env(cls, env: Env) -> dict:
        """The keyword arguments of the common fields, read from ``env``."""
        keep_succeeded = env.str("JOB_KEEP_SUCCEEDED")
        keep_failed = env.str("JOB_KEEP_FAILED")
        return {
            "redis_url": env.str("REDIS_URL", DEFAULT_REDIS_URL),
            "namespace": env.str("REDIS_NAMESPACE", DEFAULT_NAMESPACE),
            "var_dir": Path(env.str("VAR_DIR", DEFAULT_VAR_DIR)),
            "jwt_secret": env.str("JWT_SECRET", DEV_JWT_SECRET),
            "jwt_public_key": env.str("JWT_PUBLIC_KEY") or None,
            "retry_delay_scale": env.float("RETRY_DELAY_SCALE", 1.0),
            "keep_succeeded": int(keep_succeeded) if keep_succeeded else None,
            "keep_failed": int(keep_failed) if keep_failed else None,
            "max_causation_depth": env.int("MAX_CAUSATION_DEPTH", 5),
            "job_status": env.bool("JOB_STATUS", True),
        }


def sqlite_default(var_dir: Path, name: str) -> str:
    """The default database URL of a service: a SQLite file under ``var_dir``."""
    return f"sqlite:///{var_dir / name}"
