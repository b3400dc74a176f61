"""Fixtures of the file and report tests: a migrated database, a file store in a tmp
directory with a clock the test moves, and the admin app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import falcon.testing
import pytest

from shared.auth import issue_token
from shared.db import migrate
from tests.conftest import JWT_SECRET
from tests.inprocess_api import api, api_app  # noqa: F401 - fixtures
from workflow_service.db import init_database
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings
from workflow_service.storage import FileStore

TENANT, OTHER_TENANT = "acme", "globex"


def auth(sub: str, roles, tenant: str = TENANT) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Outbox:
    """A broker that keeps what is sent."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("files"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace, tmp_path) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret=JWT_SECRET,
        files_dir=tmp_path / "files",
        file_retention_days=30,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 1, 12, 0, 0))


@pytest.fixture
def store(settings, clock, workflow_db) -> FileStore:
    return FileStore.from_settings(settings, clock=clock)


@pytest.fixture
def connected(workflow_db) -> Iterator:
    """A database connection for the test's own queries."""
    with workflow_db.connection_context():
        yield workflow_db


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox):
    from workflow_service.app import Deps, create_app

    app = create_app(settings, Deps(db=workflow_db, broker=outbox, redis=redis_client))
    return falcon.testing.TestClient(app)


def add_policy(app, tenant: str = TENANT, **fields) -> dict:
    """A policy created through the api by an editor of ``tenant``."""
    body = {"title": "Policy", "policy_type": "security", **fields}
    result = falcon.testing.simulate_post(
        app, "/policies", json=body, headers=auth("olivia", ["editor"], tenant)
    )
    assert result.status_code == 201, result.text
    return result.json
