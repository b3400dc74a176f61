"""Secure by default: production refuses to start without real secrets, answers carry
security headers, /readyz and /metrics leak nothing to strangers, settings never print
secrets, and the workflow service's idempotency keys cannot be guessed."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import os
import secrets
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import redis

from api_service.settings import ApiSettings
from shared.auth import issue_token
from shared.settings import (
    DEV_JWT_SECRET,
    DEV_SERVICE_TOKEN_SECRET,
    ConfigError,
    redact_url,
)
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from tests.security.secure_apps import WEBHOOK_SECRET, bearer
from tests.support import ROOT, free_port
from workflow_service.settings import DEV_WEBHOOK_SECRET, NotificationSettings, WorkflowSettings

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
SECRET_NAMES = ("JWT_SECRET", "SERVICE_TOKEN_SECRET", "WEBHOOK_SECRET", "JWT_PUBLIC_KEY")


def _settings_classes(name: str):
    """The services that need ``name``: the api has no webhooks to sign."""
    return [WorkflowSettings] if name == "WEBHOOK_SECRET" else [ApiSettings, WorkflowSettings]


# ------------------------------------------------------------------ production refusal


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


def _production_env(tmp_path) -> dict[str, str]:
    """This process's environment without APP_ENV and secrets, as a careless deploy."""
    env = {k: v for k, v in os.environ.items() if k not in {"APP_ENV", *SECRET_NAMES}}
    env["VAR_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([sys.executable, "-m", "api_service", "relay"], "JWT_SECRET"),
        ([sys.executable, "-m", "api_service", "migrate"], "SERVICE_TOKEN_SECRET"),
        ([sys.executable, "-c", "import api_service.wsgi"], "JWT_SECRET"),
        ([sys.executable, "-c", "import workflow_service.wsgi"], "WEBHOOK_SECRET"),
        ([sys.executable, "-m", "workflow_service", "scheduler"], "WEBHOOK_SECRET"),
        (["dramatiq", "workflow_service.worker", "--processes", "1"], "WEBHOOK_SECRET"),
    ],
    ids=["relay", "api-migrate", "api-wsgi", "workflow-wsgi", "scheduler", "worker"],
)
def test_real_processes_refuse_to_start_in_production_without_secrets(tmp_path, argv, named):
    if argv[0] == "dramatiq":
        argv = [shutil.which("dramatiq", path=os.path.dirname(sys.executable)), *argv[1:]]
    # When a process starts with APP_ENV and the secrets unset
    done = subprocess.run(
        argv, env=_production_env(tmp_path), cwd=tmp_path, capture_output=True, timeout=120
    )
    # Then it exits at once, naming what to set
    output = (done.stdout + done.stderr).decode()
    assert done.returncode != 0, output
    assert named in output and "Refusing to start in production" in output


def test_make_run_runs_in_development_and_says_so(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("local_run", ROOT / "deploy/local/run.py")
    assert spec and spec.loader
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    monkeypatch.setenv("APP_ENV", "production")
    assert run.environment()["APP_ENV"] == "development"
    assert "DEVELOPMENT MODE" in (ROOT / "deploy/local/run.py").read_text()


# --------------------------------------------------------------------------- headers


def test_every_answer_says_nosniff_and_api_answers_are_not_stored(api_app, workflow_app):
    editor = bearer(issue_token(JWT_SECRET, "alice", ["editor"], "acme"))
    api, workflow = api_app(), workflow_app()
    answers = [
        api.simulate_get("/policies", headers=editor),
        api.simulate_get("/policies"),  # 401
        api.simulate_get("/nothing-here", headers=editor),  # 404
        api.simulate_post("/policies", body="{", headers=editor),  # 400
        api.simulate_get("/healthz"),
        workflow.simulate_get("/workflows", headers=editor),
        workflow.simulate_get("/workflows"),
        workflow.simulate_get("/openapi.json"),
    ]
    for resp in answers:
        assert resp.headers.get("x-content-type-options") == "nosniff", resp.status
        assert resp.headers.get("cache-control") == "no-store", resp.status
    # The console's files keep their own caching (revalidated), and nosniff
    page = workflow.simulate_get("/console")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"


# ----------------------------------------------------------------------------- leaks


def test_readyz_says_only_ok_or_failed(api_app, workflow_app, caplog):
    # Given Redis at an address nothing answers on
    port = free_port()
    dead_url = f"redis://127.0.0.1:{port}/0"
    dead = redis.Redis.from_url(dead_url, socket_connect_timeout=0.5)
    for client in (api_app(redis_url=dead_url), workflow_app(redis=dead)):
        resp = client.simulate_get("/readyz")
        # Then the public answer names the failed check, and nothing of where or why
        assert resp.status_code == 503
        assert resp.json["checks"] == {"database": "ok", "redis": "failed"}
        assert "redis" in resp.json["description"]
        assert str(port) not in resp.text and "127.0.0.1" not in resp.text
        assert "Error" not in resp.text and "refused" not in resp.text
    dead.close()
    # while the log keeps the detail for operators
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(port) in message for message in logged)


def test_metrics_span_tenants_so_they_need_an_operator(api_app, workflow_app):
    admin = bearer(issue_token(JWT_SECRET, "olga", ["admin"], "acme"))
    operator = bearer(issue_token(JWT_SECRET, "ops", ["operator"], "platform"))
    for client, prefix in ((api_app(), "api_"), (workflow_app(), "workflow_")):
        assert client.simulate_get("/metrics").status_code == 401
        refused = client.simulate_get("/metrics", headers=admin)
        assert refused.status_code == 403 and "operator" in refused.json["description"]
        resp = client.simulate_get("/metrics", headers=operator)
        assert resp.status_code == 200 and prefix in resp.text
        metrics = client.simulate_get("/openapi.json").json["paths"]["/metrics"]["get"]
        assert "operator" in metrics["summary"] and "401" in metrics["responses"]
    # METRICS_PUBLIC serves them without a token (a port only the scraper reaches)
    for client in (api_app(metrics_public=True), workflow_app(metrics_public=True)):
        assert client.simulate_get("/metrics").status_code == 200
    assert ApiSettings.from_env({"APP_ENV": "development", "METRICS_PUBLIC": "true"}).metrics_public


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


# ------------------------------------------------------------------- idempotency keys


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
