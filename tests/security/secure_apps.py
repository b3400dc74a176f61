"""Both web apps built from settings the security tests choose (secrets, public key,
issuer, metrics), on a real database and Redis, plus tokens of every kind."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import falcon.testing
import jwt
import pytest

from api_service.app import build_deps as build_api_deps
from api_service.app import create_app as create_api
from api_service.migrations import MIGRATIONS
from api_service.settings import ApiSettings
from shared.db import migrate, open_database
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from workflow_service.app import Deps as WorkflowDeps
from workflow_service.app import create_app as create_workflow
from workflow_service.db import init_database
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings

WEBHOOK_SECRET = "test-webhook-secret-for-the-suite-0123456789"


def user_token(claims: dict, key: str = JWT_SECRET, algorithm: str = "HS256", **headers) -> str:
    """A token of exactly ``claims`` (plus ``iat``/``exp`` unless given)."""
    now = int(time.time())
    body = {"sub": "x", "roles": ["admin"], "tenant": "globex", "iat": now, "exp": now + 600}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers or None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _Outbox:
    """A broker that keeps what it is sent (the workflow web only enqueues)."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message


@pytest.fixture(scope="module")
def security_api_database(make_database_url) -> str:
    url = make_database_url("secapi")
    db = open_database(url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    db.close()
    return url


@pytest.fixture(scope="module")
def security_workflow_database(make_database_url) -> str:
    url = make_database_url("secwf")
    db = init_database(url)
    migrate(db, all_migrations())
    db.close()
    return url


@pytest.fixture
def api_app(
    security_api_database, redis_url, namespace
) -> Iterator[Callable[..., falcon.testing.TestClient]]:
    """Factory: a TestClient of the api with settings changed by keyword."""
    opened = []

    def make(**changes) -> falcon.testing.TestClient:
        settings = ApiSettings(
            redis_url=redis_url,
            namespace=namespace,
            jwt_secret=JWT_SECRET,
            service_token_secret=SERVICE_TOKEN_SECRET,
            database_url=security_api_database,
        )
        settings = dataclasses.replace(settings, **changes)
        deps = build_api_deps(settings)
        opened.append(deps)
        return falcon.testing.TestClient(create_api(settings, deps))

    yield make
    for deps in opened:
        if deps.outbox is not None:
            deps.outbox.close()
        deps.broker.close()
        deps.db.close_all()


@pytest.fixture
def workflow_app(
    security_workflow_database, redis_client, redis_url, namespace
) -> Iterator[Callable[..., falcon.testing.TestClient]]:
    """Factory: a TestClient of the workflow web with settings changed by keyword
    (and another Redis client, ``redis=``)."""
    opened = []

    def make(redis=None, **changes) -> falcon.testing.TestClient:
        settings = WorkflowSettings(
            redis_url=redis_url,
            namespace=namespace,
            jwt_secret=JWT_SECRET,
            service_token_secret=SERVICE_TOKEN_SECRET,
            database_url=security_workflow_database,
        )
        settings = dataclasses.replace(settings, **changes)
        db = init_database(settings.database_url)
        opened.append(db)
        deps = WorkflowDeps(db=db, broker=_Outbox(), redis=redis or redis_client)
        return falcon.testing.TestClient(create_workflow(settings, deps))

    yield make
    for db in opened:
        db.close()
