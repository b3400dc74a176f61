"""Secure by default: real processes refuse to start in production without real secrets,
answers carry security headers, and /readyz and /metrics leak nothing to strangers.
(The settings' own checks, their reprs and idempotency keys: tests/unit/test_secure_settings.py.)"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys

import pytest
import redis

from api_service.settings import ApiSettings
from shared.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.security.secure_apps import bearer
from tests.support import ROOT, free_port

SECRET_NAMES = ("JWT_SECRET", "SERVICE_TOKEN_SECRET", "WEBHOOK_SECRET", "JWT_PUBLIC_KEY")


# ------------------------------------------------------------------ production refusal


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
