"""Fixtures of the workflow service tests: a migrated database, an engine, a web client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.db import migrate
from workflow_service.db import database, init_database
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings
from workflow_service.steps import load_steps

load_steps(["tests.workflow.plugin_steps"])


class Outbox:
    """Collects what the engine sends, like a broker that never delivers."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("wf"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret="test-secret-for-the-suite-only-0123456789",
    )


@pytest.fixture
def engine(settings, redis_client: redis.Redis):
    from workflow_service.runtime import build_engine

    outbox = Outbox()
    eng = build_engine(settings, database, outbox, redis_client)
    eng.outbox = outbox
    yield eng
    eng.api.close()
