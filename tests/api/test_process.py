"""The real processes: gunicorn serving the app, and refusing an unmigrated database."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from api_service.migrations import MIGRATIONS
from shared.db import migrate, open_database
from tests.api.helpers import auth, published_events
from tests.support import ROOT, ServiceProcess, free_port, poll, python_module

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


@pytest.fixture
def fresh_database_url(make_database_url) -> str:
    return make_database_url("api_proc")


def _gunicorn(name, port, env, log_dir) -> ServiceProcess:
    argv = [
        GUNICORN,
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "-b",
        f"127.0.0.1:{port}",
        "api_service.wsgi:app",
    ]
    return ServiceProcess(name, argv, {**env, "WEB_WORKERS": "1"}, log_dir)


def test_gunicorn_serves_the_api(fresh_database_url, common_env, tmp_path, redis_client, namespace):
    db = open_database(fresh_database_url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**common_env, "API_DATABASE_URL": fresh_database_url}
    web = _gunicorn("api-web", port, env, tmp_path).start()
    try:
        web.wait_http(f"{base}/healthz")
        with httpx.Client(base_url=base, timeout=10) as http:
            created = http.post(
                "/policies",
                json={"title": "Over the wire", "policy_type": "security"},
                headers=auth("editor", tenant="acme"),
            )
            assert created.status_code == 201, created.text
            assert created.headers["location"] == f"/policies/{created.json()['id']}"
            assert http.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}
            assert http.get("/policies").status_code == 401
            operator = auth("operator", tenant="platform")
            metrics = poll(
                lambda: (
                    (text := http.get("/metrics", headers=operator).text)
                    * ("api_outbox_backlog 0.0" in text)
                ),
                message="an empty outbox backlog",
            )
            sample = 'api_http_requests_total{method="POST",route="/policies",status="201"}'
            assert sample in metrics
            assert "api_outbox_backlog 0.0" in metrics
            spec = http.get("/openapi.json").json()
            assert spec["openapi"] == "3.1.0"
            # Over-long URLs: a JSON 414 from the app, also past gunicorn's default limit
            # (4094) and its most (8190), which answered with an HTML page.
            for length in (5000, 9000, 60_000):
                long = http.get("/policies", params={"q": "x" * length}, headers=operator)
                assert long.status_code == 414, long.text[:200]
                assert long.json()["title"] == "URL too long"
                assert "at most 4096" in long.json()["description"]
            assert http.get("/policies", params={"q": "x" * 4000}).status_code == 401
    finally:
        web.stop()
    assert [e["event_type"] for e in published_events(redis_client, namespace)] == [
        "policy.created"
    ]


def test_the_service_refuses_to_start_on_an_unmigrated_database(
    fresh_database_url, common_env, tmp_path
):
    env = {**common_env, "API_DATABASE_URL": fresh_database_url}
    web = _gunicorn("api-unmigrated", free_port(), env, tmp_path).start()
    assert web.proc.wait(60) != 0
    web.stop()
    assert "not migrated" in web.log()
    assert "python -m api_service migrate" in web.log()

    relay = ServiceProcess(
        "relay-unmigrated", python_module("api_service", "relay"), env, tmp_path
    ).start()
    assert relay.proc.wait(60) == 2
    relay.stop()
    assert "python -m api_service migrate" in relay.log()


def test_migrate_and_token_commands(fresh_database_url, common_env, tmp_path):
    env = {**common_env, "API_DATABASE_URL": fresh_database_url}
    migrate_cmd = ServiceProcess(
        "migrate", python_module("api_service", "migrate"), env, tmp_path
    ).start()
    assert migrate_cmd.proc.wait(60) == 0, migrate_cmd.log()
    migrate_cmd.stop()
    assert "schema is current" in migrate_cmd.log()

    token = ServiceProcess(
        "token",
        python_module(
            "api_service", "token", "--sub", "alice", "--roles", "editor,viewer", "--tenant", "acme"
        ),
        env,
        tmp_path,
    ).start()
    assert token.proc.wait(30) == 0
    token.stop()
    from shared.auth import TokenDecoder
    from tests.conftest import JWT_SECRET

    principal = TokenDecoder(JWT_SECRET).decode(token.log().strip().splitlines()[-1])
    assert principal.sub == "alice" and principal.tenant == "acme"
    assert principal.roles == {"editor", "viewer"}


def test_metrics_add_up_across_gunicorn_workers(
    fresh_database_url, common_env, tmp_path, redis_client, namespace
):
    db = open_database(fresh_database_url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **common_env,
        "API_DATABASE_URL": fresh_database_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    web = _gunicorn("api-web-multi", port, {**env}, tmp_path)
    web.env["WEB_WORKERS"] = "2"
    web.start()
    try:
        web.wait_http(f"{base}/healthz")
        for _ in range(6):
            # A new connection each time, so both workers answer some of them.
            assert httpx.get(f"{base}/policies", headers=auth("viewer")).status_code == 200
        sample = 'api_http_requests_total{method="GET",route="/policies",status="200"} 6.0'
        for _ in range(4):
            assert sample in httpx.get(f"{base}/metrics", headers=auth("operator")).text
    finally:
        web.stop()
