"""Fixtures of the api tests: a migrated database per module, an app per test."""

from __future__ import annotations

import dataclasses

import pytest

from api_service.app import build_deps, create_app
from api_service.migrations import MIGRATIONS
from api_service.settings import ApiSettings
from shared.broker import create_broker
from shared.db import migrate, open_database
from shared.settings import CommonSettings
from tests.api.entity_helpers import EntityClient
from tests.api.helpers import ApiClient, unique_tenant
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET


@pytest.fixture(scope="module")
def api_database_url(make_database_url) -> str:
    """A migrated database shared by a module's tests (each test has its own tenant)."""
    url = make_database_url("api")
    db = open_database(url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    db.close()
    return url


@pytest.fixture
def api_settings(api_database_url, redis_url, namespace) -> ApiSettings:
    return ApiSettings(
        redis_url=redis_url,
        namespace=namespace,
        jwt_secret=JWT_SECRET,
        service_token_secret=SERVICE_TOKEN_SECRET,
        database_url=api_database_url,
        max_body_bytes=16 * 1024,
    )


@pytest.fixture
def make_app():
    """Factory: (app, deps) for settings; closes what it opened."""
    opened = []

    def make(settings: ApiSettings, **overrides):
        deps = dataclasses.replace(build_deps(settings), **overrides)
        opened.append(deps)
        return create_app(settings, deps), deps

    yield make
    for deps in opened:
        if deps.outbox is not None:
            deps.outbox.close()
        deps.broker.close()
        if hasattr(deps.db, "close_all"):
            deps.db.close_all()
        elif not deps.db.is_closed():
            deps.db.close()


@pytest.fixture
def api(api_settings, make_app) -> ApiClient:
    app, _ = make_app(api_settings)
    return ApiClient(app, unique_tenant())


@pytest.fixture
def broker(redis_url, namespace):
    """The system's broker (with job status) on the test's namespace."""
    broker = create_broker(CommonSettings(redis_url=redis_url, namespace=namespace))
    yield broker
    broker.close()


# -- assessments and evidence ---------------------------------------------------------


@pytest.fixture
def evidence_dir(tmp_path):
    return tmp_path / "evidence"


@pytest.fixture
def entity_settings(api_settings, evidence_dir):
    return dataclasses.replace(api_settings, evidence_dir=evidence_dir)


@pytest.fixture
def client(entity_settings, make_app) -> EntityClient:
    app, _ = make_app(entity_settings)
    return EntityClient(app, unique_tenant())
