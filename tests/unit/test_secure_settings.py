"""Secure settings by default: production refuses to start without real secrets,
settings never print secrets, and the workflow service's idempotency keys cannot be
guessed. (That real processes refuse too, and what answers carry, is tested in
tests/security/test_secure_defaults.py.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from types import SimpleNamespace

import pytest

from api_service.settings import ApiSettings
from shared.settings import (
    DEV_JWT_SECRET,
    DEV_SERVICE_TOKEN_SECRET,
    ConfigError,
    redact_url,
)
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from workflow_service.settings import DEV_WEBHOOK_SECRET, NotificationSettings, WorkflowSettings

WEBHOOK_SECRET = "unit-test-webhook-master-key-0123456789abcdef"
#: What a production deployment sets: three different secrets of 32 bytes or more.
PRODUCTION = {
    "JWT_SECRET": JWT_SECRET,
    "SERVICE_TOKEN_SECRET": SERVICE_TOKEN_SECRET,
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
}
DEV_VALUES = {
    "JWT_SECRET": DEV_JWT_SECRET,
    "SERVICE_TOKEN_SECRET": DEV_SERVICE_TOKEN_SECRET,
    "WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
}


def _settings_classes(name: str):
    """The services that need ``name``: the api has no webhooks to sign."""
    return [WorkflowSettings] if name == "WEBHOOK_SECRET" else [ApiSettings, WorkflowSettings]


def test_production_starts_with_real_secrets():
    assert ApiSettings.from_env(PRODUCTION).app_env == "production"
    assert WorkflowSettings.from_env(PRODUCTION).app_env == "production"


@pytest.mark.parametrize("name", ["JWT_SECRET", "SERVICE_TOKEN_SECRET", "WEBHOOK_SECRET"])
@pytest.mark.parametrize("problem", ["unset", "development value", "short"])
def test_production_refuses_a_missing_published_or_short_secret(name, problem):
    env = dict(PRODUCTION)
    if problem == "unset":
        del env[name]
    elif problem == "development value":
        env[name] = DEV_VALUES[name]
    else:
        env[name] = "x" * 31
    for settings_class in _settings_classes(name):
        with pytest.raises(ConfigError, match=name) as refused:
            settings_class.from_env(env)
        assert "APP_ENV" in str(refused.value)
        if problem == "short":
            assert "32 bytes" in str(refused.value)


def test_any_app_env_but_development_is_production():
    for value in ("", "production", "staging", "dev"):
        with pytest.raises(ConfigError, match="JWT_SECRET"):
            ApiSettings.from_env({"APP_ENV": value})
    settings = ApiSettings.from_env({"APP_ENV": "development"})
    assert settings.development and settings.jwt_secret == DEV_JWT_SECRET


def test_one_secret_may_not_serve_two_purposes():
    env = {**PRODUCTION, "SERVICE_TOKEN_SECRET": JWT_SECRET}
    with pytest.raises(ConfigError, match="JWT_SECRET and SERVICE_TOKEN_SECRET must be different"):
        ApiSettings.from_env(env)


def test_with_a_public_key_jwt_secret_is_not_needed():
    # User tokens are then RS256 only, so JWT_SECRET signs and verifies nothing
    env = {k: v for k, v in PRODUCTION.items() if k != "JWT_SECRET"}
    env["JWT_PUBLIC_KEY"] = "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----"
    assert ApiSettings.from_env(env).jwt_public_key
    with pytest.raises(ConfigError, match="SERVICE_TOKEN_SECRET"):
        ApiSettings.from_env({**env, "SERVICE_TOKEN_SECRET": ""})


def test_settings_reprs_hide_secrets_and_url_passwords():
    env = {
        **PRODUCTION,
        "REDIS_URL": "redis://:redis-pass-123@redis.internal:6379/0",
        "API_DATABASE_URL": "postgresql://gov:db-pass-456@db.internal:5432/api",
        "WORKFLOW_DATABASE_URL": "postgresql://gov@db.internal/wf?password=db-pass-789",
        "SMTP_PASSWORD": "smtp-pass-000",
    }
    shown = repr(ApiSettings.from_env(env)) + repr(WorkflowSettings.from_env(env))
    for secret in (
        JWT_SECRET,
        SERVICE_TOKEN_SECRET,
        WEBHOOK_SECRET,
        "redis-pass-123",
        "db-pass-456",
        "db-pass-789",
        "smtp-pass-000",
    ):
        assert secret not in shown, secret
    # What is not secret still helps whoever reads the log
    assert "redis.internal:6379" in shown and "gov:***@db.internal" in shown
    assert "app_env='production'" in shown
    assert str(ApiSettings.from_env(env)) == repr(ApiSettings.from_env(env))
    assert "smtp-pass-000" not in repr(NotificationSettings(smtp_password="smtp-pass-000"))


def test_redact_url_keeps_urls_without_passwords():
    assert redact_url("sqlite:///var/api.db") == "sqlite:///var/api.db"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://u:p@h:1/0") == "redis://u:***@h:1/0"


def test_idempotency_keys_are_an_hmac_of_the_service_secret():
    from workflow_service.steps.base import IDEMPOTENCY_KEY_LABEL, StepContext

    def key(secret: str, execution_id: str = "e-1", step: str = "s1") -> str:
        ctx = StepContext(
            execution=SimpleNamespace(id=execution_id),  # type: ignore[arg-type]
            trigger=None,  # type: ignore[arg-type]
            step_key=step,
            step_number=1,
            step_count=1,
            attempt=1,
            settings=WorkflowSettings(service_token_secret=secret),
            db=None,  # type: ignore[arg-type]
            api=None,  # type: ignore[arg-type]
            enqueue=print,
            directory=None,  # type: ignore[arg-type]
        )
        return ctx.idempotency_key

    # The same for every attempt, different per step, not the guessable "execution:step"
    assert key(SERVICE_TOKEN_SECRET) == key(SERVICE_TOKEN_SECRET)
    assert key(SERVICE_TOKEN_SECRET) != key(SERVICE_TOKEN_SECRET, step="s2")
    assert "e-1" not in key(SERVICE_TOKEN_SECRET)
    expected = hmac.new(
        SERVICE_TOKEN_SECRET.encode(), f"{IDEMPOTENCY_KEY_LABEL}:e-1:s1".encode(), hashlib.sha256
    ).hexdigest()
    assert key(SERVICE_TOKEN_SECRET) == expected
    # and whoever lacks the secret cannot compute it
    assert key(secrets.token_urlsafe(32)) != expected
